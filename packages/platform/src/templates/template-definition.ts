// A template's template.yaml (or template.json): what it is, the variables it asks for, the
// packages its services need, and the service entry it adds to keelson.yaml. Parsed with the
// manifest's YAML reader, so every problem names its file, line and column.
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Scalar, type YAMLMap } from "yaml";
import { z } from "zod";
import { checkAgainstSchema, didYouMean, formatIssuePath, parseYamlSource, ServiceSpecSchema, type ManifestIssue, type PathIssue, type PathSegment } from "../manifest/index.js";
import { scanPlaceholders, solePlaceholder, type PlaceholderIssue, type TemplateValue } from "./placeholders.js";

/** Variables every template gets from `keelson new` itself; a template may not declare them. */
export const BUILTIN_VARIABLES = {
  name: "the service's name",
  owner: "the team that owns it",
  project: "the project's name (keelson.yaml's project)",
  path: "the service's folder, relative to keelson.yaml",
  gateway: "the gateway's URL, e.g. http://127.0.0.1:8080",
} as const;
export type BuiltinVariable = keyof typeof BUILTIN_VARIABLES;

/** Manifest fields `keelson new` writes itself, from --owner and --path. */
const SET_BY_COMMAND = new Set(["owner", "path"]);

const VARIABLE_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const PACKAGE_NAME = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;
const TEMPLATE_NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

const ScalarValue = z.union([z.string(), z.number(), z.boolean()]);

const VariableSchema = z.strictObject({
  description: z.string().min(1),
  type: z.enum(["string", "integer", "boolean"]).default("string"),
  default: ScalarValue.optional(),
  required: z.boolean().optional(),
  pattern: z.string().min(1).optional(),
  enum: z.array(ScalarValue).min(1).optional(),
});

/** The schema of template.yaml. */
export const TemplateFileSchema = z.strictObject({
  name: z.string().regex(TEMPLATE_NAME).optional(),
  description: z.string().min(1),
  variables: z.record(z.string().regex(VARIABLE_NAME), VariableSchema).default({}),
  requires: z.array(z.string().regex(PACKAGE_NAME)).default([]),
  verbatim: z.array(z.string().min(1)).default([]),
  manifest: z.record(z.string(), z.unknown()),
  next: z.array(z.string()).default([]),
});

export type VariableType = "string" | "integer" | "boolean";

export interface TemplateVariable {
  name: string;
  description: string;
  type: VariableType;
  /** May hold placeholders of built-ins and of variables declared before it. */
  default?: TemplateValue;
  /** Whether a value must be given; false for variables with a default (and those that allow ""). */
  required: boolean;
  /** A regular expression the whole value must match (string variables). */
  pattern?: string;
  enum?: TemplateValue[];
}

export interface TemplateDefinition {
  name?: string;
  description: string;
  variables: TemplateVariable[];
  /** npm packages the service imports or runs that the project may not have; Keelson links them. */
  requires: string[];
  /** Globs of files copied as they are, without placeholders. */
  verbatim: string[];
  /** Lines printed after the service is made (placeholders allowed). */
  next: string[];
  /** The definition's text, re-read for each service (the manifest entry keeps its comments and styles). */
  text: string;
}

/** A regular expression for a variable's pattern: it must match the whole value. */
export function patternRegExp(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, "u");
}

/** What is wrong with a value for a variable, or undefined when it fits. */
export function valueProblem(v: TemplateVariable, value: TemplateValue): string | undefined {
  const shown = JSON.stringify(value);
  if (v.type === "integer" && !Number.isInteger(value)) return `expected an integer, got ${shown}`;
  if (v.type === "boolean" && typeof value !== "boolean") return `expected true or false, got ${shown}`;
  if (v.type === "string" && typeof value !== "string") return `expected text, got ${shown}`;
  if (typeof value === "string" && [...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) return `expected one line of text without control characters, got ${shown}`;
  if (v.enum !== undefined && !v.enum.some((e) => e === value)) return `expected one of ${v.enum.map((e) => JSON.stringify(e)).join(", ")}, got ${shown}`;
  if (v.pattern !== undefined && typeof value === "string" && !patternRegExp(v.pattern).test(value)) return `expected a value matching /${v.pattern}/, got ${shown}`;
  return undefined;
}

/** A value typed in (a flag or a prompt) read as the variable's type. */
export function parseValue(v: TemplateVariable, raw: string): TemplateValue {
  if (v.type === "integer" && /^-?\d+$/.test(raw.trim())) return Number(raw.trim());
  if (v.type === "boolean" && /^(true|false)$/i.test(raw.trim())) return raw.trim().toLowerCase() === "true";
  return raw;
}

/** Places found in a definition, for messages. */
interface Located {
  definition?: TemplateDefinition;
  issues: ManifestIssue[];
}

/**
 * Parses and checks a template definition. `file` names it in issues. Checks the schema,
 * each variable's definition (names, types, patterns, enums, defaults and the placeholders in
 * them) and the placeholders and keys of the manifest entry and of `next`.
 *
 * @example
 * const { definition, issues } = parseTemplateDefinition(text, "templates/api/template.yaml");
 */
export function parseTemplateDefinition(text: string, file: string): Located {
  const source = parseYamlSource(text);
  const issues: ManifestIssue[] = source.issues.map((i) => ({ file, ...i }));
  if (source.fatal) return { issues };
  if (source.empty) return { issues: [{ file, line: 1, column: 1, path: "", message: "the file is empty; a template needs at least description and manifest" }] };
  const place = (p: PathIssue): ManifestIssue => {
    const { path, at, ...rest } = p;
    return { file, ...source.locate(path, at), path: formatIssuePath(path), ...rest };
  };
  const check = checkAgainstSchema(TemplateFileSchema, source.data);
  if (!check.ok) return { issues: [...issues, ...check.issues.map(place)].sort((a, b) => a.line - b.line || a.column - b.column) };
  const data = check.value;

  const variables: TemplateVariable[] = [];
  const declared = new Set<string>(Object.keys(BUILTIN_VARIABLES));
  for (const [name, spec] of Object.entries(data.variables)) {
    const at = (key?: string): readonly PathSegment[] => (key === undefined ? ["variables", name] : ["variables", name, key]);
    const problems: PathIssue[] = [];
    if (Object.hasOwn(BUILTIN_VARIABLES, name)) {
      problems.push({ path: at(), at: "key", message: `"${name}" is a built-in variable (${Object.keys(BUILTIN_VARIABLES).join(", ")}); choose another name` });
    }
    const variable: TemplateVariable = { name, description: spec.description, type: spec.type, required: spec.required ?? spec.default === undefined };
    if (spec.default !== undefined) variable.default = spec.default;
    if (spec.enum !== undefined) variable.enum = spec.enum;
    if (spec.pattern !== undefined) {
      variable.pattern = spec.pattern;
      if (spec.type !== "string") problems.push({ path: at("pattern"), message: `a pattern applies to string variables; this one is ${spec.type}` });
      try {
        patternRegExp(spec.pattern);
      } catch (err) {
        problems.push({ path: at("pattern"), message: `not a valid regular expression: ${(err as Error).message}` });
      }
    }
    if (spec.pattern !== undefined && spec.enum !== undefined) problems.push({ path: at("enum"), message: "give either pattern or enum, not both" });
    if (spec.required === true && spec.default !== undefined) problems.push({ path: at("required"), message: "a variable with a default is never missing; remove required or the default" });
    spec.enum?.forEach((e, i) => {
      const wrong = valueProblem({ ...variable, enum: undefined, pattern: undefined }, e);
      if (wrong !== undefined) problems.push({ path: [...at("enum"), i], message: `enum of a ${spec.type} variable: ${wrong}` });
    });
    if (spec.default !== undefined) {
      const defaultText = typeof spec.default === "string" ? spec.default : undefined;
      const scan = defaultText === undefined ? undefined : scanPlaceholders(defaultText, declared, (w) => didYouMean(w, declared));
      for (const issue of scan?.issues ?? []) {
        const later = scan?.placeholders.find((p) => !declared.has(p.variable) && Object.hasOwn(data.variables, p.variable) && issue.message.includes(`"${p.variable}"`));
        if (later !== undefined) problems.push({ path: at("default"), message: `${later.source} refers to "${later.variable}", declared after "${name}"; a default may use built-ins and variables declared before it` });
        else problems.push({ path: at("default"), message: issue.message, ...(issue.hint ? { hint: issue.hint } : {}) });
      }
      // A default with placeholders is checked once its value is known, when a service is made.
      if (scan === undefined || scan.placeholders.length === 0) {
        const wrong = valueProblem(variable, spec.default);
        if (wrong !== undefined) problems.push({ path: at("default"), message: `default: ${wrong}` });
      }
    }
    issues.push(...problems.map(place));
    declared.add(name);
    variables.push(variable);
  }

  // The manifest entry: owner and path are written by the command; keys must be service fields.
  for (const key of Object.keys(data.manifest)) {
    if (SET_BY_COMMAND.has(key)) issues.push(place({ path: ["manifest", key], at: "key", message: `${key} is written by \`keelson new\` (--owner, --path); remove it from the template` }));
  }
  const entryCheck = checkAgainstSchema(ServiceSpecSchema, { owner: "x", path: ".", ...data.manifest });
  if (!entryCheck.ok) {
    // Values may be placeholders, checked when a service is made; misspelt keys are wrong whatever the values.
    for (const i of entryCheck.issues) if (i.message === "unknown key") issues.push(place({ ...i, path: ["manifest", ...i.path] }));
  }

  // Placeholders in the manifest entry's keys and values, and in `next`.
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const manifestNode = doc.get("manifest", true);
  if (isMap(manifestNode)) {
    for (const { scalar, text: value } of stringScalars(manifestNode)) {
      for (const issue of scanPlaceholders(value, declared, (w) => didYouMean(w, declared)).issues) issues.push(scalarIssue(file, lines, scalar, issue, "manifest"));
    }
  }
  const nextNode = doc.get("next", true);
  if (isSeq(nextNode)) {
    nextNode.items.forEach((item, i) => {
      if (!isScalar(item) || typeof item.value !== "string") return;
      for (const issue of scanPlaceholders(item.value, declared, (w) => didYouMean(w, declared)).issues) issues.push(scalarIssue(file, lines, item, issue, `next[${i}]`));
    });
  }

  if (issues.length > 0) return { issues: issues.sort((a, b) => a.line - b.line || a.column - b.column) };
  const definition: TemplateDefinition = { description: data.description, variables, requires: data.requires, verbatim: data.verbatim, next: data.next, text };
  if (data.name !== undefined) definition.name = data.name;
  return { definition, issues: [] };
}

/** Every string scalar (keys included) under a node, with its text. */
function stringScalars(node: YAMLMap): Array<{ scalar: Scalar; text: string }> {
  const out: Array<{ scalar: Scalar; text: string }> = [];
  visit(node, {
    Scalar(_key, s) {
      if (typeof s.value === "string") out.push({ scalar: s, text: s.value });
    },
  });
  return out;
}

/** A placeholder problem inside a scalar, placed in the file (quoted scalars start one column later). */
function scalarIssue(file: string, lines: LineCounter, scalar: Scalar, issue: PlaceholderIssue, path: string): ManifestIssue {
  const start = lines.linePos(scalar.range?.[0] ?? 0);
  const quoted = scalar.type === "QUOTE_DOUBLE" || scalar.type === "QUOTE_SINGLE";
  const column = issue.line === 1 ? start.col + (quoted ? 1 : 0) + issue.column - 1 : issue.column;
  return { file, line: start.line + issue.line - 1, column, path, message: issue.message, ...(issue.hint ? { hint: issue.hint } : {}) };
}

/**
 * The manifest entry of a definition with every placeholder replaced, as a YAML node that keeps
 * the template's comments and flow styles. A scalar that is one placeholder of an integer or
 * boolean variable becomes that number or boolean.
 */
export function renderManifestEntry(definition: TemplateDefinition, values: Readonly<Record<string, TemplateValue>>, render: (text: string) => string): YAMLMap {
  const doc: Document = parseDocument(definition.text);
  const node = doc.get("manifest", true);
  if (!isMap(node)) throw new Error("template definition without a manifest mapping");
  visit(node, {
    Scalar(_key, s) {
      if (typeof s.value !== "string") return;
      const sole = solePlaceholder(s.value);
      const typed = sole !== undefined && sole.filters.length === 0 && Object.hasOwn(values, sole.variable) ? values[sole.variable] : undefined;
      if (typed !== undefined && typeof typed !== "string") {
        s.value = typed;
        s.type = "PLAIN";
        return;
      }
      const rendered = render(s.value);
      // Quotes the template needed around a placeholder are not needed around most values;
      // the writer quotes the ones that need it (numbers as text, a leading "{", ": ").
      if (rendered !== s.value && (s.type === "QUOTE_DOUBLE" || s.type === "QUOTE_SINGLE")) delete s.type;
      s.value = rendered;
    },
  });
  return node;
}
