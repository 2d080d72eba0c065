// Reads the zod schema itself to say in words what a value must be ("integer 1-65535"),
// which keys a mapping allows, and which sub-schema sits at a path; error messages use it.
import type { z } from "zod";
import type { PathSegment } from "./manifest-issue.js";
import { expectedText } from "./schema.js";

type Schema = z.core.$ZodType;

/** The fields of a zod check definition that descriptions use; zod types them per check kind. */
interface CheckDef {
  check: string;
  value?: unknown;
  inclusive?: boolean;
  minimum?: number;
  maximum?: number;
  format?: string;
  prefix?: string;
  suffix?: string;
  pattern?: RegExp;
}

function checksOf(schema: Schema): CheckDef[] {
  return (schema._zod.def.checks ?? []).map((c) => c._zod.def as CheckDef);
}

/**
 * The schema a wrapper stands for, when `schema` is one that does not change what a value
 * must look like (optional, default, pipe input…); undefined otherwise.
 */
function innerOf(schema: Schema): Schema | undefined {
  const def = (schema as z.core.$ZodTypes)._zod.def;
  if (
    def.type === "optional" ||
    def.type === "nullable" ||
    def.type === "default" ||
    def.type === "prefault" ||
    def.type === "nonoptional" ||
    def.type === "readonly" ||
    def.type === "catch"
  ) {
    return def.innerType;
  }
  // Manifest values are checked on the input side; transforms only reshape valid input.
  if (def.type === "pipe") return def.in;
  if (def.type === "lazy") return def.getter();
  return undefined;
}

function unwrap(schema: Schema): Schema {
  let s = schema;
  for (let inner = innerOf(s); inner !== undefined; inner = innerOf(s)) s = inner;
  return s;
}

/**
 * The sub-schema that validates the value at `path`, or undefined when the schema has no
 * such place. Through a union it takes the first option that has the path.
 */
export function schemaAt(schema: Schema, path: readonly PathSegment[]): Schema | undefined {
  if (path.length === 0) return schema;
  const [seg, ...rest] = path as [PathSegment, ...PathSegment[]];
  const def = (unwrap(schema) as z.core.$ZodTypes)._zod.def;
  if (def.type === "object") {
    const child = typeof seg === "string" && Object.hasOwn(def.shape, seg) ? def.shape[seg] : undefined;
    return child === undefined ? undefined : schemaAt(child, rest);
  }
  if (def.type === "record") return typeof seg === "string" ? schemaAt(def.valueType, rest) : undefined;
  if (def.type === "array") return typeof seg === "number" ? schemaAt(def.element, rest) : undefined;
  if (def.type === "union") {
    for (const option of def.options) {
      const found = schemaAt(option, path);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** The keys a mapping schema allows (for a union of mappings, those of every option), in schema order. */
export function knownKeys(schema: Schema | undefined): string[] {
  if (schema === undefined) return [];
  const def = (unwrap(schema) as z.core.$ZodTypes)._zod.def;
  if (def.type === "object") return Object.keys(def.shape);
  if (def.type === "union") return [...new Set(def.options.flatMap((o) => knownKeys(o)))];
  return [];
}

/** The key schema of the record at this schema, if it is one. */
export function recordKeySchema(schema: Schema | undefined): Schema | undefined {
  if (schema === undefined) return undefined;
  const def = (unwrap(schema) as z.core.$ZodTypes)._zod.def;
  return def.type === "record" ? def.keyType : undefined;
}

/** The value schema of the record at this schema, if it is one. */
export function recordValueSchema(schema: Schema | undefined): Schema | undefined {
  if (schema === undefined) return undefined;
  const def = (unwrap(schema) as z.core.$ZodTypes)._zod.def;
  return def.type === "record" ? def.valueType : undefined;
}

function describeNumber(schema: Schema): string {
  let kind = "number";
  let min: { value: number; inclusive: boolean } | undefined;
  let max: { value: number; inclusive: boolean } | undefined;
  for (const c of checksOf(schema)) {
    // int() is a "safeint" format with implicit ±2^53 bounds that are not the user's rule.
    if (c.check === "number_format" && (c.format === "safeint" || c.format === "int32" || c.format === "uint32")) kind = "integer";
    if (c.check === "greater_than" && typeof c.value === "number") min = { value: c.value, inclusive: c.inclusive === true };
    if (c.check === "less_than" && typeof c.value === "number") max = { value: c.value, inclusive: c.inclusive === true };
  }
  if (min?.inclusive && max?.inclusive && min.value >= 0) return `${kind} ${min.value}-${max.value}`;
  const bounds: string[] = [];
  if (min) bounds.push(`${min.inclusive ? ">=" : ">"} ${min.value}`);
  if (max) bounds.push(`${max.inclusive ? "<=" : "<"} ${max.value}`);
  return bounds.length === 0 ? kind : `${kind} ${bounds.join(" and ")}`;
}

function describeString(schema: Schema): string {
  const rules: string[] = [];
  let nonEmpty = false;
  for (const c of checksOf(schema)) {
    if (c.check === "min_length" && c.minimum === 1) nonEmpty = true;
    else if (c.check === "min_length") rules.push(`at least ${c.minimum} characters`);
    else if (c.check === "max_length") rules.push(`at most ${c.maximum} characters`);
    else if (c.check === "string_format" && c.format === "starts_with") rules.push(`starting with ${JSON.stringify(c.prefix)}`);
    else if (c.check === "string_format" && c.format === "ends_with") rules.push(`ending with ${JSON.stringify(c.suffix)}`);
    else if (c.check === "string_format" && c.format === "regex" && c.pattern) rules.push(`matching ${String(c.pattern)}`);
  }
  const base = nonEmpty ? "non-empty string" : "string";
  return rules.length === 0 ? base : `${base} ${rules.join(", ")}`;
}

/**
 * What a value must be, in words: the registered wording when the schema has one, otherwise
 * built from its type and checks.
 *
 * @example
 * describeExpected(z.number().int().min(1).max(65535)); // "integer 1-65535"
 */
export function describeExpected(schema: Schema): string {
  const own = expectedText.get(schema)?.expected;
  if (own !== undefined) return own;
  const inner = innerOf(schema);
  if (inner !== undefined) return describeExpected(inner);
  const def = (schema as z.core.$ZodTypes)._zod.def;
  if (def.type === "string") return describeString(schema);
  if (def.type === "number") return describeNumber(schema);
  if (def.type === "boolean") return "true or false";
  if (def.type === "literal") return def.values.map((v) => JSON.stringify(v)).join(" or ");
  if (def.type === "enum") {
    const values = Object.values(def.entries).map((v) => JSON.stringify(v));
    return `one of ${values.join(", ")}`;
  }
  if (def.type === "array") return "list";
  if (def.type === "object" || def.type === "record") return "mapping";
  if (def.type === "union") return [...new Set(def.options.map((o) => describeExpected(o)))].join(" or ");
  return def.type;
}
