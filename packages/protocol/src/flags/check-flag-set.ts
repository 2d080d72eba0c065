// Validation of a flag set at write time: structure (zod), then what a schema cannot say (variant
// types, names that must exist, JsonLogic operators and arities, cycles), each issue at its path.
import { z } from "zod";
import { FLAG_FIELDS, FlagDefinitionSchema, FlagSetSchema, type FlagDefinition, type FlagIssue, type FlagSet, type FlagValueType } from "./flag-set.js";
import { compileRule, refsOf, type CompileScope, type Path } from "./targeting.js";

const MAX_VALUE_DEPTH = 64;
/** Metadata keys `exportFlagd` writes the Keelson extensions to. */
export const KEELSON_METADATA_PREFIX = "keelson.";

/** The value type of a variant: arrays count as objects, as in OpenFeature. */
export function valueTypeOf(v: unknown): FlagValueType | undefined {
  switch (typeof v) {
    case "boolean":
      return "boolean";
    case "string":
      return "string";
    case "number":
      return Number.isFinite(v) ? "number" : undefined;
    case "object":
      return v === null ? undefined : "object";
    case "bigint":
    case "function":
    case "symbol":
    case "undefined":
      return undefined;
  }
}

/** Problems that make `value` something other than plain JSON (or a trap: a "__proto__" key). */
function jsonIssues(value: unknown, path: Path, issues: FlagIssue[], depth = 0): void {
  if (depth > MAX_VALUE_DEPTH) {
    issues.push({ path, message: `nested more than ${MAX_VALUE_DEPTH} levels deep` });
    return;
  }
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) issues.push({ path, message: "numbers must be finite" });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => jsonIssues(item, [...path, i], issues, depth + 1));
    return;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      issues.push({ path, message: "must be plain JSON (an object literal), not a class instance" });
      return;
    }
    for (const key of Object.keys(value)) {
      if (key === "__proto__") issues.push({ path: [...path, key], message: '"__proto__" is not allowed as a key' });
      else jsonIssues((value as Record<string, unknown>)[key], [...path, key], issues, depth + 1);
    }
    return;
  }
  issues.push({ path, message: `${typeof value} is not a JSON value` });
}

function zodIssues(error: z.ZodError, prefix: Path, fields: readonly string[], where: string): FlagIssue[] {
  const out: FlagIssue[] = [];
  for (const i of error.issues) {
    const path = [...prefix, ...i.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (i.code === "unrecognized_keys") {
      for (const key of i.keys) out.push({ path: [...path, key], message: `unknown field; ${where} has: ${fields.join(", ")}` });
    } else out.push({ path, message: i.message });
  }
  return out;
}

/** Own-key "__proto__" anywhere in the containers zod parses into fresh objects (it would drop it silently). */
function protoKeyIssues(input: unknown, issues: FlagIssue[]): void {
  if (typeof input !== "object" || input === null) return;
  const check = (obj: unknown, path: Path): void => {
    if (typeof obj === "object" && obj !== null && Object.hasOwn(obj, "__proto__")) issues.push({ path: [...path, "__proto__"], message: '"__proto__" is not allowed as a key' });
  };
  const root = input as Record<string, unknown>;
  check(root, []);
  for (const part of ["flags", "$evaluators", "metadata"]) check(root[part], [part]);
  const flags = root.flags;
  if (typeof flags !== "object" || flags === null) return;
  for (const [key, flag] of Object.entries(flags)) {
    check(flag, ["flags", key]);
    if (typeof flag !== "object" || flag === null) continue;
    check((flag as Record<string, unknown>).variants, ["flags", key, "variants"]);
    check((flag as Record<string, unknown>).metadata, ["flags", key, "metadata"]);
  }
}

/** Cycles in a graph, each reported once (at the node where the walk closed it). */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const cycles: string[][] = [];
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const st = state.get(next);
      if (st === "open") cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (st === undefined && graph.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

/** True when targeting means "no targeting": absent, null or `{}`. */
export function isNoTargeting(targeting: unknown): boolean {
  return targeting === undefined || targeting === null || (typeof targeting === "object" && !Array.isArray(targeting) && Object.keys(targeting).length === 0);
}

function checkFlag(key: string, flag: FlagDefinition, set: { flags: Record<string, unknown>; $evaluators?: Record<string, unknown> }, issues: FlagIssue[]): void {
  const at = (...rest: Path): Path => ["flags", key, ...rest];
  const names = Object.keys(flag.variants);
  if (names.length === 0) issues.push({ path: at("variants"), message: "a flag needs at least one variant" });
  let firstType: { name: string; type: FlagValueType } | undefined;
  for (const name of names) {
    const value = flag.variants[name];
    const before = issues.length;
    jsonIssues(value, at("variants", name), issues);
    if (issues.length !== before) continue;
    const type = valueTypeOf(value);
    if (type === undefined) {
      issues.push({ path: at("variants", name), message: "a variant is a boolean, string, number or object (null is not a value)" });
      continue;
    }
    if (firstType === undefined) firstType = { name, type };
    else if (type !== firstType.type) {
      issues.push({ path: at("variants", name), message: `variant "${name}" is a ${type} but "${firstType.name}" is a ${firstType.type}; all variants of a flag have one type` });
    }
  }
  const known = names.join(", ");
  if (!Object.hasOwn(flag.variants, flag.defaultVariant)) issues.push({ path: at("defaultVariant"), message: `"${flag.defaultVariant}" is not a variant (variants: ${known})` });
  if (flag.safeVariant !== undefined && !Object.hasOwn(flag.variants, flag.safeVariant)) {
    issues.push({ path: at("safeVariant"), message: `"${flag.safeVariant}" is not a variant (variants: ${known})` });
  }
  for (const metaKey of Object.keys(flag.metadata ?? {})) {
    if (metaKey.startsWith(KEELSON_METADATA_PREFIX)) issues.push({ path: at("metadata", metaKey), message: `metadata keys starting with "${KEELSON_METADATA_PREFIX}" are reserved for the Keelson fields written on export` });
  }
  (flag.prerequisites ?? []).forEach((p, i) => {
    if (p.flag === key) {
      issues.push({ path: at("prerequisites", i, "flag"), message: "a flag cannot be its own prerequisite" });
      return;
    }
    const other = Object.hasOwn(set.flags, p.flag) ? set.flags[p.flag] : undefined;
    if (other === undefined) {
      issues.push({ path: at("prerequisites", i, "flag"), message: `no flag "${p.flag}" in this set` });
      return;
    }
    const variants = (other as { variants?: unknown }).variants;
    if (typeof variants === "object" && variants !== null && !Object.hasOwn(variants, p.variant)) {
      issues.push({ path: at("prerequisites", i, "variant"), message: `flag "${p.flag}" has no variant "${p.variant}" (variants: ${Object.keys(variants).join(", ")})` });
    }
  });
  if (!isNoTargeting(flag.targeting)) {
    const scope: CompileScope = { issues, evaluators: set.$evaluators, variants: new Set(names), report: true, refStack: [], refSite: undefined };
    compileRule(flag.targeting, at("targeting"), true, scope);
  }
}

/** Problems with a set's structure and semantics; an empty list means it compiles. */
export function flagSetIssues(input: unknown): FlagIssue[] {
  const issues: FlagIssue[] = [];
  protoKeyIssues(input, issues);
  const Shape = FlagSetSchema.extend({ flags: z.record(z.string().min(1), z.unknown()) });
  const shape = Shape.safeParse(input);
  if (!shape.success) {
    const hint = typeof input === "object" && input !== null && Object.hasOwn(input, "$schema") ? "a flag set (a flagd file goes through importFlagd)" : "a flag set";
    issues.push(...zodIssues(shape.error, [], Object.keys(Shape.shape), hint));
    return issues;
  }
  const raw = shape.data;
  const evaluators = raw.$evaluators;
  for (const [key, value] of Object.entries(raw.flags)) {
    const parsed = FlagDefinitionSchema.safeParse(value);
    if (!parsed.success) {
      issues.push(...zodIssues(parsed.error, ["flags", key], FLAG_FIELDS, "a flag"));
      continue;
    }
    checkFlag(key, parsed.data as FlagDefinition, raw, issues);
  }
  for (const [name, rule] of Object.entries(evaluators ?? {})) {
    const scope: CompileScope = { issues, evaluators, variants: undefined, report: true, refStack: [name], refSite: undefined };
    compileRule(rule, ["$evaluators", name], false, scope);
  }
  const refGraph = new Map(Object.entries(evaluators ?? {}).map(([name, rule]) => [name, refsOf(rule)]));
  for (const cycle of findCycles(refGraph)) issues.push({ path: ["$evaluators", cycle[0] as string], message: `$ref cycle: ${cycle.join(" → ")}` });
  const prereqGraph = new Map<string, string[]>();
  for (const [key, value] of Object.entries(raw.flags)) {
    const prerequisites = (value as { prerequisites?: unknown }).prerequisites;
    if (Array.isArray(prerequisites)) prereqGraph.set(key, prerequisites.map((p) => (p as { flag?: unknown }).flag).filter((f): f is string => typeof f === "string" && f !== key));
  }
  for (const cycle of findCycles(prereqGraph)) issues.push({ path: ["flags", cycle[0] as string, "prerequisites"], message: `prerequisite cycle: ${cycle.join(" → ")}` });
  // One problem inside a shared evaluator can surface from several places: report each once.
  const seen = new Set<string>();
  return issues.filter((i) => {
    const id = `${JSON.stringify(i.path)} ${i.message}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * Validates a flag set; every problem comes with its path (`flags.<key>.targeting.if.0`).
 *
 * @example
 * const checked = checkFlagSet(JSON.parse(text));
 * if (!checked.ok) for (const i of checked.issues) console.error(`${i.path.join(".")}: ${i.message}`);
 */
export function checkFlagSet(input: unknown): { ok: true; set: FlagSet } | { ok: false; issues: FlagIssue[] } {
  let issues: FlagIssue[];
  try {
    issues = flagSetIssues(input);
  } catch (e) {
    // Only a hostile input (throwing getters, proxies) gets here; answer, don't throw.
    return { ok: false, issues: [{ path: [], message: `the flag set could not be read: ${e instanceof Error ? e.message : String(e)}` }] };
  }
  if (issues.length > 0) return { ok: false, issues };
  const parsed = FlagSetSchema.parse(input);
  return { ok: true, set: parsed as FlagSet };
}

/** The first few issues as one line, for error messages. */
export function formatIssues(issues: readonly FlagIssue[], limit = 5): string {
  const lines = issues.slice(0, limit).map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`);
  if (issues.length > limit) lines.push(`… and ${issues.length - limit} more`);
  return lines.join("; ");
}
