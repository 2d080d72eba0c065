// `keelson doctor`: checks the machine and the project and says what to fix. Each check gets a
// time limit and its own failure, so one that hangs or breaks never hides the others.
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import pc from "picocolors";
import type { LoadedManifest } from "../manifest/index.js";
import type { StoreLocation } from "../store/index.js";
import { CHECK_NAMES, fail, skip, type CheckName, type CheckResult, type CheckStatus } from "./check-result.js";
import { checkManifest } from "./manifest-valid.js";
import { checkNodeVersion, keelsonNodeRequirement, projectNodeRequirement, type NodeRequirement } from "./node-version.js";
import { checkPipelineCommands } from "./pipeline-commands.js";
import { checkPorts } from "./ports.js";
import { checkReadiness } from "./readiness.js";
import type { RunningProject } from "./running-project.js";
import { checkRuntimeTools } from "./runtime-tools.js";
import { checkStateDir } from "./state-dir.js";
import { checkStore } from "./store-reachable.js";

export interface DoctorOptions {
  /** The project folder, or its manifest file. */
  dir: string;
  /** The project's state folder (.keelson). */
  stateDir: string;
  /** The project's store: KEELSON_STORE_URL or the state folder's SQLite file. */
  store: StoreLocation;
  /** What of the project runs now; undefined when nothing does. */
  running?: RunningProject;
  /** The environment stages and runtimes will see (PATH, DOCKER_HOST, KUBECONFIG); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default process.version. */
  nodeVersion?: string;
  /** Node.js requirements; default Keelson's engines.node and the project's package.json's. */
  nodeRequirements?: NodeRequirement[];
  /** Longest any one check may take. Default 15 s. */
  checkTimeoutMs?: number;
}

export interface DoctorReport {
  /** True when no check failed (warnings allowed). */
  ok: boolean;
  project?: string;
  counts: Record<CheckStatus, number>;
  checks: CheckResult[];
}

/** Runs `check`, turning a throw or a timeout into a failed line of its own. */
async function guarded(name: CheckName, timeoutMs: number, check: () => Promise<CheckResult[]>): Promise<CheckResult[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult[]>((resolve) => {
    timer = setTimeout(() => resolve([fail(name, `the check did not finish within ${timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`}`, "run `keelson doctor` again; if it hangs again, what it checks is not answering")]), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([
      check().catch((err: unknown) => [fail(name, `the check itself failed: ${err instanceof Error ? err.message : String(err)}`, "please report this with the output of `keelson doctor --json`")]),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs every check and collects their lines, in a fixed order. Checks that need a valid
 * manifest are skipped (saying so) when it is not.
 *
 * @example
 * const report = await runDoctor({ dir, stateDir: join(dir, ".keelson"), store: { path: join(dir, ".keelson", "state.db") } });
 * if (!report.ok) process.exitCode = 1;
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const timeoutMs = options.checkTimeoutMs ?? 15_000;
  const env = options.env ?? process.env;
  const run = (name: CheckName, check: () => Promise<CheckResult[]>) => guarded(name, timeoutMs, check);
  let loaded: LoadedManifest | undefined;
  const needsManifest = (name: CheckName, check: (m: LoadedManifest) => Promise<CheckResult[]>) => () =>
    loaded === undefined ? Promise.resolve([skip(name, "skipped: the manifest is not valid")]) : check(loaded);

  const byName: Record<CheckName, () => Promise<CheckResult[]>> = {
    node: async () => {
      const requirements = options.nodeRequirements ?? (await Promise.all([keelsonNodeRequirement(), projectNodeRequirement(await projectFolder(options.dir))])).filter((r) => r !== undefined);
      return checkNodeVersion({ version: options.nodeVersion ?? process.version, requirements });
    },
    "state-dir": () => checkStateDir(options.stateDir),
    manifest: async () => {
      const checked = await checkManifest(options.dir);
      loaded = checked.loaded;
      return checked.results;
    },
    store: () => checkStore(options.store),
    ports: needsManifest("ports", (m) => checkPorts({ manifest: m.manifest, ...(options.running === undefined ? {} : { running: options.running }) })),
    runtime: needsManifest("runtime", (m) => checkRuntimeTools({ runtime: m.manifest.runtime, env, timeoutMs: Math.min(5000, timeoutMs) })),
    "pipeline-commands": needsManifest("pipeline-commands", (m) => checkPipelineCommands({ loaded: m, path: env.PATH ?? "" })),
    readiness: needsManifest("readiness", (m) =>
      checkReadiness({ manifest: m.manifest, status: options.running?.status, ...(options.running?.statusError === undefined ? {} : { statusError: options.running.statusError }) }),
    ),
  };
  const checks: CheckResult[] = [];
  // One at a time: the later checks read what the manifest check loaded, and the output keeps its order.
  for (const name of CHECK_NAMES) checks.push(...(await run(name, byName[name])));
  const counts: Record<CheckStatus, number> = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) counts[c.status]++;
  return { ok: counts.fail === 0, ...(loaded === undefined ? {} : { project: loaded.manifest.project }), counts, checks };
}

/** The folder of `dir` when it names the manifest file rather than the project folder. */
async function projectFolder(dir: string): Promise<string> {
  return (await stat(dir).then((s) => s.isDirectory(), () => true)) ? dir : dirname(dir);
}

const MARK: Record<CheckStatus, string> = { pass: "✓", warn: "!", fail: "✗", skip: "-" };

/** The report for people: a line per result, its details and "to fix:" under it, and a summary. */
export function formatDoctorReport(report: DoctorReport, options: { color?: boolean } = {}): string {
  const c = pc.createColors(options.color ?? false);
  const paint: Record<CheckStatus, (s: string) => string> = { pass: c.green, warn: c.yellow, fail: c.red, skip: c.dim };
  const lines: string[] = [];
  for (const r of report.checks) {
    lines.push(`  ${paint[r.status](MARK[r.status])} ${c.bold(r.check)}: ${r.message}`);
    for (const d of r.details ?? []) lines.push(`      ${d}`);
    if (r.fix !== undefined) lines.push(`      ${paint[r.status]("to fix:")} ${r.fix}`);
  }
  const n = report.counts;
  const plural = (k: number, word: string) => `${k} ${word}${k === 1 ? "" : "s"}`;
  lines.push("", `${plural(n.pass, "check")} passed, ${plural(n.warn, "warning")}, ${n.fail} failed${n.skip > 0 ? `, ${n.skip} skipped` : ""}`);
  return `${lines.join("\n")}\n`;
}
