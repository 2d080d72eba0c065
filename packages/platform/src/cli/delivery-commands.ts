// The delivery commands: deploy, rollback, promote, releases, runs, watch and hooks.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { KeelsonError } from "@keelson/protocol";
import { stateDirOf } from "../api/index.js";
import {
  createGitWatcher,
  gitToplevel,
  installPostCommitHook,
  resolveCommit,
  servicesForChanges,
  uninstallPostCommitHook,
  waitsForGroup,
  type ApplyProgress,
  type DeployResult,
  type GitCommitBatch,
  type PipelineRunView,
  type ReleaseView,
  type RolloutState,
} from "../delivery/index.js";
import { loadManifest, type LoadedManifest } from "../manifest/index.js";
import type { ApiClient } from "./api-client.js";
import { color, ms, table } from "./output.js";
import { connect, describeProgress, print, untilSignal } from "./progress.js";

type Streamed = ApplyProgress | { type: "done"; result: DeployResult } | { type: "error"; error: { code: string; message: string } };

/** Runs a streamed deploy or rollback, printing progress; resolves with its result. */
export async function streamDeploy(api: ApiClient, path: string, body: unknown, options: { logs?: boolean; prefix?: string }): Promise<DeployResult> {
  let result: DeployResult | undefined;
  for await (const p of api.stream<Streamed>(path, { method: "POST", body })) {
    if (p.type === "done") result = p.result;
    else if (p.type === "error") throw new KeelsonError(p.error.code as KeelsonError["code"], p.error.message);
    else {
      const text = describeProgress(p, options);
      if (text) print(text);
    }
  }
  if (!result) throw new KeelsonError("KEELSON_ERR_CONTROL_PLANE_UNREACHABLE", "the control plane closed the stream before the deploy finished; `keelson releases` shows where it got to");
  return result;
}

/** A streamed group deploy (`POST /v1/deploy`). */
async function streamGroupDeploy(api: ApiClient, body: unknown, options: { logs?: boolean }): Promise<{ results: DeployResult[] }> {
  let done: { results: DeployResult[] } | undefined;
  type GroupStreamed = ApplyProgress | { type: "done"; result: { results: DeployResult[] } } | { type: "error"; error: { code: string; message: string } };
  for await (const p of api.stream<GroupStreamed>("/v1/deploy", { method: "POST", body })) {
    if (p.type === "done") done = p.result;
    else if (p.type === "error") throw new KeelsonError(p.error.code as KeelsonError["code"], p.error.message);
    else {
      const text = describeProgress(p, options);
      if (text) print(text);
    }
  }
  if (!done) throw new KeelsonError("KEELSON_ERR_CONTROL_PLANE_UNREACHABLE", "the control plane closed the stream before the deploy finished; `keelson rollout <service>` shows where it got to");
  return done;
}

/** Prints how a deploy or rollback ended; sets exit code 1 when it failed or was rolled back. */
export function reportResult(r: DeployResult, what: string, started: number, prefix = ""): void {
  const took = ms(Date.now() - started);
  switch (r.outcome) {
    case "deployed":
      if (r.rollout?.phase === "paused") {
        print(`${prefix}${color.yellow("‖")} ${r.service}: ${r.release} takes ${r.rollout.weight}% of traffic; rollout ${r.rollout.id} waits at step ${r.rollout.step + 1} for \`keelson promote ${r.service}\` (${took})`);
        return;
      }
      if (r.rollout?.phase === "progressing" && waitsForGroup(r.rollout)) {
        // A release group member held back by a paused member: ready to go live, or with a fixed
        // port not started yet (it starts once the rest of the group is at the gate).
        const what = r.rollout.hold === "start" ? "has not started (fixed port: it replaces the old replicas once the rest of its group is ready)" : `is ready and takes ${r.rollout.weight}% of traffic`;
        print(`${prefix}${color.yellow("‖")} ${r.service}: ${r.release} ${what}; rollout ${r.rollout.id} waits for its release group (${took})`);
        return;
      }
      print(`${prefix}${color.green("✓")} ${r.service}: ${what} ${r.release} serves all traffic (${took})${r.rollout?.phase === "switched" && r.rollout.warmUntil ? color.dim(`; ${r.previous} stays warm for rollback until ${r.rollout.warmUntil}`) : ""}`);
      return;
    case "unchanged":
      print(`${prefix}${color.green("✓")} ${r.service} already runs ${r.release}; nothing to deploy`);
      return;
    case "started":
      print(`${prefix}${color.green("✓")} ${r.service}: ${what} ${r.release} started (rollout ${r.rollout?.id ?? "?"}); \`keelson releases ${r.service}\` follows it`);
      return;
    case "rolled-back":
      print(`${prefix}${color.yellow("↺")} ${r.service}: ${r.release} failed and was rolled back; ${r.previous} keeps serving`);
      process.exitCode = 1;
      return;
    case "failed":
      print(`${prefix}${color.red("✗")} ${r.service}: ${what} of ${r.release} failed`);
      process.exitCode = 1;
  }
}

function parseDurationFlag(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected a duration like 500ms, 5s or 1m, got "${value}"`);
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as "ms" | "s" | "m"]);
}

const dirOption = () => new Option("-C, --dir <dir>", "project folder").default(".");

export function addDeliveryCommands(program: Command): void {
  program
    .command("deploy")
    .description("run services' pipelines and roll the new releases out with their strategies (several services: as one release group)")
    .argument("<services...>", "service names; several are built first, go live together and roll back together")
    .addOption(dirOption())
    .option("--commit <sha>", "build this git commit instead of the working tree")
    .option("--rebuild", "run the pipeline even if the release is already built")
    .option("--no-wait", "return once the rollout has started")
    .option("--logs", "show the stages' output as they run")
    .action(async (services: string[], opts: { dir: string; commit?: string; rebuild?: boolean; wait: boolean; logs?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const started = Date.now();
      print(`${color.bold("keelson deploy")} ${services.join(" ")}${opts.commit ? ` at ${opts.commit}` : " from the working tree"}${services.length > 1 ? color.dim(" (one release group)") : ""}`);
      const body = { commit: opts.commit, rebuild: opts.rebuild === true, wait: opts.wait };
      const results =
        services.length === 1
          ? [await streamDeploy(api, `/v1/services/${encodeURIComponent(services[0] as string)}/deploy`, body, { logs: opts.logs === true })]
          : (await streamGroupDeploy(api, { ...body, services }, { logs: opts.logs === true })).results;
      for (const result of results) {
        if (result.outcome !== "failed" && result.outcome !== "rolled-back" && result.message) print(result.message);
        reportResult(result, "release", started, services.length > 1 ? "  " : "");
      }
    });

  program
    .command("rollback")
    .description("go back to the previous release (instant while it is still warm)")
    .argument("<service>", "service name")
    .addOption(dirOption())
    .option("--to <release>", "the release to go back to (default: the previous one)")
    .option("--no-wait", "return once the rollback has started")
    .action(async (service: string, opts: { dir: string; to?: string; wait: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const started = Date.now();
      const result = await streamDeploy(api, `/v1/services/${encodeURIComponent(service)}/rollback`, { to: opts.to, wait: opts.wait }, {});
      reportResult(result, "rollback to", started);
    });

  program
    .command("promote")
    .description("continue a canary rollout paused for approval (--full: skip its remaining steps)")
    .argument("<service>", "service name")
    .addOption(dirOption())
    .option("--full", "send all traffic to the new release now")
    .action(async (service: string, opts: { dir: string; full?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { rollout } = await api.post<{ rollout: RolloutState }>(`/v1/services/${encodeURIComponent(service)}/promote`, { full: opts.full === true });
      print(`${color.green("✓")} ${service}: rollout ${rollout.id} ${opts.full ? "promoted to all traffic" : `goes on from step ${rollout.step + 1}`}`);
    });

  program
    .command("releases")
    .description("list a service's releases: which is live, previous, warm or failed, and who deployed them")
    .argument("<service>", "service name")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (service: string, opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const name = encodeURIComponent(service);
      const [{ releases }, { rollout }] = await Promise.all([
        api.get<{ releases: ReleaseView[] }>(`/v1/services/${name}/releases`),
        api.get<{ rollout: RolloutState | null }>(`/v1/services/${name}/rollout`),
      ]);
      if (opts.json) return print(JSON.stringify({ releases, rollout }, null, 2));
      const paint = { live: color.green, previous: color.cyan, warm: color.yellow, failed: color.red, available: (t: string) => t };
      print(
        table(
          ["RELEASE", "STATUS", "CREATED", "COMMIT", "DEPLOYED BY", "DEPLOYED AT", "RUN", "READY"],
          releases.map((r) => [r.id, paint[r.status](r.status), r.createdAt, r.commit ? r.commit.slice(0, 10) : "-", r.deployedBy ?? "-", r.deployedAt ?? "-", r.pipelineRun ?? "-", String(r.replicas)]),
        ),
      );
      if (rollout) {
        print("");
        print(`last rollout ${rollout.id}: ${rollout.strategy} ${rollout.from ?? "-"} → ${rollout.to}, ${rollout.phase}, ${rollout.weight}% of traffic, by ${rollout.actor} at ${rollout.startedAt}${rollout.message ? `\n  ${rollout.message.split("\n")[0]}` : ""}`);
      }
    });

  program
    .command("runs")
    .description("list a service's pipeline runs, or print one run's log")
    .argument("<service>", "service name")
    .argument("[run]", "a run id: print its log")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (service: string, run: string | undefined, opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      if (run) {
        return print(await api.text(`/v1/pipelines/${encodeURIComponent(run)}/log`));
      }
      const { runs } = await api.get<{ runs: PipelineRunView[] }>(`/v1/services/${encodeURIComponent(service)}/pipelines`);
      if (opts.json) return print(JSON.stringify(runs, null, 2));
      const paint = { running: color.cyan, succeeded: color.green, failed: color.red, interrupted: color.yellow };
      print(
        table(
          ["RUN", "STATUS", "TRIGGER", "BY", "STARTED", "TOOK", "COMMIT", "RELEASE", "STAGES"],
          runs.map((r) => [
            r.run,
            paint[r.status](r.status),
            r.trigger ?? "-",
            r.actor,
            r.startedAt,
            r.durationMs === undefined ? "-" : ms(r.durationMs),
            r.commit ? r.commit.slice(0, 10) : "-",
            r.release ?? "-",
            r.stages.map((s) => `${s.name}${s.status === "failed" ? "✗" : s.cached ? "(cached)" : ""}`).join(" ") || "-",
          ]),
        ),
      );
    });

  program
    .command("watch")
    .description("follow the git repository: deploy the services whose paths change in new commits")
    .argument("[dir]", "project folder", ".")
    .addOption(new Option("--interval <duration>", "how often to look for new commits").argParser(parseDurationFlag).default(5000, "5s"))
    .option("--ref <ref>", "the ref to follow", "HEAD")
    .option("--once", "handle new commits once and exit (what the post-commit hook runs)")
    .action(async (dirArg: string, opts: { interval: number; ref: string; once?: boolean }) => {
      const dir = resolve(dirArg);
      const loaded = await loadManifest(dir);
      const repo = await gitToplevel(dir);
      if (!repo) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${dir} is not in a git repository; \`keelson watch\` follows commits`);
      const api = await connect(dir);
      const seenFile = join(stateDirOf(dir), "watch.json");
      const lastSeen = await readFile(seenFile, "utf8").then((t) => (JSON.parse(t) as { lastSeen?: string }).lastSeen, () => undefined);
      const filters = pathFilters(loaded, repo);
      // The manifest and the shared pipeline files it reads: a change to them needs `keelson up`.
      const manifestFiles = [loaded.file, ...loaded.sharedFiles].map((f) => toRepoPath(repo, f));
      let first = lastSeen === undefined;
      const watcher = createGitWatcher({
        repoDir: repo,
        ref: opts.ref,
        intervalMs: opts.interval,
        lastSeen,
        onCommits: async (batch) => {
          if (first) {
            // The first look only marks where watching starts: what runs now is not redeployed.
            first = false;
            print(`watching ${repo} (${opts.ref}) from ${batch.to.slice(0, 10)}`);
          } else {
            await handleBatch(api, batch, filters, manifestFiles);
          }
          await mkdir(stateDirOf(dir), { recursive: true });
          await writeFile(seenFile, JSON.stringify({ lastSeen: batch.to, at: new Date().toISOString() }));
        },
        onError: (err) => print(color.red(`watch: ${err instanceof Error ? err.message : String(err)}`)),
      });
      if (opts.once) {
        await watcher.checkOnce();
        return;
      }
      if (!first) print(`watching ${repo} (${opts.ref}) from ${lastSeen?.slice(0, 10)}; Ctrl-C stops`);
      watcher.start();
      await untilSignal();
      await watcher.stop();
    });

  const hooks = program.command("hooks").description("git hooks that deploy on commit");
  hooks
    .command("install")
    .description("write a post-commit hook that runs `keelson watch --once` after every commit")
    .argument("[dir]", "project folder", ".")
    .option("--force", "replace a post-commit hook that is not Keelson's (kept as a backup)")
    .action(async (dirArg: string, opts: { force?: boolean }) => {
      const dir = resolve(dirArg);
      await loadManifest(dir);
      const repo = await gitToplevel(dir);
      if (!repo) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${dir} is not in a git repository`);
      const bin = process.argv[1] ?? "keelson";
      const result = await installPostCommitHook({
        repoDir: repo,
        command: [process.execPath, bin, "watch", "--once", dir],
        logFile: join(stateDirOf(dir), "watch.log"),
        force: opts.force === true,
      });
      // Watching starts here: the next commit is the first the hook deploys.
      const seenFile = join(stateDirOf(dir), "watch.json");
      const head = await resolveCommit(repo, "HEAD").catch(() => undefined);
      const known = await readFile(seenFile, "utf8").then(() => true, () => false);
      if (head && !known) {
        await mkdir(stateDirOf(dir), { recursive: true });
        await writeFile(seenFile, JSON.stringify({ lastSeen: head, at: new Date().toISOString() }));
      }
      print(`${color.green("✓")} post-commit hook written to ${result.path}${result.replaced ? " (the old hook was kept as a backup)" : ""}`);
      print(color.dim(`  every commit now deploys the services it touches; output goes to ${join(stateDirOf(dir), "watch.log")}`));
    });
  hooks
    .command("uninstall")
    .description("remove Keelson's post-commit hook (restoring a backed-up one)")
    .argument("[dir]", "project folder", ".")
    .action(async (dirArg: string) => {
      const repo = await gitToplevel(resolve(dirArg));
      if (!repo) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${resolve(dirArg)} is not in a git repository`);
      print((await uninstallPostCommitHook(repo)) ? `${color.green("✓")} hook removed` : "no Keelson hook was installed");
    });
}

function toRepoPath(repo: string, abs: string): string {
  return relative(repo, abs).split(sep).join("/");
}

/** Each service's path filters, repo-relative: its folder and the shared paths it includes. */
export function pathFilters(loaded: LoadedManifest, repo: string): Array<{ name: string; paths: string[] }> {
  return Object.entries(loaded.manifest.services).map(([name, spec]) => ({
    name,
    paths: [spec.path, ...(spec.pipeline?.include ?? [])].map((p) => toRepoPath(repo, resolve(loaded.dir, p))),
  }));
}

async function handleBatch(api: ApiClient, batch: GitCommitBatch, filters: Array<{ name: string; paths: string[] }>, manifestFiles: string[]): Promise<void> {
  const services = servicesForChanges(batch.files, filters);
  const head = batch.commits.at(-1);
  print(`${color.bold(batch.to.slice(0, 10))} ${head?.subject ?? ""}: ${batch.commits.length} new commit${batch.commits.length === 1 ? "" : "s"}, ${batch.files.length} files changed${batch.rewritten ? color.yellow(" (history was rewritten)") : ""}`);
  for (const file of manifestFiles.filter((f) => batch.files.includes(f))) {
    print(color.yellow(`  ${file} changed: run \`keelson up\` to apply it (watch deploys code, not manifest changes)`));
  }
  if (services.length === 0) {
    print(color.dim("  no service's paths changed; nothing to deploy"));
    return;
  }
  print(`  deploying ${services.join(", ")}`);
  const failed: string[] = [];
  await Promise.all(
    services.map(async (service) => {
      const started = Date.now();
      try {
        const result = await streamDeploy(api, `/v1/services/${encodeURIComponent(service)}/deploy`, { commit: batch.to, trigger: "watch" }, { prefix: `[${service}] ` });
        reportResult(result, "release", started, `[${service}] `);
        if (result.outcome === "failed" || result.outcome === "rolled-back") failed.push(service);
      } catch (err) {
        print(color.red(`[${service}] ${err instanceof Error ? err.message : String(err)}`));
        failed.push(service);
      }
    }),
  );
  // A failed pipeline or rollout is not retried on the same commit: it needs a new commit.
  if (failed.length > 0) process.exitCode = 1;
}
