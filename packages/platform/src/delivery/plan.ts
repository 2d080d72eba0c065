// The plan: what `keelson up` would change, compared with the stored desired state,
// printed Terraform-style (+ create, ~ change with the fields, - remove). Declared flags are
// compared with the live flag set, so a flag changed live shows as drift.
import pc from "picocolors";
import { diffFlag, type FlagState } from "../flags/index.js";
import type { Manifest, ServiceSpec } from "../manifest/index.js";
import type { ServiceRecord } from "../store/index.js";
import { canonicalJson } from "./canonical-json.js";

export interface FieldChange {
  /** Dotted path inside the service spec, e.g. "env.LOG_LEVEL" or "replicas". */
  path: string;
  from: unknown;
  to: unknown;
}

export type PlanAction = "create" | "change" | "remove";

export interface PlanChange {
  action: PlanAction;
  service: string;
  /** For create: every top-level field set; for change: what differs; for remove: empty. */
  fields: FieldChange[];
  /** True when the sources changed since the release the service runs (a rebuild is due). */
  sourcesChanged: boolean;
  /** For change: how the pipeline's stages change, stage by stage, and the template they come from. */
  pipeline?: PlanPipelineChange;
}

/** A stage as the plan shows it. */
export interface PlanStage {
  run: string;
  /** Milliseconds; absent: the pipeline's stageTimeout. */
  timeout?: number;
}

/** One stage added, removed or changed (by name). */
export interface PlanStageChange {
  stage: string;
  action: "add" | "remove" | "change";
  from?: PlanStage;
  to?: PlanStage;
}

/** A change to a service's pipeline stages, e.g. after an edit to the template it uses. */
export interface PlanPipelineChange {
  /** The template the stages come from now; absent: the service's own stages. */
  template?: string;
  /** The template they came from before, when that differs. */
  previousTemplate?: string;
  /** The service uses another template than before, or starts or stops using one. */
  templateChanged: boolean;
  stages: PlanStageChange[];
  /** The stages on both sides run in another order. */
  reordered: boolean;
}

/** Where a stored flag differs from the manifest: the manifest's value and the stored one (absent: not there). */
export interface FlagDrift {
  /** Dotted path inside the definition, e.g. "defaultVariant" or "metadata.killedAt". */
  path: string;
  manifest?: unknown;
  stored?: unknown;
}

export interface PlanFlagChange {
  /** create: declared, not stored; change: stored differs from the manifest (drift); remove: no longer declared. */
  action: PlanAction;
  /** A flag, or a shared rule of `flagEvaluators`. */
  kind: "flag" | "evaluator";
  key: string;
  /** For change: every path that differs. */
  fields: FlagDrift[];
}

export interface Plan {
  project: string;
  changes: PlanChange[];
  /** Services that stay exactly as they are. */
  unchanged: string[];
  /** Declared flags that apply would create, set back to the manifest's definition, or delete; present when the flag state was known. */
  flags?: PlanFlagChange[];
}

export interface PlanInput {
  manifest: Manifest;
  stored: ServiceRecord[];
  /**
   * The release each service would get from its current sources, when known; a
   * service whose stored release differs shows as changed ("sources changed").
   */
  candidateReleases?: ReadonlyMap<string, string>;
  /** The stored flag set and what the last apply declared; without it the plan has no `flags`. */
  flags?: FlagState;
}

/**
 * The spec as apply stores it. With `autoscale`, the replica count belongs to the autoscaler
 * (as with a Kubernetes HPA): an applied manifest keeps the running count, moved into
 * min..max if the bounds changed; a new service starts at `replicas` kept within min..max.
 */
export function withOwnedReplicas(spec: ServiceSpec, stored: ServiceRecord | undefined): ServiceSpec {
  const a = spec.autoscale;
  if (a === undefined) return spec;
  const running = (stored?.spec as { replicas?: unknown } | undefined)?.replicas;
  const from = typeof running === "number" && (stored?.spec as { autoscale?: unknown }).autoscale !== undefined ? running : spec.replicas;
  return { ...spec, replicas: Math.min(a.max, Math.max(a.min, from)) };
}

/** Computes the difference between the manifest and the stored desired state. */
export function computePlan(input: PlanInput): Plan {
  const { manifest, stored, candidateReleases } = input;
  const storedByName = new Map(stored.map((s) => [s.name, s]));
  const changes: PlanChange[] = [];
  const unchanged: string[] = [];

  for (const name of Object.keys(manifest.services).sort()) {
    const current = storedByName.get(name);
    const spec = withOwnedReplicas(manifest.services[name] as ServiceSpec, current);
    const desired = toPlain(spec);
    const candidate = candidateReleases?.get(name);
    if (!current) {
      changes.push({ action: "create", service: name, fields: diff("", {}, desired), sourcesChanged: false });
      continue;
    }
    const fields = diff("", current.spec, desired);
    const sourcesChanged = candidate !== undefined && candidate !== current.release;
    const pipeline = pipelineChange(current.spec, desired, fields);
    if (fields.length > 0 || sourcesChanged) changes.push({ action: "change", service: name, fields, sourcesChanged, ...(pipeline === undefined ? {} : { pipeline }) });
    else unchanged.push(name);
  }
  for (const s of stored) {
    if (!(s.name in manifest.services)) changes.push({ action: "remove", service: s.name, fields: [], sourcesChanged: false });
  }
  changes.sort((a, b) => a.service.localeCompare(b.service));
  const plan: Plan = { project: manifest.project, changes, unchanged };
  if (input.flags) {
    plan.flags = [
      ...planFlagKind("flag", manifest.flags ?? {}, input.flags.set.flags, input.flags.declared.flags),
      ...planFlagKind("evaluator", manifest.flagEvaluators ?? {}, input.flags.set.$evaluators ?? {}, input.flags.declared.evaluators),
    ];
  }
  return plan;
}

/**
 * Declared entries against stored ones: created when not stored, changed (with every drifted
 * path) when different, removed when declared at the last apply but not now. Entries that were
 * never declared are managed live and never appear.
 */
function planFlagKind(kind: PlanFlagChange["kind"], declared: Readonly<Record<string, unknown>>, stored: Readonly<Record<string, unknown>>, lastDeclared: readonly string[]): PlanFlagChange[] {
  const out: PlanFlagChange[] = [];
  for (const key of Object.keys(declared).sort()) {
    if (!Object.hasOwn(stored, key)) {
      out.push({ action: "create", kind, key, fields: [] });
      continue;
    }
    const fields = diffFlag(declared[key], stored[key]).map((d): FlagDrift => ({ path: d.path, ...("before" in d ? { manifest: d.before } : {}), ...("after" in d ? { stored: d.after } : {}) }));
    if (fields.length > 0) out.push({ action: "change", kind, key, fields });
  }
  for (const key of [...lastDeclared].sort()) {
    if (!Object.hasOwn(declared, key) && Object.hasOwn(stored, key)) out.push({ action: "remove", kind, key, fields: [] });
  }
  return out;
}

/** The fields of a pipeline that the stage-by-stage summary stands for in the printed plan. */
const PIPELINE_STAGE_FIELDS = new Set(["pipeline.stages", "pipeline.template"]);

function stagesOf(spec: unknown): Array<{ name: string } & PlanStage> {
  const stages = isObject(spec) && isObject(spec.pipeline) ? spec.pipeline.stages : undefined;
  if (!Array.isArray(stages)) return [];
  return stages.filter(isObject).map((s) => ({ name: String(s.name), run: String(s.run), ...(typeof s.timeout === "number" ? { timeout: s.timeout } : {}) }));
}

function templateOf(spec: unknown): string | undefined {
  const t = isObject(spec) && isObject(spec.pipeline) ? spec.pipeline.template : undefined;
  return typeof t === "string" ? t : undefined;
}

/**
 * The stage-by-stage change of a service's pipeline, when its stages or template changed: a
 * template edited in one place shows on every service that uses it, naming the template.
 */
function pipelineChange(from: unknown, to: unknown, fields: readonly FieldChange[]): PlanPipelineChange | undefined {
  if (!fields.some((f) => PIPELINE_STAGE_FIELDS.has(f.path))) return undefined;
  const before = stagesOf(from);
  const after = stagesOf(to);
  const byName = new Map(before.map((s) => [s.name, s]));
  const stages: PlanStageChange[] = [];
  const plain = (s: { name: string } & PlanStage): PlanStage => ({ run: s.run, ...(s.timeout === undefined ? {} : { timeout: s.timeout }) });
  for (const s of after) {
    const old = byName.get(s.name);
    if (old === undefined) stages.push({ stage: s.name, action: "add", to: plain(s) });
    else if (old.run !== s.run || old.timeout !== s.timeout) stages.push({ stage: s.name, action: "change", from: plain(old), to: plain(s) });
  }
  const kept = new Set(after.map((s) => s.name));
  for (const s of before) if (!kept.has(s.name)) stages.push({ stage: s.name, action: "remove", from: plain(s) });
  const common = (list: Array<{ name: string }>, other: Set<string>) => list.map((s) => s.name).filter((n) => other.has(n));
  const reordered = common(before, kept).join("\0") !== common(after, new Set(before.map((s) => s.name))).join("\0");
  const template = templateOf(to);
  const previous = templateOf(from);
  const templateChanged = previous !== template;
  return { ...(template === undefined ? {} : { template }), ...(templateChanged && previous !== undefined ? { previousTemplate: previous } : {}), templateChanged, stages, reordered };
}

/** The stage lines of a pipeline change, for people. */
function describePipelineChange(p: PlanPipelineChange, c: ReturnType<typeof pc.createColors>): string[] {
  const lines: string[] = [];
  const was = p.previousTemplate === undefined ? "" : ` (was template "${p.previousTemplate}")`;
  const source = p.template === undefined ? (p.templateChanged ? " of its own" : "") : ` ${p.templateChanged && p.previousTemplate === undefined ? "now " : ""}from template "${p.template}"`;
  lines.push(c.yellow(`      ~ pipeline stages${source}${was}:`));
  const timeout = (s: PlanStage | undefined) => (s?.timeout === undefined ? "default" : `${s.timeout} ms`);
  for (const s of p.stages) {
    if (s.action === "add") lines.push(c.green(`          + stage "${s.stage}": ${show(s.to?.run)}${s.to?.timeout === undefined ? "" : ` (timeout ${timeout(s.to)})`}`));
    else if (s.action === "remove") lines.push(c.red(`          - stage "${s.stage}"`));
    else {
      const what: string[] = [];
      if (s.from?.run !== s.to?.run) what.push(`run ${show(s.from?.run)} → ${show(s.to?.run)}`);
      if (s.from?.timeout !== s.to?.timeout) what.push(`timeout ${timeout(s.from)} → ${timeout(s.to)}`);
      lines.push(c.yellow(`          ~ stage "${s.stage}": ${what.join(", ")}`));
    }
  }
  if (p.reordered) lines.push(c.yellow("          ~ the stages run in a new order"));
  if (p.stages.length === 0 && !p.reordered) lines.push(c.yellow("          (the same stages)"));
  return lines;
}

/** The spec as plain JSON data (what the store keeps). */
export function toPlain(spec: ServiceSpec): Record<string, unknown> {
  return JSON.parse(canonicalJson(spec)) as Record<string, unknown>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Field-level difference; arrays compare as whole values (a route list is one field). */
function diff(prefix: string, from: unknown, to: unknown): FieldChange[] {
  if (isObject(from) && isObject(to)) {
    const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort();
    return keys.flatMap((k) => diff(prefix ? `${prefix}.${k}` : k, from[k], to[k]));
  }
  if (from === undefined || to === undefined ? from === to : canonicalJson(from) === canonicalJson(to)) return [];
  return [{ path: prefix, from, to }];
}

export function planCounts(plan: Plan): Record<PlanAction, number> {
  const counts = { create: 0, change: 0, remove: 0 };
  for (const c of plan.changes) counts[c.action]++;
  return counts;
}

/** Renders a plan for people; `color` adds ANSI colors (on a TTY). */
export function formatPlan(plan: Plan, options: { color?: boolean } = {}): string {
  const c = pc.createColors(options.color ?? false);
  const flags = plan.flags ?? [];
  if (plan.changes.length === 0 && flags.length === 0) return `No changes. Project "${plan.project}" matches the manifest.\n`;
  const lines: string[] = [`Keelson will perform the following actions on project "${plan.project}":`, ""];
  for (const ch of plan.changes) {
    switch (ch.action) {
      case "create":
        lines.push(c.green(`  + service "${ch.service}" will be created`));
        for (const f of ch.fields) lines.push(c.green(`      + ${f.path}: ${show(f.to)}`));
        break;
      case "change":
        lines.push(c.yellow(`  ~ service "${ch.service}" will be changed`));
        if (ch.sourcesChanged) lines.push(c.yellow(`      ~ sources changed: will be rebuilt and rolled out`));
        if (ch.pipeline !== undefined) lines.push(...describePipelineChange(ch.pipeline, c));
        for (const f of ch.fields) {
          if (ch.pipeline !== undefined && PIPELINE_STAGE_FIELDS.has(f.path)) continue;
          if (f.from === undefined) lines.push(c.green(`      + ${f.path}: ${show(f.to)}`));
          else if (f.to === undefined) lines.push(c.red(`      - ${f.path}: ${show(f.from)}`));
          else lines.push(c.yellow(`      ~ ${f.path}: ${show(f.from)} → ${show(f.to)}`));
        }
        break;
      case "remove":
        lines.push(c.red(`  - service "${ch.service}" will be removed`));
        break;
      default: {
        const never: never = ch.action;
        throw new Error(`unknown action ${String(never)}`);
      }
    }
    lines.push("");
  }
  for (const f of flags) {
    const what = f.kind === "flag" ? `flag "${f.key}"` : `flagEvaluators "${f.key}"`;
    switch (f.action) {
      case "create":
        lines.push(c.green(`  + ${what} will be created`));
        break;
      case "change":
        lines.push(c.yellow(`  ~ ${what} drifted from the manifest: ${f.fields.map(describeDrift).join(", ")}`));
        break;
      case "remove":
        lines.push(c.red(`  - ${what} will be removed (no longer in the manifest)`));
        break;
      default: {
        const never: never = f.action;
        throw new Error(`unknown action ${String(never)}`);
      }
    }
  }
  if (flags.length > 0) lines.push("");
  const n = planCounts(plan);
  lines.push(`Plan: ${n.create} to create, ${n.change} to change, ${n.remove} to remove.`);
  if (flags.length > 0) {
    const count = (a: PlanAction) => flags.filter((f) => f.action === a).length;
    lines.push(`Flags: ${count("create")} to create, ${count("change")} to change, ${count("remove")} to remove.`);
  }
  return `${lines.join("\n")}\n`;
}

/** One drifted path, manifest value first: `defaultVariant: "on" → "off"`, `targeting removed`. */
function describeDrift(d: FlagDrift): string {
  if (!("stored" in d)) return `${d.path} removed`;
  if (!("manifest" in d)) return `${d.path} added`;
  return `${d.path}: ${show(d.manifest)} → ${show(d.stored)}`;
}

function show(v: unknown): string {
  const text = JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
