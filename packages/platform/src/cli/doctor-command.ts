// `keelson doctor`: finds what of the project runs (from its state folder), hands it to the
// doctor domain's checks and prints their report; exit 1 when a check failed.
import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import type { StatusReport } from "@keelson/protocol";
import { stateDirOf } from "../api/index.js";
import { formatDoctorReport, runDoctor, type RunningProject } from "../doctor/index.js";
import { createApiClient } from "./api-client.js";
import { findControlPlane, findGateway } from "./daemons.js";
import { color } from "./output.js";
import { print } from "./progress.js";
import { storeLocationOf } from "./store-commands.js";

/** How long the control plane's status may take: doctor's checks have not started yet. */
const STATUS_TIMEOUT_MS = 5000;

/** The project's control plane, gateway and status, when they run. */
async function findRunning(stateDir: string): Promise<RunningProject | undefined> {
  const [cp, gw] = await Promise.all([findControlPlane(stateDir), findGateway(stateDir)]);
  if (cp === undefined && gw === undefined) return undefined;
  const running: RunningProject = {
    ...(cp === undefined ? {} : { controlPlane: { pid: cp.pid, url: cp.url } }),
    ...(gw === undefined ? {} : { gateway: { pid: gw.pid, url: gw.url, ...(gw.adminUrl === undefined ? {} : { adminUrl: gw.adminUrl }) } }),
  };
  if (cp !== undefined) {
    // A control plane that answers /healthz may still stall on /v1/status; the readiness check reports it.
    const signal = AbortSignal.timeout(STATUS_TIMEOUT_MS);
    try {
      running.status = await createApiClient(cp.url, { stateDir }).get<StatusReport>("/v1/status", { signal });
    } catch (err) {
      running.statusError = signal.aborted ? `GET /v1/status did not answer within ${STATUS_TIMEOUT_MS / 1000} s` : err instanceof Error ? err.message : String(err);
    }
  }
  return running;
}

export function addDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description("check the machine and the project (Node.js, state folder, manifest, store, ports, runtime, pipeline commands, readiness) and say what to fix")
    .argument("[dir]", "project folder or manifest file", ".")
    .option("--store <url|file>", "the store to check (default: KEELSON_STORE_URL, else .keelson/state.db)")
    .option("--json", "print the report as JSON")
    .action(async (dirArg: string, opts: { store?: string; json?: boolean }) => {
      const dir = resolve(dirArg);
      const projectDir = (await stat(dir).then((s) => s.isDirectory(), () => true)) ? dir : dirname(dir);
      const stateDir = stateDirOf(projectDir);
      const running = await findRunning(stateDir);
      const report = await runDoctor({ dir, stateDir, store: storeLocationOf({ dir: projectDir, ...(opts.store === undefined ? {} : { store: opts.store }) }), ...(running === undefined ? {} : { running }) });
      print(opts.json ? JSON.stringify(report, null, 2) : `${color.bold("keelson doctor")} ${projectDir}\n${formatDoctorReport(report, { color: color.isColorSupported })}`);
      if (!report.ok) process.exitCode = 1;
    });
}
