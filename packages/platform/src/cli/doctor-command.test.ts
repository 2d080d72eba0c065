// `keelson doctor` in this process against a control plane that answers /healthz but never
// /v1/status: the status read is bounded, and the stall is reported as the readiness check's failure.
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir, runCli } from "#test-support";
import type { DoctorReport } from "../doctor/index.js";
import { main } from "./main.js";

describe("keelson doctor (CLI in process)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-doctor-cli-"));
  });
  afterEach(() => cleanup());

  it("finishes and fails readiness when the control plane answers /healthz but stalls on /v1/status", { timeout: 30_000 }, async () => {
    const stalled = createServer((req, res) => {
      if (req.url === "/healthz") res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
      // /v1/status: never answered.
    });
    await new Promise<void>((r) => stalled.listen(0, "127.0.0.1", r));
    try {
      const [cp, gw, admin, mesh] = [await freePort(), await freePort(), await freePort(), await freePort()];
      await mkdir(join(dir, "api"));
      await writeFile(join(dir, "keelson.yaml"), `project: shop\ncontrolPlane: { port: ${cp} }\ngateway: { port: ${gw}, adminPort: ${admin}, meshPort: ${mesh} }\nservices:\n  api: { owner: web, path: api, start: node main.js, readiness: /ready }\n`);
      await mkdir(join(dir, ".keelson"));
      await writeFile(join(dir, ".keelson", "controlplane.json"), JSON.stringify({ pid: process.pid, url: `http://127.0.0.1:${(stalled.address() as AddressInfo).port}` }));
      await writeFile(join(dir, ".keelson", "token"), `ks_${"a".repeat(43)}\n`, { mode: 0o600 });
      const started = Date.now();
      const { code, out } = await runCli(main, ["doctor", dir, "--json"]);
      // Well within one check's 15 s: the status read gives up after 5 s.
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(code).toBe(1);
      const report = JSON.parse(out) as DoctorReport;
      expect(report.checks.at(-1)).toEqual({
        check: "readiness",
        status: "fail",
        message: "the control plane runs but its status could not be read: GET /v1/status did not answer within 5 s",
        fix: "`keelson status` shows whether the control plane answers; if it hangs, `keelson down` and `keelson up` restart it",
      });
    } finally {
      stalled.closeAllConnections();
      await new Promise((r) => stalled.close(r));
    }
  });
});
