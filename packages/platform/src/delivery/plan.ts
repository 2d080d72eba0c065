// The plan: what `keelson up` would change, compared with the stored desired state,
// printed Terraform-style (+ create, ~ change with the fields, - remove).
import pc from "picocolors";
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
}

export interface Plan {
  project: string;
  changes: PlanChange[];
  /** Services that stay exactly as they are. */
  unchanged: string[];
}

export interface PlanInput {
  manifest: Manifest;
  stored: ServiceRecord[];
  /**
   * The release each service would get from its current sources, when known; a
   * service whose stored release differs shows as changed ("sources changed").
   */
  candidateReleases?: ReadonlyMap<string, string>;
}

/** Computes the difference between the manifest and the stored desired state. */
export function computePlan(input: PlanInput): Plan {
  const { manifest, stored, candidateReleases } = input;
  const storedByName = new Map(stored.map((s) => [s.name, s]));
  const changes: PlanChange[] = [];
  const unchanged: string[] = [];

  for (const name of Object.keys(manifest.services).sort()) {
    const spec = manifest.services[name] as ServiceSpec;
    const desired = toPlain(spec);
    const current = storedByName.get(name);
    const candidate = candidateReleases?.get(name);
    if (!current) {
      changes.push({ action: "create", service: name, fields: diff("", {}, desired), sourcesChanged: false });
      continue;
    }
    const fields = diff("", current.spec, desired);
    const sourcesChanged = candidate !== undefined && candidate !== current.release;
    if (fields.length > 0 || sourcesChanged) changes.push({ action: "change", service: name, fields, sourcesChanged });
    else unchanged.push(name);
  }
  for (const s of stored) {
    if (!(s.name in manifest.services)) changes.push({ action: "remove", service: s.name, fields: [], sourcesChanged: false });
  }
  changes.sort((a, b) => a.service.localeCompare(b.service));
  return { project: manifest.project, changes, unchanged };
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
  if (plan.changes.length === 0) return `No changes. Project "${plan.project}" matches the manifest.\n`;
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
        for (const f of ch.fields) {
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
  const n = planCounts(plan);
  lines.push(`Plan: ${n.create} to create, ${n.change} to change, ${n.remove} to remove.`);
  return `${lines.join("\n")}\n`;
}

function show(v: unknown): string {
  const text = JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
