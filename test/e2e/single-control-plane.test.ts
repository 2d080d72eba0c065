// A SQLite store takes one control plane: a second `keelson serve` on the same project would run a
// second reconciler over the same replicas, so it is refused, naming the first and the way out.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTempDir, writeOneServiceProject } from "#test-support";
import { keelson } from "./cli.js";

describe("one control plane per SQLite store", { timeout: 120_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-single-cp-"));
    await writeOneServiceProject(dir, { project: "single" });
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 100_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
  }, 110_000);

  afterAll(async () => {
    if (dir !== undefined) await keelson(["down", dir], { timeoutMs: 60_000 });
    await cleanup?.();
  });

  it("refuses a second keelson serve on the same project, on another port", async () => {
    const second = await keelson(["serve", dir, "--port", String(await freePort())], { timeoutMs: 30_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/another control plane \(pid \d+, http:\/\/127\.0\.0\.1:\d+\) runs on this project's SQLite store/);
    expect(second.stderr).toContain("KEELSON_ERR_CONFLICT");
    // The first one is untouched.
    const status = await keelson(["status", dir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/api/);
  });
});
