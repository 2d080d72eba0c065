// `keelson rollout <service>`: where a rollout is and, once it is over, why it passed or failed,
// with the canary analysis' numbers per version and each check against its threshold.
// `keelson abort <service>`: stop the rollout under way and go back.
import { resolve } from "node:path";
import { Option, type Command } from "commander";
import type { AnalysisEvidence, AnalysisRecord, RolloutState } from "../delivery/index.js";
import { color, ms, table } from "./output.js";
import { connect, print, untilSignal } from "./progress.js";

interface RolloutView {
  service: string;
  rollout: RolloutState | null;
  strategy: string;
  steps: Array<Record<string, unknown>>;
}

const PHASE_COLOR: Record<string, (t: string) => string> = {
  succeeded: color.green,
  failed: color.red,
  "rolled-back": color.red,
  paused: color.yellow,
};

const pct = (x: number | undefined) => (x === undefined ? "-" : `${(x * 100).toFixed(2)}%`);
const sec = (x: number | undefined) => (x === undefined ? "-" : `${Math.round(x * 1000)} ms`);
/** Counts from Prometheus' increase() are extrapolated, so not always whole. */
const count = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

function describeStep(step: Record<string, unknown>): string {
  if ("setWeight" in step) return `setWeight ${String(step.setWeight)}%`;
  if ("pause" in step) return step.pause === "manual" ? "pause until promoted" : `pause ${ms(Number(step.pause))}`;
  if ("match" in step) {
    const m = step.match as { headers?: Record<string, unknown>; cookies?: Record<string, unknown> };
    const parts = [...Object.keys(m.headers ?? {}).map((h) => `header ${h}`), ...Object.keys(m.cookies ?? {}).map((c) => `cookie ${c}`)];
    return `match ${parts.join(", ")}`;
  }
  if ("analysis" in step) return "analysis";
  return JSON.stringify(step);
}

function evidenceLines(e: AnalysisEvidence, indent: string): string[] {
  const versions = table(
    ["VERSION", "REQUESTS", "ERRORS", "ERROR RATIO", "P50", "P99"],
    [
      ["canary", count(e.canary.requests), count(e.canary.errors), pct(e.canary.errorRatio), sec(e.canary.p50), sec(e.canary.p99)],
      ["baseline", count(e.baseline.requests), count(e.baseline.errors), pct(e.baseline.errorRatio), sec(e.baseline.p50), sec(e.baseline.p99)],
    ],
  );
  const mark = { pass: color.green("pass"), fail: color.red("FAIL"), watching: "ok so far", "no-data": color.yellow("no data") };
  const checks = table(
    ["CHECK", "STATUS", "EVIDENCE"],
    e.checks.map((c) => [c.name, mark[c.status], c.detail]),
  );
  return [`${indent}after ${ms(e.elapsedMs)} (${e.looks} looks):`, ...versions.split("\n").map((l) => indent + "  " + l), "", ...checks.split("\n").map((l) => indent + "  " + l)];
}

function analysisLines(a: AnalysisRecord): string[] {
  const paint = a.phase === "Successful" ? color.green : a.phase === "Failed" ? color.red : color.yellow;
  const head = `  step ${a.step + 1}: analysis ${paint(a.phase)}${a.dryRun ? color.dim(" (dry run)") : ""} — ${a.reason}`;
  return [head, ...(a.evidence ? evidenceLines(a.evidence, "    ") : [])];
}

/** The whole view of one rollout, as lines of text. */
export function describeRollout(v: RolloutView): string {
  const s = v.rollout;
  if (!s) return `${v.service} has had no rollout yet (strategy ${v.strategy}).`;
  const paint = PHASE_COLOR[s.phase] ?? color.cyan;
  const lines = [
    `${color.bold(v.service)}: rollout ${s.id} (${s.strategy}) ${s.from ?? "-"} → ${s.to}: ${paint(s.phase)}, ${s.weight}% of traffic on ${s.to}`,
    color.dim(`  started by ${s.actor} at ${s.startedAt}${s.commit ? `, commit ${s.commit.slice(0, 10)}` : ""}; updated ${s.updatedAt}${s.baseline ? `; baseline ${s.baseline}` : ""}`),
  ];
  if (s.strategy === "canary" && v.steps.length > 0) {
    lines.push("  steps:");
    v.steps.forEach((step, i) => {
      const done = i < s.step || s.phase === "succeeded" || s.phase === "finishing" || s.phase === "promoting";
      const current = i === s.step && (s.phase === "progressing" || s.phase === "paused");
      const stoppedHere = i === s.step && (s.phase === "rolled-back" || s.phase === "failed");
      const marker = stoppedHere ? color.red("✗") : current ? color.cyan("▶") : done ? color.green("✓") : " ";
      lines.push(`   ${marker} ${i + 1}. ${describeStep(step)}`);
    });
  }
  for (const a of s.analyses ?? []) lines.push(...analysisLines(a));
  if (s.analysis) {
    const run = s.analysis.run;
    lines.push(`  step ${s.analysis.step + 1}: analysis ${color.cyan(run.phase)}${s.analysis.dryRun ? color.dim(" (dry run)") : ""}${run.reason ? ` — ${run.reason}` : ""}`);
    if (run.evidence) lines.push(...evidenceLines(run.evidence, "    "));
  }
  if (s.message) lines.push(`  ${s.phase === "paused" ? color.yellow("‖") : s.phase === "succeeded" ? color.green("✓") : color.red("✗")} ${s.message}`);
  return lines.join("\n");
}

const dirOption = () => new Option("-C, --dir <dir>", "project folder").default(".");

export function addRolloutCommands(program: Command): void {
  program
    .command("rollout")
    .description("show a service's rollout: its steps, traffic and the canary analysis' numbers and verdicts")
    .argument("<service>", "service name")
    .addOption(dirOption())
    .option("-w, --watch", "keep showing it until the rollout ends (Ctrl-C stops watching, not the rollout)")
    .option("--json", "print JSON")
    .action(async (service: string, opts: { dir: string; watch?: boolean; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const path = `/v1/services/${encodeURIComponent(service)}/rollout`;
      const view = await api.get<RolloutView>(path);
      if (opts.json) return print(JSON.stringify(view, null, 2));
      print(describeRollout(view));
      if (!opts.watch) return;
      let stop = false;
      void untilSignal().then(() => (stop = true));
      let last = view.rollout?.updatedAt;
      const active = (r: RolloutState | null) => r !== null && ["progressing", "paused", "promoting", "switched", "finishing"].includes(r.phase);
      while (!stop && active(view.rollout)) {
        await new Promise((r) => setTimeout(r, 1000));
        const next = await api.get<RolloutView>(path);
        if (next.rollout?.updatedAt !== last) {
          last = next.rollout?.updatedAt;
          print(`\n${color.dim(new Date().toISOString())}\n${describeRollout(next)}`);
        }
        view.rollout = next.rollout;
      }
    });

  program
    .command("abort")
    .description("stop a service's rollout under way and roll back to the release before it")
    .argument("<service>", "service name")
    .addOption(dirOption())
    .action(async (service: string, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      const { rollout } = await api.post<{ rollout: RolloutState }>(`/v1/services/${encodeURIComponent(service)}/abort`, {});
      print(`${color.yellow("↺")} ${service}: rollout ${rollout.id} aborted; ${rollout.from ?? "the previous release"} takes all traffic again`);
    });
}
