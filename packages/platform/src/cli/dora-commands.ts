// `keelson dora`: the four keys (deployment frequency, lead time for changes, change failure rate,
// failed-deployment recovery time) with their DORA buckets, for the project, a team or a service,
// and their trend per week; `--json` and `--csv` export them.
// `keelson dora import-git`: reads from git which commits each deployment brought and when they
// were written, so lead time counts every change, not only each deployment's head commit.
import { resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { KeelsonError } from "@keelson/protocol";
import { parseDoraWindow, type DoraBucket, type DoraDeployment, type DoraReport } from "../catalog/index.js";
import { commitsTouching, gitToplevel, type CommitInfo, type CommitRange } from "../delivery/index.js";
import { loadManifest } from "../manifest/index.js";
import type { ApiClient } from "./api-client.js";
import { pathFilters } from "./delivery-commands.js";
import { color, table } from "./output.js";
import { connect, print } from "./progress.js";

/** Most commits sent for one deployment (the API's limit); the newest are kept. */
const MAX_COMMITS = 5_000;
/** Deployments per import request, and the JSON size a request stays under. */
const BATCH_DEPLOYMENTS = 200;
const BATCH_BYTES = 512 * 1024;

interface DoraOptions {
  dir: string;
  team?: string;
  service?: string;
  window?: string;
  json?: boolean;
  csv?: boolean;
}

/** "3.2 h", "12 min", "4.5 d": a duration short enough for a table cell. */
export function humanDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${(s / 60).toFixed(s < 600 ? 1 : 0)} min`;
  if (s < 2 * 86_400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} d`;
}

const percent = (x: number) => `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function paintBucket(bucket: DoraBucket | null): string {
  if (bucket === null) return color.dim("-");
  const paint = { elite: color.magenta, high: color.green, medium: color.yellow, low: color.red }[bucket];
  return paint(bucket);
}

function query(opts: Pick<DoraOptions, "team" | "service" | "window">, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  if (opts.team !== undefined) q.set("team", opts.team);
  if (opts.service !== undefined) q.set("service", opts.service);
  if (opts.window !== undefined) q.set("window", opts.window);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  const text = q.toString();
  return text === "" ? "" : `?${text}`;
}

/** The report as people read it: the four keys with buckets, the weeks, and the services. */
export function formatDoraReport(r: DoraReport): string {
  const s = r.summary;
  const scope = r.scope.service !== undefined ? `service ${r.scope.service}` : r.scope.team !== undefined ? `team ${r.scope.team} (${r.scope.services.join(", ") || "no services"})` : `project ${r.scope.project}`;
  const lines: string[] = [];
  lines.push(`${color.bold("DORA metrics")} for ${scope}, last ${r.window.days} days ${color.dim(`(${r.window.from.slice(0, 10)} → ${r.window.to.slice(0, 10)} UTC)`)}`);
  const noData = (reason: string | undefined) => [color.dim("no data"), paintBucket(null), reason ?? ""];
  const f = s.deploymentFrequency;
  const lt = s.leadTime;
  const cfr = s.changeFailureRate;
  const rec = s.recoveryTime;
  const ltNotes = [lt.skewed > 0 ? `${lt.skewed} skewed (commit after deploy, ignored)` : "", lt.withoutCommit > 0 ? `${plural(lt.withoutCommit, "deployment")} without a commit` : ""].filter(Boolean);
  lines.push(
    table(
      ["METRIC", "VALUE", "BUCKET", "BASIS"],
      [
        ["Deployment frequency", ...(f.perDay === null ? noData(f.reason) : [`${(f.perDay ?? 0).toFixed(2)}/day (${(f.perWeek ?? 0).toFixed(1)}/week)`, paintBucket(f.bucket), plural(f.deployments, "successful deployment")])],
        ["Lead time for changes", ...(lt.medianMs === null ? noData([lt.reason, ...ltNotes].filter(Boolean).join("; ")) : [`${humanDuration(lt.medianMs)} median`, paintBucket(lt.bucket), [plural(lt.changes, "change"), ...ltNotes].join("; ")])],
        ["Change failure rate", ...(cfr.value === null ? noData(cfr.reason) : [percent(cfr.value), paintBucket(cfr.bucket), `${cfr.failed} of ${plural(cfr.deployments, "deployment")} failed`])],
        [
          "Failed-deployment recovery",
          ...(rec.medianMs === null
            ? noData([rec.reason, rec.unrecovered > 0 ? `${rec.unrecovered} not recovered yet` : ""].filter(Boolean).join("; "))
            : [`${humanDuration(rec.medianMs)} median`, paintBucket(rec.bucket), `${rec.recovered} recovered${rec.unrecovered > 0 ? `, ${rec.unrecovered} not yet` : ""}`]),
        ],
      ],
    ),
  );
  const c = r.counts;
  const notes = [
    c.blocked > 0 ? `${plural(c.blocked, "rollout")} failed before taking traffic (blocked, not deployments)` : "",
    c.excludedChaos > 0 ? `${plural(c.excludedChaos, "incident")} during chaos experiments left out` : "",
    c.unattributedIncidents > 0 ? `${plural(c.unattributedIncidents, "incident")} with no deployment to put it down to` : "",
  ].filter(Boolean);
  if (notes.length > 0) lines.push(color.dim(notes.join("; ")));
  lines.push("", color.bold("per week"));
  lines.push(
    table(
      ["WEEK", "FROM", "DEPLOYS", "FAILED", "LEAD TIME", "CFR", "RECOVERY"],
      r.weeks.map((w) => [
        w.week,
        w.start,
        String(w.deployments),
        String(w.failed),
        w.medianLeadTimeMs === null ? color.dim("no data") : humanDuration(w.medianLeadTimeMs),
        w.changeFailureRate === null ? color.dim("no data") : percent(w.changeFailureRate),
        w.medianRecoveryMs === null ? color.dim("-") : humanDuration(w.medianRecoveryMs),
      ]),
    ),
  );
  if (r.scope.service === undefined && r.services.length > 0) {
    lines.push("", color.bold("per service"));
    lines.push(
      table(
        ["SERVICE", "TEAM", "DEPLOYS", "FAILED", "CFR", "LEAD TIME", "RECOVERY"],
        r.services.map((x) => [
          x.service,
          x.team ?? "-",
          String(x.deployments),
          String(x.failed),
          x.changeFailureRate === null ? "-" : percent(x.changeFailureRate),
          x.medianLeadTimeMs === null ? "-" : humanDuration(x.medianLeadTimeMs),
          x.medianRecoveryMs === null ? "-" : humanDuration(x.medianRecoveryMs),
        ]),
      ),
    );
  }
  return lines.join("\n");
}

interface ImportedDeployment {
  id: string;
  commit: string;
  previousCommit?: string;
  commits: Array<{ sha: string; authorTime: string }>;
}

/** What the import of one service found and sent. */
export interface ServiceImport {
  service: string;
  deployments: number;
  commits: number;
  /** Deployed commits this repository does not have. */
  unknownCommits: number;
  /** Deployments whose range was longer than the API takes (the newest commits were kept). */
  truncated: number;
  /** Deployments whose previous commit is not an ancestor: only the head commit counts. */
  rewritten: number;
}

/**
 * Reads each successful deployment's change set from git and sends it to the control plane:
 * the commits after the previously deployed commit up to the deployed one that touch the
 * service's paths (its folder and includes), or the deployed commit alone when none does or the
 * range cannot be told. Re-running replaces what an earlier run sent.
 */
export async function importGitHistory(input: {
  api: ApiClient;
  repo: string;
  services: Array<{ name: string; paths: string[] }>;
  deployments: readonly DoraDeployment[];
  onService?: (result: ServiceImport) => void;
}): Promise<ServiceImport[]> {
  const { api, repo } = input;
  const byService = new Map<string, DoraDeployment[]>();
  for (const d of input.deployments) {
    if (d.rollout !== "succeeded" || d.commit === undefined) continue;
    const list = byService.get(d.service);
    if (list === undefined) byService.set(d.service, [d]);
    else list.push(d);
  }
  const results: ServiceImport[] = [];
  for (const [service, deployments] of [...byService].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const filter = input.services.find((s) => s.name === service);
    if (filter === undefined) continue;
    const result: ServiceImport = { service, deployments: 0, commits: 0, unknownCommits: 0, truncated: 0, rewritten: 0 };
    const batch: ImportedDeployment[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      await api.post(`/v1/services/${encodeURIComponent(service)}/dora/changes`, { deployments: batch });
      batch.length = 0;
      batchBytes = 0;
    };
    for (const d of deployments) {
      const commit = d.commit as string;
      let range: CommitRange;
      try {
        range = await commitsTouching(repo, d.previousCommit, commit, filter.paths);
      } catch (err) {
        if (err instanceof KeelsonError && err.code === "KEELSON_ERR_NOT_FOUND") {
          result.unknownCommits++;
          continue;
        }
        throw err;
      }
      if (range.rewritten) result.rewritten++;
      let commits: CommitInfo[] = range.commits;
      if (commits.length === 0) commits = (await commitsTouching(repo, undefined, commit, filter.paths)).commits;
      if (commits.length > MAX_COMMITS) {
        commits = commits.slice(-MAX_COMMITS);
        result.truncated++;
      }
      const entry: ImportedDeployment = {
        id: d.id,
        commit,
        ...(d.previousCommit !== undefined ? { previousCommit: d.previousCommit } : {}),
        commits: commits.map((c) => ({ sha: c.sha, authorTime: c.authorTime })),
      };
      const bytes = JSON.stringify(entry).length;
      if (batch.length >= BATCH_DEPLOYMENTS || batchBytes + bytes > BATCH_BYTES) await flush();
      batch.push(entry);
      batchBytes += bytes;
      result.deployments++;
      result.commits += entry.commits.length;
    }
    await flush();
    results.push(result);
    input.onService?.(result);
  }
  return results;
}

/** A window as the API takes it, checked here so a typo is a usage error before anything is asked. */
function windowText(text: string): string {
  try {
    parseDoraWindow(text);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message.replace(/^window: /, "") : String(err));
  }
  return text.trim();
}

export function addDoraCommands(program: Command): void {
  const dora = program
    .command("dora")
    .description("DORA metrics: deployment frequency, lead time for changes, change failure rate and recovery time, with their buckets")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--team <team>", "only the services this team owns")
    .option("--service <service>", "only this service")
    .addOption(new Option("--window <window>", "how far back: 30d, 12w, 48h (default 90d; import-git: 365d)").argParser(windowText))
    .option("--json", "print the report as JSON: summary, weekly trend and every deployment")
    .option("--csv", "print one CSV row per deployment")
    .action(async (opts: DoraOptions) => {
      if (opts.json && opts.csv) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "--json, --csv: choose one");
      const api = await connect(resolve(opts.dir));
      if (opts.csv) {
        process.stdout.write(await api.text(`/v1/dora${query(opts, { format: "csv" })}`));
        return;
      }
      const report = await api.get<DoraReport>(`/v1/dora${query(opts)}`);
      print(opts.json ? JSON.stringify(report, null, 2) : formatDoraReport(report));
    });

  dora
    .command("import-git")
    .description("read from git which commits each deployment brought and their author times, so lead time counts every change (run it again any time: it replaces what it sent)")
    .option("--repo <dir>", "the git repository (default: the one the project folder is in)")
    .action(async (opts: { repo?: string }, cmd: Command) => {
      const all = cmd.optsWithGlobals<DoraOptions & { repo?: string }>();
      if (all.json || all.csv) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "--json, --csv: options of `keelson dora`, not of import-git");
      const dir = resolve(all.dir);
      const loaded = await loadManifest(dir);
      const repoDir = opts.repo !== undefined ? resolve(opts.repo) : dir;
      const repo = await gitToplevel(repoDir);
      if (repo === undefined) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${repoDir} is not in a git repository; \`keelson dora import-git\` reads commits from one (--repo names it)`);
      const api = await connect(dir);
      const window = all.window ?? "365d";
      const { deployments } = await api.get<{ deployments: DoraDeployment[] }>(`/v1/dora/deployments${query({ ...all, window })}`);
      const filters = pathFilters(loaded, repo);
      const known = new Set(filters.map((f) => f.name));
      const gone = [...new Set(deployments.map((d) => d.service))].filter((s) => !known.has(s)).sort();
      print(`reading ${plural(deployments.filter((d) => d.rollout === "succeeded").length, "successful deployment")} of the last ${window} from ${repo}`);
      const results = await importGitHistory({
        api,
        repo,
        services: filters,
        deployments,
        onService: (r) => {
          const notes = [
            r.unknownCommits > 0 ? `${plural(r.unknownCommits, "deployed commit")} not in this repository` : "",
            r.rewritten > 0 ? `${plural(r.rewritten, "deployment")} after rewritten history (head commit only)` : "",
            r.truncated > 0 ? `${plural(r.truncated, "deployment")} over ${MAX_COMMITS} commits (newest kept)` : "",
          ].filter(Boolean);
          print(`  ${color.green("✓")} ${r.service}: ${plural(r.commits, "commit")} for ${plural(r.deployments, "deployment")}${notes.length > 0 ? color.yellow(` (${notes.join("; ")})`) : ""}`);
        },
      });
      for (const s of gone) print(color.dim(`  - ${s}: not in ${loaded.file} any more; its paths are unknown, skipped`));
      const commits = results.reduce((n, r) => n + r.commits, 0);
      const imported = results.reduce((n, r) => n + r.deployments, 0);
      print(`${color.green("✓")} imported ${plural(commits, "commit")} for ${plural(imported, "deployment")} of ${plural(results.length, "service")}; \`keelson dora\` shows the lead time`);
    });
}
