// `keelson autoscale <service>`: what the autoscaler sees and why it last scaled or held.
// `keelson chaos ...`: kill or hang replicas, inject latency or errors at the gateway, stop the
// control plane; bounded in time, stopped by Ctrl-C, every injection recorded as an event.
import { resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { KeelsonError, type KeelsonEvent, type StatusReport } from "@keelson/protocol";
import type { IntegrityReport } from "../store/index.js";
import type { ChaosExperiment } from "../runtime/index.js";
import { stateDirOf } from "../api/index.js";
import { parseDuration } from "../manifest/index.js";
import { ensureControlPlane, findControlPlane, isAlive } from "./daemons.js";
import { color, ms, table } from "./output.js";
import { connect, print, untilSignal } from "./progress.js";

function duration(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  try {
    return parseDuration(text);
  } catch {
    throw new InvalidArgumentError(`expected a duration like "500ms", "10s" or "2m", got "${text}"`);
  }
}

function share(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text);
  const value = m ? Number(m[1]) / (m[2] === "%" ? 100 : 1) : NaN;
  if (!(value > 0 && value <= 1)) throw new InvalidArgumentError(`expected a share like "30%" or 0.3 (above 0, at most 1), got "${text}"`);
  return value;
}

function status(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 400 || n > 599) throw new InvalidArgumentError(`expected an HTTP status 400-599, got "${text}"`);
  return n;
}

const time = (iso: string) => iso.slice(11, 19);

interface AutoscaleView {
  service: string;
  status: Record<string, unknown> | null;
  events: KeelsonEvent[];
}

function describeDecision(e: KeelsonEvent): string {
  const d = e.details as { from?: number; to?: number; message?: string; reason?: string; metrics?: Array<{ measure: string; current?: number; target?: number }> };
  const metrics = (d.metrics ?? []).map((m) => `${m.measure} ${m.current === undefined ? "?" : round(m.current)}/${m.target === undefined ? "?" : round(m.target)}`).join(", ");
  const what = e.kind === "autoscale.scaled" ? `${color.cyan("scaled")} ${d.from} → ${d.to}` : e.kind === "service.activated" ? `${color.green("activated")} ${d.from ?? 0} → ${d.to}` : color.yellow(`held at ${d.from}`);
  // The autoscaler's message already names the deciding measure; without one, list them.
  return [time(e.at), what, d.message ?? [d.reason, metrics].filter(Boolean).join(": ")].filter((x) => x !== undefined && x !== "").join("  ");
}

const round = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));

function describeExperiment(x: ChaosExperiment): string {
  const target = x.service ?? "every service";
  const what =
    x.kind === "kill"
      ? `kill a replica of ${target} every ${ms(x.intervalMs ?? 0)}`
      : x.kind === "hang"
        ? `hang a replica of ${target} every ${ms(x.intervalMs ?? 0)}${x.hangMs ? ` for ${ms(x.hangMs)}` : ""}`
        : x.kind === "latency"
          ? `add ${ms(x.delayMs ?? 0)} to ${Math.round((x.share ?? 1) * 100)}% of ${target}'s requests`
          : `answer ${x.status} to ${Math.round((x.share ?? 1) * 100)}% of ${target}'s requests`;
  return `${what}${x.version ? ` (version ${x.version})` : ""} for ${ms(x.durationMs)}`;
}

export function addOperationsCommands(program: Command): void {
  program
    .command("autoscale")
    .description("show what the autoscaler sees for a service and why it last scaled or held")
    .argument("<service>", "service name")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("-n, --limit <n>", "decisions to show", "10")
    .option("--json", "print JSON")
    .action(async (service: string, opts: { dir: string; limit: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const view = await api.get<AutoscaleView>(`/v1/services/${encodeURIComponent(service)}/autoscale?limit=${encodeURIComponent(opts.limit)}`);
      if (opts.json) return print(JSON.stringify(view, null, 2));
      const s = view.status as {
        current: number;
        desired: number;
        min: number;
        max: number;
        metrics: Array<{ measure: string; current?: number; target: number; proposal?: number; invalid?: string; note?: string }>;
        held?: { message: string; since: string };
        evaluations: Array<{ at: string; message: string }>;
      } | null;
      if (s === null) {
        print(`${service}: the autoscaler has not looked at it yet (it needs autoscale: in keelson.yaml and a release)`);
      } else {
        print(`${color.bold(service)}: ${s.current} replicas (min ${s.min}, max ${s.max}), desired ${s.desired}`);
        if (s.metrics.length > 0) {
          print(
            table(
              ["MEASURE", "CURRENT", "TARGET", "PROPOSAL", "NOTE"],
              s.metrics.map((m) => [m.measure, m.current === undefined ? "no data" : round(m.current), round(m.target), m.proposal === undefined ? "-" : String(m.proposal), m.invalid ?? m.note ?? ""]),
            ),
          );
        }
        if (s.held) print(color.yellow(`holding since ${time(s.held.since)}: ${s.held.message}`));
        const last = s.evaluations[s.evaluations.length - 1];
        if (last) print(`last look ${time(last.at)}: ${last.message}`);
      }
      print("");
      if (view.events.length === 0) return print(color.dim("no scaling decisions recorded yet"));
      print(color.bold("decisions (newest first):"));
      for (const e of view.events) print(`  ${describeDecision(e)}`);
    });

  const chaos = program.command("chaos").description("inject faults on purpose: kill or hang replicas, slow or fail requests, stop the control plane");

  /** Starts an experiment and follows it until it ends; Ctrl-C stops it. */
  async function run(dir: string, body: Record<string, unknown>, opts: { detach?: boolean; json?: boolean }): Promise<void> {
    const api = await connect(resolve(dir));
    const path = body.service === undefined ? "/v1/chaos" : `/v1/services/${encodeURIComponent(String(body.service))}/chaos`;
    const { service: _ignored, ...rest } = body;
    const started = await api.post<ChaosExperiment>(path, body.service === undefined ? body : rest);
    if (opts.json && opts.detach) return print(JSON.stringify(started, null, 2));
    // With --json, stdout is only the final experiment, for scripts.
    const say = (line: string) => {
      if (!opts.json) print(line);
    };
    say(`${color.yellow("⚡")} ${started.id}: ${describeExperiment(started)}, until ${time(started.endsAt)}`);
    if (opts.detach) return print(color.dim(`running in the control plane; \`keelson chaos stop ${started.id}\` ends it early`));
    say(color.dim("Ctrl-C stops the experiment"));
    let interrupted = false;
    void untilSignal().then(() => (interrupted = true));
    const seen = new Set<string>();
    let current = started;
    const stopPath = body.service === undefined ? `/v1/chaos/${started.id}` : `/v1/services/${encodeURIComponent(String(body.service))}/chaos/${started.id}`;
    for (;;) {
      const list = await api.get<{ experiments: ChaosExperiment[] }>("/v1/chaos");
      current = list.experiments.find((x) => x.id === started.id) ?? current;
      for (const i of [...current.recent].reverse()) {
        const key = `${i.at} ${i.replica}`;
        if (seen.has(key)) continue;
        seen.add(key);
        say(`  ${time(i.at)} ${current.kind === "kill" ? "killed" : "hung"} ${i.replica} (pid ${i.pid ?? "?"})`);
      }
      if (current.state !== "running") break;
      if (interrupted) {
        current = await api.request<ChaosExperiment>("DELETE", stopPath);
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    if (opts.json) return print(JSON.stringify(current, null, 2));
    const how = current.state === "stopped" ? `stopped${current.stoppedBy ? ` by ${current.stoppedBy}` : ""}` : "finished";
    const counts = current.kind === "kill" || current.kind === "hang" ? `: ${current.injections} replica${current.injections === 1 ? "" : "s"} ${current.kind === "kill" ? "killed" : "hung"}${current.skipped > 0 ? `, ${current.skipped} round${current.skipped === 1 ? "" : "s"} skipped (no replica could be hit without taking a service's last one)` : ""}` : "";
    print(`${color.green("✓")} ${current.id} ${how}${counts}`);
  }

  const common = (c: Command) =>
    c
      .option("-C, --dir <dir>", "project folder", ".")
      .addOption(new Option("--duration <duration>", "how long the experiment runs (at most 1h)").argParser(duration).default(60_000, "60s"))
      .option("-d, --detach", "start it and return; it ends by itself")
      .option("--json", "print the experiment as JSON");

  common(
    chaos
      .command("kill")
      .description("kill a random ready replica (SIGKILL, as a crash) at an interval; it restarts as after any crash")
      .argument("[service]", "service name; omit with --all")
      .option("--all", "any service's replicas")
      .addOption(new Option("--interval <duration>", "time between kills").argParser(duration).default(10_000, "10s"))
      .option("--version <release>", "only replicas of this release")
      .option("--allow-last", "may kill a service's last ready replica (an outage, not a replica failure)"),
  ).action(async (service: string | undefined, opts: { dir: string; all?: boolean; interval: number; duration: number; version?: string; allowLast?: boolean; detach?: boolean; json?: boolean }, cmd: Command) => {
    if ((service === undefined) === (opts.all !== true)) cmd.error("error: name a service, or pass --all for every service");
    await run(opts.dir, { kind: "kill", ...(service ? { service } : {}), durationMs: opts.duration, intervalMs: opts.interval, ...(opts.version ? { version: opts.version } : {}), ...(opts.allowLast ? { allowLast: true } : {}) }, opts);
  });

  common(
    chaos
      .command("hang")
      .description("make a random ready replica hang (SIGSTOP: it accepts connections and answers nothing) at an interval")
      .argument("[service]", "service name; omit with --all")
      .option("--all", "any service's replicas")
      .addOption(new Option("--interval <duration>", "time between hangs").argParser(duration).default(10_000, "10s"))
      .addOption(new Option("--hang-for <duration>", "how long each replica stays hung (default: until the experiment ends)").argParser(duration))
      .option("--version <release>", "only replicas of this release")
      .option("--allow-last", "may hang a service's last ready replica"),
  ).action(async (service: string | undefined, opts: { dir: string; all?: boolean; interval: number; duration: number; hangFor?: number; version?: string; allowLast?: boolean; detach?: boolean; json?: boolean }, cmd: Command) => {
    if ((service === undefined) === (opts.all !== true)) cmd.error("error: name a service, or pass --all for every service");
    await run(
      opts.dir,
      { kind: "hang", ...(service ? { service } : {}), durationMs: opts.duration, intervalMs: opts.interval, ...(opts.hangFor ? { hangMs: opts.hangFor } : {}), ...(opts.version ? { version: opts.version } : {}), ...(opts.allowLast ? { allowLast: true } : {}) },
      opts,
    );
  });

  common(
    chaos
      .command("latency")
      .description("have the gateway delay a share of a service's requests")
      .argument("<service>", "service name")
      .requiredOption("--delay <duration>", "delay added before the request goes on", duration)
      .addOption(new Option("--share <share>", 'share of requests, e.g. "30%" or 0.3').argParser(share).default(1, "100%"))
      .option("--version <version>", "only requests routed to this release id or split label (e.g. canary)"),
  ).action(async (service: string, opts: { dir: string; delay: number; share: number; version?: string; duration: number; detach?: boolean; json?: boolean }) => {
    await run(opts.dir, { kind: "latency", service, durationMs: opts.duration, delayMs: opts.delay, share: opts.share, ...(opts.version ? { version: opts.version } : {}) }, opts);
  });

  common(
    chaos
      .command("error")
      .description("have the gateway answer an error to a share of a service's requests (counted as the service's failures)")
      .argument("<service>", "service name")
      .addOption(new Option("--status <code>", "status answered").argParser(status).default(503))
      .addOption(new Option("--share <share>", 'share of requests, e.g. "10%" or 0.1').argParser(share).default(1, "100%"))
      .option("--version <version>", "only requests routed to this release id or split label (e.g. canary)"),
  ).action(async (service: string, opts: { dir: string; status: number; share: number; version?: string; duration: number; detach?: boolean; json?: boolean }) => {
    await run(opts.dir, { kind: "error", service, durationMs: opts.duration, status: opts.status, share: opts.share, ...(opts.version ? { version: opts.version } : {}) }, opts);
  });

  chaos
    .command("controlplane")
    .description("stop the control plane (SIGKILL by default), start it again, and check the store; services keep serving through the gateway meanwhile")
    .option("-C, --dir <dir>", "project folder", ".")
    .addOption(new Option("--signal <signal>", "how to stop it").choices(["KILL", "TERM"]).default("KILL"))
    .addOption(new Option("--down <duration>", "how long it stays down").argParser(duration).default(2_000, "2s"))
    .option("--json", "print the report as JSON")
    .action(async (opts: { dir: string; signal: "KILL" | "TERM"; down: number; json?: boolean }) => {
      const dir = resolve(opts.dir);
      const stateDir = stateDirOf(dir);
      const api = await connect(dir);
      const before = await api.get<StatusReport>("/v1/status");
      const cp = await findControlPlane(stateDir);
      if (!cp) throw new KeelsonError("KEELSON_ERR_CONTROL_PLANE_UNREACHABLE", "the control plane stopped answering before the experiment began");
      const { pid } = await api.post<{ pid: number }>("/v1/chaos", { kind: "controlplane", signal: `SIG${opts.signal}` });
      if (pid !== cp.pid) throw new KeelsonError("KEELSON_ERR_CONFLICT", `the control plane answering (pid ${pid}) is not the one recorded in ${stateDir} (pid ${cp.pid}); nothing was stopped`);
      const t0 = Date.now();
      process.kill(pid, `SIG${opts.signal}`);
      while (isAlive(pid) && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
      if (isAlive(pid)) throw new KeelsonError("KEELSON_ERR_RUNTIME", `the control plane (pid ${pid}) is still running 20 s after SIG${opts.signal}`);
      if (!opts.json) print(`${color.yellow("⚡")} control plane pid ${pid} stopped with SIG${opts.signal} after ${ms(Date.now() - t0)}; down for ${ms(opts.down)} (Ctrl-C starts it now)`);
      // Ctrl-C ends the outage early: the control plane is always started again.
      let wake: (() => void) | undefined;
      const onSignal = () => wake?.();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, opts.down);
      });
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      const url = new URL(cp.url);
      const project = before.project;
      const restarted = await ensureControlPlane({ dir, stateDir, host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port), gatewayUrl: before.gateway.url, project });
      const back = Date.now();
      const integrity = await (await connect(dir)).get<IntegrityReport>("/v1/integrity");
      const report = { pid, signal: `SIG${opts.signal}`, newPid: restarted.pid, downMs: back - t0, integrity };
      if (opts.json) return print(JSON.stringify(report, null, 2));
      print(`${color.green("✓")} control plane back as pid ${restarted.pid} after ${ms(back - t0)}`);
      if (integrity.ok) {
        print(`${color.green("✓")} store whole: ${integrity.checked.services} services, ${integrity.checked.releases} releases, ${integrity.checked.replicas} replicas, ${integrity.checked.events} events checked`);
      } else {
        print(`${color.red("✗")} store problems:\n${integrity.problems.map((p) => `  ${p}`).join("\n")}`);
        process.exitCode = 1;
      }
    });

  chaos
    .command("list")
    .description("running and recent experiments")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { experiments } = await api.get<{ experiments: ChaosExperiment[] }>("/v1/chaos");
      if (opts.json) return print(JSON.stringify(experiments, null, 2));
      if (experiments.length === 0) return print("no chaos experiments since the control plane started");
      print(table(["ID", "STATE", "WHAT", "STARTED", "INJECTED", "BY"], experiments.map((x) => [x.id, x.state === "running" ? color.yellow(x.state) : x.state, describeExperiment(x), time(x.startedAt), String(x.injections), x.actor])));
    });

  chaos
    .command("stop")
    .description("stop a running experiment (hung replicas resume, faults leave the gateway)")
    .argument("<id>", "experiment id (keelson chaos list)")
    .option("-C, --dir <dir>", "project folder", ".")
    .action(async (id: string, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      const { experiments } = await api.get<{ experiments: ChaosExperiment[] }>("/v1/chaos");
      const x = experiments.find((e) => e.id === id);
      if (!x) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no chaos experiment "${id}"; \`keelson chaos list\` shows them`);
      const stopped = await api.request<ChaosExperiment>("DELETE", x.service === undefined ? `/v1/chaos/${id}` : `/v1/services/${encodeURIComponent(x.service)}/chaos/${id}`);
      print(`${color.green("✓")} ${id} ${stopped.state}`);
    });
}
