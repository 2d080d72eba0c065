// `keelson experiment results <flag>`: per-variant users, conversions and rates, the lift of each
// treatment over the control with its always-valid interval, the sample ratio check and the
// verdict, and for requests the gateway routed by the flag, the error ratio of each variant
// against the control's (descriptive only when the counts do not run from the experiment's
// start) and its latency, from the control plane.
import { resolve } from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import type { ExperimentGatewayResults, ExperimentResults, Interval } from "../flags/index.js";
import { color, table } from "./output.js";
import { connect, print } from "./progress.js";

const pct = (x: number, digits = 2) => `${(x * 100).toFixed(digits)}%`;
const signed = (x: number, digits: number, unit: string) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}${unit}`;

function formatP(p: number): string {
  if (p === 0) return "< 1e-300";
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

function lift(abs: Interval | undefined, rel: Interval | undefined): string {
  if (!abs) return color.dim("-");
  const pp = (x: number) => signed(x * 100, 2, " pp");
  let text = `${pp(abs.estimate)} (${pp(abs.low)} to ${pp(abs.high)})`;
  if (rel) text += `  ${signed(rel.estimate * 100, 1, "%")} (${signed(rel.low * 100, 0, "%")} to ${signed(rel.high * 100, 0, "%")})`;
  return abs.low > 0 ? color.green(text) : abs.high < 0 ? color.red(text) : text;
}

/** A latency in seconds, in ms below 10 s. */
function latency(seconds: number | undefined): string {
  if (seconds === undefined) return color.dim("-");
  if (seconds >= 10) return `${seconds.toFixed(1)} s`;
  const ms = seconds * 1000;
  return `${ms < 10 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

/** The error-ratio difference of a variant against the control; more errors are worse (red). */
function errorDifference(d: Interval | undefined): string {
  if (!d) return color.dim("-");
  const pp = (x: number) => signed(x * 100, 2, " pp");
  const text = `${pp(d.estimate)} (${pp(d.low)} to ${pp(d.high)})`;
  return d.low > 0 ? color.red(text) : d.high < 0 ? color.green(text) : text;
}

/** An ISO time as "2026-11-27 16:58:15 UTC". */
function when(iso: string): string {
  return `${iso.replace("T", " ").replace(/(\.\d+)?Z$/, "")} UTC`;
}

/**
 * The gateway block: requests the flag routed per variant, error ratio, latency, and (when the
 * counts run from the experiment's start) the difference against the control and a verdict.
 */
function formatGateway(g: ExperimentGatewayResults, control: string, confidence: string): string[] {
  const lines: string[] = [];
  const on = g.routes.join(", ") || "-";
  const sequential = g.mode === "sequential";
  lines.push(
    sequential
      ? `${color.bold("gateway")}: requests routed by the flag on ${on} since the experiment started ${when(g.since)}`
      : `${color.bold("gateway")} ${color.yellow("(descriptive)")}: requests routed by the flag on ${on} since ${when(g.since)}, the oldest the control plane's metric store holds`,
  );
  const byVariant = new Map(g.comparisons.map((c) => [c.variant, c]));
  const headers = ["VARIANT", "REQUESTS", "ERRORS", "ERROR RATIO", "P50", "P99"];
  lines.push(
    table(
      sequential ? [...headers, `ERROR RATIO vs ${control} (${confidence}, always valid)`] : headers,
      g.variants.map((v) => {
        const row = [
          v.variant,
          String(v.requests),
          String(v.errors),
          v.errorRatio === undefined || v.ci === undefined ? color.dim("-") : `${pct(v.errorRatio)} ${color.dim(`(${pct(v.ci.low, 1)}-${pct(v.ci.high, 1)})`)}`,
          latency(v.p50),
          latency(v.p99),
        ];
        if (sequential) row.push(v.variant === control ? color.dim("control") : errorDifference(byVariant.get(v.variant)?.difference));
        return row;
      }),
    ),
  );
  const abandoned = g.variants.reduce((n, v) => n + v.abandoned, 0);
  if (abandoned > 0) lines.push(color.dim(`note: ${abandoned} requests whose client left before the answer are counted in neither requests nor errors`));
  for (const note of g.notes) lines.push(color.dim(`note: ${note}`));
  let verdict: string;
  if (g.verdict === undefined) verdict = `${color.yellow("descriptive only")}: ${g.reason ?? "no verdict"}`;
  else verdict = g.verdict === "no difference yet" ? color.yellow(g.verdict) : color.green(`${g.verdict} (${g.winner ?? "?"}, fewer errors)`);
  lines.push(`${color.bold("gateway verdict")} (error ratio): ${verdict}`);
  return lines;
}

/** The human form of an experiment's results. */
export function formatExperimentResults(r: ExperimentResults): string {
  const lines: string[] = [];
  const confidence = `${Math.round((1 - r.alpha) * 1000) / 10}%`;
  lines.push(`${color.bold("experiment")} ${r.flag}   ${color.bold("metric")} ${r.metric ?? color.dim("(none yet)")}   ${color.bold("control")} ${r.control}`);
  lines.push("");
  const byVariant = new Map(r.comparisons.map((c) => [c.variant, c]));
  lines.push(
    table(
      ["VARIANT", "USERS", "CONVERSIONS", "RATE", `LIFT vs ${r.control} (${confidence}, always valid)`],
      r.variants.map((v) => {
        const c = byVariant.get(v.variant);
        return [
          v.variant,
          String(v.users),
          String(v.conversions),
          v.rate === undefined || v.ci === undefined ? color.dim("-") : `${pct(v.rate)} ${color.dim(`(${pct(v.ci.low, 1)}-${pct(v.ci.high, 1)})`)}`,
          v.variant === r.control ? color.dim("control") : lift(c?.absolute, c?.relative),
        ];
      }),
    ),
  );
  lines.push("");
  const shares = Object.entries(r.srm.expected)
    .map(([v, w]) => `${v} ${pct(w, 1)}`)
    .join(" / ");
  if (!r.srm.checked) lines.push(`sample ratio: not checked yet (too few users); expected ${shares} (${r.weightsFrom})`);
  else {
    const stat = `χ² = ${r.srm.chiSquared.toFixed(2)} (df ${r.srm.df}), p = ${formatP(r.srm.p)}`;
    lines.push(`sample ratio: ${stat}, expected ${shares} (${r.weightsFrom}) ${r.srm.broken ? color.red("MISMATCH (p < 0.001)") : color.green("ok")}`);
  }
  const verdict = r.verdict === "broken: sample ratio mismatch" ? color.red(r.verdict) : r.verdict === "no difference yet" ? color.yellow(r.verdict) : color.green(`${r.verdict} (${r.winner ?? "?"})`);
  lines.push(`${color.bold("verdict")}: ${verdict}`);
  for (const note of r.notes) lines.push(color.dim(`note: ${note}`));
  if (r.gateway !== undefined) lines.push("", ...formatGateway(r.gateway, r.control, confidence));
  return lines.join("\n");
}

export function addExperimentCommands(program: Command): void {
  const experiment = program.command("experiment").description("experiments on flags of type experiment: results with always-valid intervals");

  experiment
    .command("results")
    .description("per-variant users, conversions, rate, lift vs the control with its interval, the sample ratio check and a verdict; for requests the gateway routed by the flag, error ratio vs the control's, p50/p99 latency and, when the counts run from the experiment's start, a verdict")
    .argument("<flag>", "the experiment flag's key")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("-m, --metric <event>", "the conversion event (client.track name); required when several were seen")
    .option("--control <variant>", "the control variant (default: the flag's defaultVariant)")
    .option("--alpha <alpha>", "one minus the confidence of the intervals (default 0.05)", (v) => {
      const n = Number(v);
      if (!(n > 0 && n <= 0.5)) throw new InvalidArgumentError(`expected a number in (0, 0.5], got "${v}"`);
      return n;
    })
    .option("--json", "print JSON")
    .action(async (flag: string, opts: { dir: string; metric?: string; control?: string; alpha?: number; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const query = new URLSearchParams();
      if (opts.metric !== undefined) query.set("metric", opts.metric);
      if (opts.control !== undefined) query.set("control", opts.control);
      if (opts.alpha !== undefined) query.set("alpha", String(opts.alpha));
      const qs = query.toString();
      const r = await api.get<ExperimentResults>(`/v1/experiments/${encodeURIComponent(flag)}/results${qs ? `?${qs}` : ""}`);
      if (opts.json) return print(JSON.stringify(r, null, 2));
      print(formatExperimentResults(r));
    });
}
