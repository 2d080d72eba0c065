// `keelson catalog`, `keelson service <name>`, `keelson teams`, `keelson scorecard`: who owns
// what, what depends on what (declared in `calls` against what traces show), and how each
// service scores on the scorecard rules. Formatting only; the control plane builds the catalog.
import { resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import type { CatalogEntry, CatalogListing, ObservedCall, ScorecardReport, ServiceDetail, TeamView } from "../catalog/index.js";
import { color, table } from "./output.js";
import { connect, print } from "./progress.js";

const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TAG = /^[a-z0-9][a-z0-9.-]{0,39}$/;

function teamName(text: string): string {
  if (!NAME.test(text)) throw new InvalidArgumentError(`expected a team name (lowercase letters, digits and "-"), got "${text}"`);
  return text;
}
function tagName(text: string): string {
  if (!TAG.test(text)) throw new InvalidArgumentError(`expected a tag (lowercase letters, digits, "." and "-"), got "${text}"`);
  return text;
}

const short = (release: string | undefined) => release ?? "-";
const score = (n: number | undefined) => (n === undefined ? "-" : n >= 80 ? color.green(String(n)) : n >= 50 ? color.yellow(String(n)) : color.red(String(n)));
const percent = (ratio: number) => `${(ratio * 100).toFixed(ratio > 0 && ratio < 0.001 ? 2 : 1)}%`;
const rate = (c: ObservedCall) => `${c.callsPerMinute}/min, ${percent(c.errorRatio)} errors`;
const STATUS_MARK = { pass: color.green("✓"), fail: color.red("✗"), unknown: color.yellow("?"), "n/a": color.dim("-") } as const;

/** `+x` called but not declared, `-y` declared but not seen; "?" without trace data. */
export function driftMarker(e: Pick<CatalogEntry, "dependencies">): string {
  if (e.dependencies.observed === undefined) return color.dim("?");
  const marks = [...e.dependencies.undeclared.map((n) => `+${n}`), ...e.dependencies.unused.map((n) => `-${n}`)];
  return marks.length === 0 ? color.dim("none") : color.yellow(marks.join(" "));
}

function windowText(seconds: number | undefined): string {
  if (seconds === undefined) return "";
  return seconds % 60 === 0 ? `${seconds / 60}m` : `${Math.round(seconds)}s`;
}

export function formatCatalog(listing: CatalogListing): string {
  if (listing.services.length === 0) return color.dim("no services match");
  const rows = listing.services.map((e) => [
    color.bold(e.name),
    e.owner.declared ? e.owner.team : color.yellow(`${e.owner.team}?`),
    e.lifecycle ?? "-",
    short(e.release),
    `${e.replicas.ready}/${e.replicas.desired}`,
    score(e.scorecard.score),
    driftMarker(e),
  ]);
  const notes = [
    listing.observedWindowSeconds === undefined
      ? "DRIFT ?: no trace data, so observed dependencies are unknown"
      : `DRIFT: +called (traces, last ${windowText(listing.observedWindowSeconds)}) but not in calls, -in calls but not called`,
  ];
  if (listing.services.some((e) => !e.owner.declared)) notes.push("OWNER x?: not a team declared under teams");
  return [table(["SERVICE", "OWNER", "LIFECYCLE", "RELEASE", "READY", "SCORE", "DRIFT"], rows), ...notes.map((n) => color.dim(n))].join("\n");
}

export function formatService(d: ServiceDetail): string {
  const lines: string[] = [];
  lines.push(`${color.bold(d.name)}${d.lifecycle ? `  ${color.dim(`(${d.lifecycle})`)}` : ""}  score ${score(d.scorecard.score)}`);
  if (d.description) lines.push(`  ${d.description}`);
  const field = (name: string, value: string) => lines.push(`${name.padEnd(11)}${value}`);
  field("owner", `${d.owner.team}${d.owner.declared ? "" : color.yellow(" (not a declared team)")}${d.owner.contact ? `  ${d.owner.contact}` : ""}`);
  if (d.tags.length > 0) field("tags", d.tags.join(", "));
  field("release", `${short(d.release)}  ${d.replicas.ready}/${d.replicas.desired} replicas ready`);
  d.links.forEach((l, i) => field(i === 0 ? "links" : "", `${l.name.padEnd(9)} ${l.href}${l.kind === "file" && l.exists === false ? color.red(" (missing)") : ""}`));
  if (d.api) field("api", `${d.api.file}${d.api.exists ? "" : color.red(" (missing)")}`);

  const deps = d.dependencies;
  const observed = new Map((deps.observed ?? []).map((c) => [c.service, c]));
  const callRows: string[] = [];
  for (const c of deps.declared) {
    const seen = observed.get(c.service);
    const scope = [c.methods?.join(","), c.paths?.join(",")].filter(Boolean).join(" ");
    const what = deps.observed === undefined ? color.dim("declared") : seen ? `${color.green("✓")} ${rate(seen)}` : color.yellow("- declared, not called (unused)");
    callRows.push(`${c.service.padEnd(18)} ${what}${scope ? color.dim(`  ${scope}`) : ""}`);
  }
  for (const n of deps.undeclared) {
    const seen = observed.get(n);
    callRows.push(`${n.padEnd(18)} ${color.yellow(`+ called, not declared in calls${seen ? ` (${rate(seen)})` : ""}`)}`);
  }
  if (callRows.length === 0) callRows.push(color.dim("nothing"));
  callRows.forEach((r, i) => field(i === 0 ? "calls" : "", r));
  const callers = new Map<string, string>();
  for (const n of d.dependents.declared) callers.set(n, "declared");
  for (const c of d.dependents.observed ?? []) callers.set(c.service, `${callers.has(c.service) ? "declared, " : ""}${rate(c)}`);
  const callerRows = [...callers].map(([n, what]) => `${n.padEnd(18)} ${what}`);
  if (callerRows.length === 0) callerRows.push(color.dim("nobody"));
  callerRows.forEach((r, i) => field(i === 0 ? "called by" : "", r));
  if (d.observedWindowSeconds === undefined) lines.push(color.dim("           (no trace data: observed calls unknown)"));
  else lines.push(color.dim(`           (observed: traces of the last ${windowText(d.observedWindowSeconds)})`));

  lines.push("");
  lines.push(`${color.bold("scorecard")}  ${score(d.scorecard.score)}  (${d.scorecard.passed} passed, ${d.scorecard.failed} failed, ${d.scorecard.unknown} unknown)`);
  for (const r of d.scorecardResults) lines.push(`  ${STATUS_MARK[r.status]} ${r.title}: ${r.reason}`);
  lines.push("");
  lines.push(color.bold("recent deploys"));
  if (d.deploys.length === 0) lines.push(color.dim("  none recorded"));
  for (const e of d.deploys) {
    const what = e.kind === "rollout.succeeded" ? color.green("deployed") : e.kind === "rollback.succeeded" ? color.yellow("rolled back") : color.red("failed");
    lines.push(`  ${e.at.slice(0, 19).replace("T", " ")}  ${what} ${short(e.release)}${e.from ? color.dim(` from ${e.from}`) : ""}${e.strategy ? color.dim(` (${e.strategy})`) : ""}  ${e.actor}${e.why ? `: ${e.why.split("\n")[0]}` : ""}`);
  }
  return lines.join("\n");
}

export function formatTeams(teams: TeamView[]): string {
  if (teams.length === 0) return color.dim("no teams: declare them under teams: in keelson.yaml");
  return table(
    ["TEAM", "MEMBERS", "CONTACT", "SERVICES", "SCORE"],
    teams.map((t) => [t.declared ? color.bold(t.name) : color.yellow(`${t.name}?`), t.members.join(", ") || "-", t.contact ?? "-", t.services.join(", ") || "-", score(t.score)]),
  );
}

export function formatScorecards(report: ScorecardReport): string {
  const ids = report.rules.map((r) => r.id);
  const rows = report.services.map((c) => {
    const byRule = new Map(c.results.map((r) => [r.rule, r.status]));
    return [color.bold(c.service), c.owner, score(c.score), ...ids.map((id) => STATUS_MARK[byRule.get(id) ?? "n/a"])];
  });
  const lines = [table(["SERVICE", "OWNER", "SCORE", ...ids.map((id) => id.toUpperCase())], rows)];
  const failing = report.services.flatMap((c) => c.results.filter((r) => r.status === "fail").map((r) => `  ${c.service}: ${r.title}: ${r.reason}`));
  if (failing.length > 0) lines.push("", color.bold("failing"), ...failing);
  if (report.teams.length > 0) lines.push("", table(["TEAM", "SERVICES", "SCORE"], report.teams.map((t) => [t.name, String(t.services), score(t.score)])));
  lines.push("", color.dim("score: passed / (passed + failed) × 100; unknown (no evidence yet) and n/a rules are left out. `keelson service <name>` says why a rule failed."));
  return lines.join("\n");
}

export function addCatalogCommands(program: Command): void {
  program
    .command("catalog")
    .description("list services with owner, lifecycle, release, score and dependency drift")
    .option("-C, --dir <dir>", "project folder", ".")
    .addOption(new Option("--team <team>", "only this team's services").argParser(teamName))
    .addOption(new Option("--tag <tag>", "only services with this tag").argParser(tagName))
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; team?: string; tag?: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const query = new URLSearchParams({ ...(opts.team ? { team: opts.team } : {}), ...(opts.tag ? { tag: opts.tag } : {}) }).toString();
      const listing = await api.get<CatalogListing>(`/v1/catalog${query ? `?${query}` : ""}`);
      print(opts.json ? JSON.stringify(listing, null, 2) : formatCatalog(listing));
    });

  program
    .command("service")
    .description("everything about one service: owner, links, API, dependencies and drift, dependents, scorecard, recent deploys")
    .argument("<name>", "service name")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const detail = await api.get<ServiceDetail>(`/v1/catalog/services/${encodeURIComponent(name)}`);
      print(opts.json ? JSON.stringify(detail, null, 2) : formatService(detail));
    });

  program
    .command("teams")
    .description("list teams with members, contact, services and score")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { teams } = await api.get<{ teams: TeamView[] }>("/v1/teams");
      print(opts.json ? JSON.stringify(teams, null, 2) : formatTeams(teams));
    });

  program
    .command("scorecard")
    .description("check every service against the scorecard rules; scores per service and per team")
    .option("-C, --dir <dir>", "project folder", ".")
    .addOption(new Option("--team <team>", "only this team's services").argParser(teamName))
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; team?: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const report = await api.get<ScorecardReport>(`/v1/scorecards${opts.team ? `?team=${encodeURIComponent(opts.team)}` : ""}`);
      print(opts.json ? JSON.stringify(report, null, 2) : formatScorecards(report));
    });
}
