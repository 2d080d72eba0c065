// End to end: `init` writes a project that runs as it is; `up` in the foreground follows
// logs and Ctrl-C (SIGINT) stops everything gracefully; a taken replica port is a clear error.
import { spawn } from "node:child_process";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { StatusReport } from "@keelson/protocol";
import { apiFetch, apiToken, freePort, makeTempDir, waitFor } from "#test-support";
import { BIN, keelson, pidAlive } from "./cli.js";

describe.sequential("project lifecycle", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;
  let controlPlane: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-life-"));
  });
  afterAll(async () => {
    await keelson(["down", dir]);
    await cleanup();
  });

  it("init writes a manifest and a starter service that validate", async () => {
    const r = await keelson(["init", dir, "--name", "My Project"]);
    expect(r.code, r.stderr).toBe(0);
    const text = await readFile(join(dir, "keelson.yaml"), "utf8");
    expect(text).toMatch(/^project: my-project$/m);
    expect(await readFile(join(dir, ".gitignore"), "utf8")).toContain(".keelson/");
    // Our own ports, so the test never meets a real project on the defaults.
    const [cp, gw, admin, mesh] = [await freePort(), await freePort(), await freePort(), await freePort()];
    gateway = `http://127.0.0.1:${gw}`;
    controlPlane = `http://127.0.0.1:${cp}`;
    await writeFile(
      join(dir, "keelson.yaml"),
      text
        .replace("# controlPlane: { host: 127.0.0.1, port: 7070 }", `controlPlane: { host: 127.0.0.1, port: ${cp} }`)
        .replace("# gateway: { host: 127.0.0.1, port: 8080, adminPort: 8081 }", `gateway: { host: 127.0.0.1, port: ${gw}, adminPort: ${admin}, meshPort: ${mesh} }`),
    );
    const v = await keelson(["validate", dir]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/is valid: project "my-project", 1 service/);
    expect((await keelson(["init", dir])).code).toBe(1); // never overwrites
    // A folder that does not exist yet is made (`keelson init my-app`, as the guide says).
    const fresh = join(dir, "not-yet", "my-app");
    const made = await keelson(["init", fresh]);
    expect(made.code, made.stderr).toBe(0);
    expect(await readFile(join(fresh, "keelson.yaml"), "utf8")).toMatch(/^project: my-app$/m);
    await rm(join(dir, "not-yet"), { recursive: true });
  });

  it("up in the foreground serves, follows logs, and Ctrl-C stops everything", async () => {
    const child = spawn(process.execPath, [BIN, "up", dir], { env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    onTestFinished(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    await waitFor(() => out.includes("following logs"), { timeoutMs: 60_000, what: `up to be ready; output so far:\n${out}` });
    const res = await fetch(`${gateway}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^hello from web \(web-[0-9a-f]{6}-0\)/);
    const status = JSON.parse((await keelson(["status", dir, "--json"])).stdout) as StatusReport;
    // The control plane made the first admin token and stored it for the CLI, readable by the owner only.
    const tokenFile = join(dir, ".keelson", "token");
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    expect(await apiToken(dir)).toMatch(/^ks_/);
    // The API wants it on every endpoint but /healthz, which says no more than the status and the project.
    expect((await fetch(`${controlPlane}/v1/status`)).status).toBe(401);
    const viaApi = await apiFetch(dir, `${controlPlane}/v1/status`);
    expect(viaApi.status).toBe(200);
    expect(((await viaApi.json()) as StatusReport).services.map((s) => s.name)).toEqual(status.services.map((s) => s.name));
    const health = await fetch(`${controlPlane}/healthz`);
    expect(await health.json()).toEqual({ status: "ok", project: "my-project" });
    const replicaPid = status.services[0]!.instances[0]!.pid!;
    expect(pidAlive(replicaPid)).toBe(true);
    // The replica's own output reaches the terminal through the log follower.
    await waitFor(() => /web\s+\| listening on 127\.0\.0\.1:\d+/.test(out), { what: "the replica's log line in the output" });

    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(out).toContain("control plane stopped");
    expect(pidAlive(replicaPid)).toBe(false);
    await expect(fetch(`${gateway}/`)).rejects.toThrow();
  });

  it("a taken replica port fails up with the field named", async () => {
    const port = await freePort();
    const blocker = createServer((_q, s) => s.end("someone else"));
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", r));
    try {
      const text = await readFile(join(dir, "keelson.yaml"), "utf8");
      await writeFile(join(dir, "keelson.yaml"), text.replace(/# port: 9000 .*$/m, `port: ${port}`));
      const r = await keelson(["up", dir, "--detach"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`services.web: port ${port} is already in use`);
    } finally {
      blocker.close();
    }
  });
});
