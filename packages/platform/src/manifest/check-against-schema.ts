// Validates plain data against a zod schema and turns every zod issue into a PathIssue that
// says what was expected and what was found, with "did you mean" hints for unknown keys.
import type { z } from "zod";
import { describeExpected, knownKeys, recordKeySchema, recordValueSchema, schemaAt } from "./describe-schema.js";
import { didYouMean } from "./did-you-mean.js";
import { formatFoundValue, type PathIssue, type PathSegment } from "./manifest-issue.js";

type Schema = z.core.$ZodType;
type Issue = z.core.$ZodIssue;

/** The outcome of a check: the parsed value (defaults applied), or every problem found. */
export type SchemaCheck<T> = { ok: true; value: T } | { ok: false; issues: PathIssue[] };

/**
 * Validates `data` against `schema`, reporting all problems at once.
 *
 * @example
 * const check = checkAgainstSchema(ManifestSchema, YAML.parse(text));
 * if (!check.ok) console.log(check.issues); // [{ path: ["services", "orders", "port"], message: 'expected integer 1-65535, got "80a"', … }]
 */
export function checkAgainstSchema<S extends z.ZodType>(schema: S, data: unknown): SchemaCheck<z.output<S>> {
  const result = schema.safeParse(data);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, issues: issuesOf(result.error.issues, { schema, data, base: [] }) };
}

/** What issue paths are relative to: `schema` and `data` sit at `base` in the document. */
interface Context {
  schema: Schema;
  data: unknown;
  base: readonly PathSegment[];
}

function issuesOf(issues: readonly Issue[], ctx: Context): PathIssue[] {
  const out: PathIssue[] = [];
  const seen = new Set<string>();
  for (const issue of issues) {
    for (const converted of convert(issue, ctx)) {
      // Union branches can report the same problem twice; say it once.
      const key = `${JSON.stringify(converted.path)}\0${converted.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(converted);
    }
  }
  return out;
}

function toSegments(path: readonly PropertyKey[]): PathSegment[] {
  return path.map((p) => (typeof p === "number" ? p : String(p)));
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let v = data;
  for (const seg of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PathSegment, unknown>)[seg];
  }
  return v;
}

/** Whether the key at the end of `path` is absent from its parent mapping (a required field left out). */
function isMissing(data: unknown, path: readonly PathSegment[]): boolean {
  if (path.length === 0) return data === undefined;
  const parent = valueAt(data, path.slice(0, -1));
  const key = path[path.length - 1];
  return typeof parent === "object" && parent !== null && !Array.isArray(parent) && !Object.hasOwn(parent, String(key));
}

function convert(issue: Issue, ctx: Context): PathIssue[] {
  const rel = toSegments(issue.path);
  const path = [...ctx.base, ...rel];
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = knownKeys(schemaAt(ctx.schema, rel));
      return issue.keys.map((key) => {
        const close = didYouMean(key, known);
        const hint = close !== undefined ? `did you mean \`${close}\`?` : known.length > 0 ? `allowed keys: ${known.join(", ")}` : undefined;
        return { path: [...path, key], at: "key" as const, message: "unknown key", ...(hint === undefined ? {} : { hint }) };
      });
    }
    case "invalid_key": {
      const recordRel = rel.slice(0, -1);
      const record = schemaAt(ctx.schema, recordRel);
      const keySchema = recordKeySchema(record);
      const key = rel[rel.length - 1];
      const expected = keySchema === undefined ? "valid key" : describeExpected(keySchema);
      const found = formatFoundValue(String(key));
      const out: PathIssue[] = [{ path, at: "key", message: `expected ${expected}, got ${found}`, expected, found }];
      // zod skips the value of a badly named entry; check it too so one run reports everything.
      const valueSchema = recordValueSchema(record);
      if (valueSchema !== undefined) {
        const value = valueAt(ctx.data, rel);
        const inner = (valueSchema as z.ZodType).safeParse(value);
        if (!inner.success) out.push(...issuesOf(inner.error.issues, { schema: valueSchema, data: value, base: path }));
      }
      return out;
    }
    case "invalid_union": {
      const branch = likelyBranch(issue.errors);
      if (branch !== undefined) {
        return issuesOf(
          branch.map((b) => ({ ...b, path: [...issue.path, ...b.path] }) as Issue),
          ctx,
        );
      }
      return [mismatch(rel, path, ctx)];
    }
    case "custom": {
      const found = formatFoundValue(valueAt(ctx.data, rel));
      return [{ path, message: issue.message, found }];
    }
    case "invalid_type":
    case "invalid_value":
    case "invalid_format":
    case "too_big":
    case "too_small":
    case "not_multiple_of":
    case "invalid_element":
      return [mismatch(rel, path, ctx)];
  }
}

/** "expected X, got Y" for the value at `rel`, X read from the schema so it covers every accepted form. */
function mismatch(rel: readonly PathSegment[], path: readonly PathSegment[], ctx: Context): PathIssue {
  const at = schemaAt(ctx.schema, rel);
  const expected = at === undefined ? "a valid value" : describeExpected(at);
  if (isMissing(ctx.data, rel)) return { path, message: `missing required field, expected ${expected}`, expected };
  const found = formatFoundValue(valueAt(ctx.data, rel));
  return { path, message: `expected ${expected}, got ${found}`, expected, found };
}

/**
 * The union option the author most likely meant: of the options whose type matched the value,
 * the one with the fewest problems. Undefined when no type matched or two tie; then the
 * value is reported against the union as a whole ("path … or a mapping with …").
 */
function likelyBranch(branches: readonly (readonly Issue[])[]): readonly Issue[] | undefined {
  let best: readonly Issue[] | undefined;
  let bestScore = Infinity;
  let tie = false;
  for (const branch of branches) {
    const score = branchScore(branch);
    if (score < bestScore) {
      best = branch;
      bestScore = score;
      tie = false;
    } else if (score === bestScore) {
      tie = true;
    }
  }
  return bestScore === Infinity || tie ? undefined : best;
}

function branchScore(issues: readonly Issue[]): number {
  for (const i of issues) {
    if (i.path.length > 0) continue;
    // A type mismatch at the union's own place means this option is not the intended one.
    if (i.code === "invalid_type" || i.code === "invalid_value") return Infinity;
    if (i.code === "invalid_union" && i.errors.every((b) => branchScore(b) === Infinity)) return Infinity;
  }
  return issues.length;
}
