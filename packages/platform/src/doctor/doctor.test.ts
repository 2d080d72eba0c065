import { mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { StatusReport } from "@keelson/protocol";
import { freePort, makeTempDir } from "#test-support";
import { formatDoctorReport, runDoctor } from "./doctor.js";

describe("runDoctor", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-doctor-"));
    await mkdir(join(dir, "api"));
  });
  afterEach(async () => {
    await cleanup();
  });

  const options = () => ({ dir, stateDir: join(dir, ".keelson"), store: { path: join(dir, ".keelson", "state.db") }, env: { PATH: process.env.PATH ?? "" }, nodeRequirements: [{ range: ">=20", from: "Keelson" }] });
  async function project(services: string): Promise<void> {
    const [cp, gw, admin, mesh] = [await freePort(), await freePort(), await freePort(), await freePort()];
    await writeFile(join(dir, "keelson.yaml"), `project: shop\ncontrolPlane: { port: ${cp} }\ngateway: { port: ${gw}, adminPort: ${admin}, meshPort: ${mesh} }\nservices:\n${services}`);
  }

  it("passes a healthy project that is not running, skipping what needs it to run", async () => {
    await project("  api: { owner: web, path: api, start: node main.js, readiness: /ready, pipeline: { stages: [{ name: test, run: node --test }] } }\n");
    const report = await runDoctor(options());
    expect(report.ok).toBe(true);
    expect(report.project).toBe("shop");
    expect(report.checks.map((c) => `${c.check} ${c.status}`)).toEqual(["node pass", "state-dir pass", "manifest pass", "store pass", "ports pass", "pipeline-commands pass", "readiness skip"]);
    expect(report.counts).toEqual({ pass: 6, warn: 0, fail: 0, skip: 1 });
    const text = formatDoctorReport(report);
    expect(text).toContain("  ✓ pipeline-commands: api: node found for test\n");
    expect(text).toContain("  - readiness: the project is not running; `keelson up` starts it\n");
    expect(text).toMatch(/\n6 checks passed, 0 warnings, 0 failed, 1 skipped\n$/);
  });

  it("fails an invalid manifest, lists its problems with what to fix, and skips the checks that need it", async () => {
    await project("  api: { owner: web, path: api, start: node main.js, pipeline: node-service }\n");
    const report = await runDoctor(options());
    expect(report.ok).toBe(false);
    expect(report.checks.filter((c) => c.status === "skip").map((c) => c.check)).toEqual(["ports", "runtime", "pipeline-commands", "readiness"]);
    const text = formatDoctorReport(report);
    expect(text).toContain("  ✗ manifest: the manifest has 1 problem\n");
    expect(text).toMatch(/keelson\.yaml:5:\d+ services\.api\.pipeline: service "api" uses pipeline template "node-service", which is not defined/);
    expect(text).toContain("      to fix: fix each place listed; `keelson validate` checks again\n");
    expect(text).toMatch(/\n3 checks passed, 0 warnings, 1 failed, 4 skipped\n$/);
  });

  it("fails a check that does not finish in time, and still runs the others", async () => {
    // A replica that accepts connections and never answers.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as AddressInfo).port;
    try {
      await project("  api: { owner: web, path: api, start: node main.js, readiness: { path: /ready, timeout: 10s } }\n");
      const status: StatusReport = {
        project: "shop",
        controlPlane: { url: "", pid: 1, version: "", startedAt: "" },
        gateway: { url: "" },
        services: [
          {
            name: "api",
            owner: "web",
            release: "r-1",
            replicas: { desired: 1, ready: 1 },
            endpoints: [],
            routes: [],
            instances: [{ id: "api-0", service: "api", release: "r-1", index: 0, state: "ready", pid: 1, port, url: `http://127.0.0.1:${port}`, restarts: 0, startedAt: undefined, lastExit: undefined }],
          },
        ],
      };
      const report = await runDoctor({ ...options(), running: { status }, checkTimeoutMs: 1500 });
      expect(report.checks.at(-1)).toMatchObject({ check: "readiness", status: "fail", message: "the check did not finish within 1500 ms" });
      expect(report.checks.filter((c) => c.status === "pass").map((c) => c.check)).toContain("manifest");
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
