// The dependency audit of the pipeline's security stage: a service's package-lock.json as a
// component list, OSV advisories read offline and matched against it, and `npm audit` when
// the registry answers (skipped with a reason when it does not; it never fails the stage).
import { execFile } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import semver from "semver";

/** Severities, worst first. "unknown" counts as moderate when deciding what blocks. */
export type Severity = "critical" | "high" | "moderate" | "low";
export type AdvisorySeverity = Severity | "unknown";

/** One installed package as the lockfile records it. */
export interface Component {
  name: string;
  version: string;
  /** The lockfile's `license` (an SPDX id or expression, when the package declares one). */
  license?: string;
  /** Only a dev dependency (every place it is installed is dev). */
  dev: boolean;
  /** The lockfile keys it is installed at ("node_modules/a/node_modules/b"). */
  paths: string[];
}

/** An OSV advisory as the audit uses it (npm packages only). */
export interface Advisory {
  id: string;
  aliases: string[];
  summary: string;
  severity: AdvisorySeverity;
  affected: Array<{ package: string; ranges: AffectedRange[]; versions: string[] }>;
  /** The file it came from. */
  source: string;
}

/** An OSV SEMVER/ECOSYSTEM range: its events in the order given. */
export interface AffectedRange {
  events: Array<{ introduced: string } | { fixed: string } | { last_affected: string }>;
}

/** A vulnerable installed package. */
export interface VulnerabilityFinding {
  /** The advisory id (GHSA-…, CVE-…, or npm-<n> from npm audit). */
  id: string;
  package: string;
  version: string;
  severity: AdvisorySeverity;
  summary: string;
  /** The first fixed version above the installed one, when the advisory names one. */
  fixed?: string;
  /** Where the advisory came from: its file, or "npm audit". */
  source: string;
  dev: boolean;
}

const RANK: Record<AdvisorySeverity, number> = { critical: 4, high: 3, moderate: 2, unknown: 2, low: 1 };

/** How bad a severity is (critical 4 … low 1; unknown ranks as moderate). */
export function severityRank(severity: AdvisorySeverity): number {
  return RANK[severity];
}

/** Whether a finding of `severity` meets a `block` threshold ("none" blocks nothing). */
export function severityBlocks(severity: AdvisorySeverity, block: Severity | "none"): boolean {
  return block !== "none" && RANK[severity] >= RANK[block];
}

// ---------------------------------------------------------------------------------------------
// The lockfile

interface LockEntry {
  version?: unknown;
  license?: unknown;
  dev?: unknown;
  link?: unknown;
  name?: unknown;
  dependencies?: unknown;
}

function licenseOf(value: unknown): string | undefined {
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  // Old packages wrote { type: "MIT" } or a list of them.
  if (typeof value === "object" && value !== null && !Array.isArray(value) && typeof (value as { type?: unknown }).type === "string") return (value as { type: string }).type;
  if (Array.isArray(value)) {
    const ids = value.map(licenseOf).filter((x): x is string => x !== undefined);
    if (ids.length > 0) return ids.length === 1 ? (ids[0] as string) : `(${ids.join(" OR ")})`;
  }
  return undefined;
}

/**
 * The installed packages of a parsed package-lock.json (lockfileVersion 2 or 3 `packages`;
 * version 1 `dependencies` as a fallback), one per name@version, sorted. The root entry and
 * workspace folders and links are not components.
 */
export function componentsFromLockfile(lock: unknown, file = "package-lock.json"): Component[] {
  if (typeof lock !== "object" || lock === null || Array.isArray(lock)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${file}: expected a JSON object`);
  const byKey = new Map<string, Component>();
  const add = (path: string, name: string, entry: LockEntry) => {
    if (typeof entry.version !== "string" || entry.version === "") return;
    const key = `${name}@${entry.version}`;
    const license = licenseOf(entry.license);
    const existing = byKey.get(key);
    if (existing) {
      existing.dev &&= entry.dev === true;
      existing.paths.push(path);
      existing.license ??= license;
      return;
    }
    byKey.set(key, { name, version: entry.version, ...(license ? { license } : {}), dev: entry.dev === true, paths: [path] });
  };
  const packages = (lock as { packages?: unknown }).packages;
  if (typeof packages === "object" && packages !== null) {
    for (const [path, raw] of Object.entries(packages as Record<string, unknown>)) {
      if (path === "" || typeof raw !== "object" || raw === null) continue;
      const entry = raw as LockEntry;
      const at = path.lastIndexOf("node_modules/");
      // Workspace folders ("packages/a") and links to them are the project's own code.
      if (at === -1 || entry.link === true) continue;
      const name = typeof entry.name === "string" && entry.name !== "" ? entry.name : path.slice(at + "node_modules/".length);
      add(path, name, entry);
    }
  } else {
    const walk = (deps: unknown, prefix: string) => {
      if (typeof deps !== "object" || deps === null) return;
      for (const [name, raw] of Object.entries(deps as Record<string, unknown>)) {
        if (typeof raw !== "object" || raw === null) continue;
        const entry = raw as LockEntry;
        const path = `${prefix}node_modules/${name}`;
        // v1 wrote aliases and links as "npm:x@1" / "file:…"; only registry versions are components.
        if (typeof entry.version === "string" && semver.valid(entry.version) !== null) add(path, name, entry);
        walk(entry.dependencies, `${path}/`);
      }
    };
    walk((lock as { dependencies?: unknown }).dependencies, "");
  }
  return [...byKey.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : semver.valid(a.version) && semver.valid(b.version) ? semver.compare(a.version, b.version) : a.version.localeCompare(b.version)));
}

/**
 * Reads the components of `dir`'s package-lock.json (or npm-shrinkwrap.json); undefined when
 * it has neither. A lockfile that is not JSON is an error naming it.
 */
export async function readLockfile(dir: string): Promise<{ file: string; components: Component[] } | undefined> {
  for (const name of ["npm-shrinkwrap.json", "package-lock.json"]) {
    const file = join(dir, name);
    const text = await readFile(file, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    let lock: unknown;
    try {
      lock = JSON.parse(text);
    } catch (err) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${file}: not valid JSON (${(err as Error).message})`, { cause: err });
    }
    return { file: name, components: componentsFromLockfile(lock, file) };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// OSV advisories

function bad(file: string, index: number | undefined, path: string, expected: string): KeelsonError {
  const where = index === undefined ? file : `${file}[${index}]`;
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${where}${path ? ` ${path}` : ""}: expected ${expected} (an OSV advisory: https://ossf.github.io/osv-schema/)`, { details: { file, ...(index === undefined ? {} : { index }), path } });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const DB_SEVERITY: Record<string, Severity> = { CRITICAL: "critical", HIGH: "high", MODERATE: "moderate", MEDIUM: "moderate", LOW: "low" };

function severityFromScore(score: number): Severity {
  return score >= 9 ? "critical" : score >= 7 ? "high" : score >= 4 ? "moderate" : "low";
}

const CVSS3_WEIGHTS: Record<string, Record<string, number>> = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  C: { H: 0.56, L: 0.22, N: 0 },
  I: { H: 0.56, L: 0.22, N: 0 },
  A: { H: 0.56, L: 0.22, N: 0 },
};

/** CVSS v3 rounding: the smallest number with one decimal that is ≥ the input. */
function roundUp(x: number): number {
  const i = Math.round(x * 100000);
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10;
}

/** The base score of a CVSS v3.x vector ("CVSS:3.1/AV:N/AC:L/…"), or undefined when it is not one. */
export function cvss3BaseScore(vector: string): number | undefined {
  const parts = vector.trim().split("/");
  if (!/^CVSS:3\.[01]$/.test(parts[0] ?? "")) return undefined;
  const m: Record<string, string> = {};
  for (const p of parts.slice(1)) {
    const [k, v] = p.split(":");
    if (k && v) m[k] = v;
  }
  const scope = m.S;
  const pr = m.PR;
  const w = (metric: string) => CVSS3_WEIGHTS[metric]?.[m[metric] ?? ""];
  const [av, ac, ui, c, i, a] = [w("AV"), w("AC"), w("UI"), w("C"), w("I"), w("A")];
  if (av === undefined || ac === undefined || ui === undefined || c === undefined || i === undefined || a === undefined || (scope !== "U" && scope !== "C")) return undefined;
  const prWeight = pr === "N" ? 0.85 : pr === "L" ? (scope === "C" ? 0.68 : 0.62) : pr === "H" ? (scope === "C" ? 0.5 : 0.27) : undefined;
  if (prWeight === undefined) return undefined;
  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = scope === "U" ? 6.42 * iss : 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15);
  const exploitability = 8.22 * av * ac * prWeight * ui;
  if (impact <= 0) return 0;
  return scope === "U" ? roundUp(Math.min(impact + exploitability, 10)) : roundUp(Math.min(1.08 * (impact + exploitability), 10));
}

/** An advisory's severity: database_specific.severity, else a CVSS v3 score, else "unknown". */
function advisorySeverity(raw: Record<string, unknown>, affected: unknown[]): AdvisorySeverity {
  const named = [raw.database_specific, ...affected.map((a) => (isObject(a) ? a.database_specific : undefined)), ...affected.map((a) => (isObject(a) ? a.ecosystem_specific : undefined))];
  for (const spec of named) {
    if (!isObject(spec) || typeof spec.severity !== "string") continue;
    const s = DB_SEVERITY[spec.severity.toUpperCase()];
    if (s) return s;
  }
  if (Array.isArray(raw.severity)) {
    for (const entry of raw.severity) {
      if (!isObject(entry)) continue;
      const score = entry.score;
      if (typeof score === "number" && Number.isFinite(score)) return severityFromScore(score);
      if (typeof score !== "string") continue;
      if (/^\d+(\.\d+)?$/.test(score.trim())) return severityFromScore(Number(score));
      const base = cvss3BaseScore(score);
      if (base !== undefined) return severityFromScore(base);
    }
  }
  return "unknown";
}

/** Checks one OSV advisory's shape and keeps what the audit needs; undefined when it has no npm packages. */
function parseAdvisory(raw: unknown, file: string, index: number | undefined): Advisory | undefined {
  if (!isObject(raw)) throw bad(file, index, "", "an object");
  if (typeof raw.id !== "string" || raw.id === "") throw bad(file, index, "id", "a non-empty string");
  if (raw.affected !== undefined && !Array.isArray(raw.affected)) throw bad(file, index, "affected", "a list");
  const affectedRaw = (raw.affected ?? []) as unknown[];
  const affected: Advisory["affected"] = [];
  for (const [ai, a] of affectedRaw.entries()) {
    const at = `affected[${ai}]`;
    if (!isObject(a)) throw bad(file, index, at, "an object");
    if (!isObject(a.package)) throw bad(file, index, `${at}.package`, "an object with ecosystem and name");
    if (typeof a.package.name !== "string" || a.package.name === "") throw bad(file, index, `${at}.package.name`, "a non-empty string");
    if (typeof a.package.ecosystem !== "string") throw bad(file, index, `${at}.package.ecosystem`, "a string");
    if (a.ranges !== undefined && !Array.isArray(a.ranges)) throw bad(file, index, `${at}.ranges`, "a list");
    if (a.versions !== undefined && (!Array.isArray(a.versions) || a.versions.some((v) => typeof v !== "string"))) throw bad(file, index, `${at}.versions`, "a list of strings");
    const ranges: AffectedRange[] = [];
    for (const [ri, r] of ((a.ranges ?? []) as unknown[]).entries()) {
      const rat = `${at}.ranges[${ri}]`;
      if (!isObject(r) || typeof r.type !== "string") throw bad(file, index, `${rat}.type`, "a string");
      if (!Array.isArray(r.events)) throw bad(file, index, `${rat}.events`, "a list");
      const events: AffectedRange["events"] = [];
      for (const [ei, e] of r.events.entries()) {
        if (!isObject(e)) throw bad(file, index, `${rat}.events[${ei}]`, "an object");
        if (typeof e.introduced === "string") events.push({ introduced: e.introduced });
        else if (typeof e.fixed === "string") events.push({ fixed: e.fixed });
        else if (typeof e.last_affected === "string") events.push({ last_affected: e.last_affected });
        else if (typeof e.limit !== "string") throw bad(file, index, `${rat}.events[${ei}]`, "one of introduced, fixed, last_affected or limit (a string)");
      }
      // GIT ranges name commits, not versions.
      if (r.type === "SEMVER" || r.type === "ECOSYSTEM") ranges.push({ events });
    }
    if (a.package.ecosystem.toLowerCase() !== "npm") continue;
    affected.push({ package: a.package.name, ranges, versions: (a.versions ?? []) as string[] });
  }
  if (affected.length === 0) return undefined;
  return {
    id: raw.id,
    aliases: Array.isArray(raw.aliases) ? raw.aliases.filter((x): x is string => typeof x === "string") : [],
    summary: typeof raw.summary === "string" ? raw.summary : typeof raw.details === "string" ? raw.details.split("\n")[0]?.slice(0, 200) ?? "" : "",
    severity: advisorySeverity(raw, affectedRaw),
    affected,
    source: file,
  };
}

async function advisoryFiles(path: string): Promise<string[]> {
  const info = await stat(path).catch((err: unknown) => {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `security.scan.vulnerabilities.advisories: ${path} ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(err as Error).message})`}`, { cause: err });
  });
  if (!info.isDirectory()) return [path];
  const out: string[] = [];
  for (const e of (await readdir(path, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.isDirectory()) out.push(...(await advisoryFiles(join(path, e.name))));
    else if (e.isFile() && e.name.endsWith(".json")) out.push(join(path, e.name));
  }
  return out;
}

/**
 * Reads OSV advisories (absolute paths): each file holds one advisory or a list of them; a
 * folder holds *.json files (read recursively). Only npm packages are kept. A missing path,
 * a file that is not JSON or an entry of the wrong shape is KEELSON_ERR_INVALID_INPUT naming
 * the file (and the entry's index in a list).
 *
 * @example
 * const advisories = await loadAdvisories([join(manifestDir, "security/advisories")]);
 */
export async function loadAdvisories(paths: readonly string[]): Promise<Advisory[]> {
  const out: Advisory[] = [];
  for (const path of paths) {
    for (const file of await advisoryFiles(path)) {
      const text = await readFile(file, "utf8");
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${file}: not valid JSON (${(err as Error).message})`, { details: { file }, cause: err });
      }
      const entries = Array.isArray(parsed) ? parsed.map((raw, i) => parseAdvisory(raw, file, i)) : [parseAdvisory(parsed, file, undefined)];
      for (const a of entries) if (a) out.push(a);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Matching

function eventVersion(e: AffectedRange["events"][number]): string {
  return "introduced" in e ? e.introduced : "fixed" in e ? e.fixed : e.last_affected;
}

/** Compares OSV event versions; "0" is before everything. */
function compareEventVersions(a: string, b: string): number {
  if (a === b) return 0;
  if (a === "0") return -1;
  if (b === "0") return 1;
  return semver.compare(a, b);
}

/** Whether `version` falls in an OSV range; and the first fix above it. */
function inRange(version: string, range: AffectedRange): { affected: boolean; fixed?: string } {
  const events = range.events.filter((e) => {
    const v = eventVersion(e);
    return v === "0" || semver.valid(v) !== null;
  });
  // OSV: sort the events by version; the version is affected when the last event at or
  // below it introduced (fixed is exclusive, last_affected inclusive).
  const sorted = [...events].sort((a, b) => compareEventVersions(eventVersion(a), eventVersion(b)));
  let affected = false;
  for (const e of sorted) {
    if ("introduced" in e) {
      if (e.introduced === "0" || semver.gte(version, e.introduced)) affected = true;
    } else if ("fixed" in e) {
      if (semver.gte(version, e.fixed)) affected = false;
    } else if (semver.gt(version, e.last_affected)) affected = false;
  }
  const fixed = sorted.find((e): e is { fixed: string } => "fixed" in e && semver.gt(e.fixed, version))?.fixed;
  return { affected, ...(affected && fixed ? { fixed } : {}) };
}

/**
 * The components the advisories affect: by exact `versions` or SEMVER/ECOSYSTEM ranges.
 * One finding per advisory and package version (advisories that are aliases of one another
 * count once), worst first.
 *
 * @example
 * auditDependencies({ components: [{ name: "left-pad", version: "1.1.0", dev: false, paths: [] }], advisories })
 * // → [{ id: "GHSA-…", package: "left-pad", version: "1.1.0", severity: "critical", fixed: "1.3.0", … }]
 */
export function auditDependencies(input: { components: readonly Component[]; advisories: readonly Advisory[] }): VulnerabilityFinding[] {
  const byName = new Map<string, Component[]>();
  for (const c of input.components) byName.set(c.name, [...(byName.get(c.name) ?? []), c]);
  const findings: VulnerabilityFinding[] = [];
  const seen = new Map<string, Set<string>>();
  for (const adv of input.advisories) {
    for (const aff of adv.affected) {
      for (const c of byName.get(aff.package) ?? []) {
        let hit = aff.versions.includes(c.version);
        let fixed: string | undefined;
        if (semver.valid(c.version) !== null) {
          for (const r of aff.ranges) {
            const m = inRange(c.version, r);
            if (m.affected) {
              hit = true;
              fixed ??= m.fixed;
            }
          }
        }
        if (!hit) continue;
        const key = `${c.name}@${c.version}`;
        const ids = seen.get(key) ?? new Set<string>();
        if (ids.has(adv.id) || adv.aliases.some((a) => ids.has(a))) continue;
        ids.add(adv.id);
        for (const a of adv.aliases) ids.add(a);
        seen.set(key, ids);
        findings.push({ id: adv.id, package: c.name, version: c.version, severity: adv.severity, summary: adv.summary, ...(fixed ? { fixed } : {}), source: adv.source, dev: c.dev });
      }
    }
  }
  return sortFindings(findings);
}

function sortFindings(findings: VulnerabilityFinding[]): VulnerabilityFinding[] {
  return findings.sort((a, b) => RANK[b.severity] - RANK[a.severity] || a.package.localeCompare(b.package) || a.id.localeCompare(b.id));
}

// ---------------------------------------------------------------------------------------------
// npm audit

/** What `npm audit` gave: findings, or why it was skipped. */
export type NpmAuditResult = { findings: VulnerabilityFinding[] } | { skipped: string };

interface NpmVia {
  source?: unknown;
  name?: unknown;
  title?: unknown;
  url?: unknown;
  severity?: unknown;
  range?: unknown;
}

/**
 * Findings from `npm audit --json` output (auditReportVersion 2, npm 7 and later). Installed
 * versions come from `components` (by lockfile path); undefined when the output is not a report.
 */
export function parseNpmAudit(json: unknown, components: readonly Component[] = []): VulnerabilityFinding[] | undefined {
  if (!isObject(json) || !isObject(json.vulnerabilities)) return undefined;
  const atPath = new Map<string, Component>();
  for (const c of components) for (const p of c.paths) atPath.set(p, c);
  const findings: VulnerabilityFinding[] = [];
  const seen = new Set<string>();
  for (const [name, raw] of Object.entries(json.vulnerabilities)) {
    if (!isObject(raw) || !Array.isArray(raw.via)) continue;
    const nodes = Array.isArray(raw.nodes) ? raw.nodes.filter((n): n is string => typeof n === "string") : [];
    const installed = nodes.map((n) => atPath.get(n)).filter((c): c is Component => c !== undefined);
    const versions = installed.length > 0 ? [...new Set(installed.map((c) => c.version))] : ["unknown"];
    // Entries that are strings point at another vulnerable package; only objects are advisories.
    for (const via of raw.via as NpmVia[]) {
      if (!isObject(via)) continue;
      const url = typeof via.url === "string" ? via.url : "";
      const id = /\/(GHSA-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})$/i.exec(url)?.[1] ?? (via.source !== undefined ? `npm-${String(via.source)}` : `npm-${name}`);
      const sev = typeof via.severity === "string" ? (via.severity.toLowerCase() as string) : "";
      const severity: AdvisorySeverity = sev === "critical" || sev === "high" || sev === "moderate" || sev === "low" ? sev : sev === "info" ? "low" : "unknown";
      for (const version of versions) {
        if (version !== "unknown" && typeof via.range === "string" && semver.valid(version) && !semver.satisfies(version, via.range, { includePrerelease: true })) continue;
        const key = `${id} ${name}@${version}`;
        if (seen.has(key)) continue;
        seen.add(key);
        findings.push({
          id,
          package: name,
          version,
          severity,
          summary: typeof via.title === "string" ? via.title : "",
          source: "npm audit",
          dev: installed.length > 0 && installed.every((c) => c.dev),
        });
      }
    }
  }
  return sortFindings(findings);
}

/**
 * Runs `npm audit --json --package-lock-only` in `dir` (no shell) with a timeout. Never
 * throws: no npm, no registry, a timeout or unreadable output give `{ skipped: why }`.
 * `command` replaces the npm binary (tests use a stand-in).
 */
export async function runNpmAudit(input: { dir: string; timeoutMs: number; components?: readonly Component[]; command?: string }): Promise<NpmAuditResult> {
  const command = input.command ?? (process.platform === "win32" ? "npm.cmd" : "npm");
  const stdout = await new Promise<{ out: string } | { skipped: string }>((resolve) => {
    execFile(
      command,
      ["audit", "--json", "--package-lock-only"],
      { cwd: input.dir, timeout: input.timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024, env: { ...process.env, npm_config_fund: "false", npm_config_update_notifier: "false" } },
      (err, out) => {
        const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string }) | null;
        if (e?.code === "ENOENT") resolve({ skipped: `${command} is not installed` });
        else if (e && (e.killed || e.signal)) resolve({ skipped: `npm audit did not answer within ${input.timeoutMs} ms` });
        // npm audit exits 1 when it found vulnerabilities; the report is still on stdout.
        else resolve({ out: String(out ?? "") });
      },
    );
  });
  if ("skipped" in stdout) return stdout;
  let json: unknown;
  try {
    json = JSON.parse(stdout.out);
  } catch {
    return { skipped: `npm audit printed no JSON report${stdout.out.trim() ? `: ${stdout.out.trim().split("\n")[0]?.slice(0, 200)}` : ""}` };
  }
  if (isObject(json) && isObject(json.error)) {
    const e = json.error;
    const why = [e.code, e.summary].filter((x) => typeof x === "string" && x !== "").join(": ");
    return { skipped: `npm audit failed${why ? `: ${why.split("\n")[0]}` : ""}` };
  }
  const components = input.components ?? (await readLockfile(input.dir).catch(() => undefined))?.components ?? [];
  const findings = parseNpmAudit(json, components);
  return findings ? { findings } : { skipped: "npm audit printed an unrecognised report (npm 7 or later is needed)" };
}
