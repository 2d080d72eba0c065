// The placeholder language of service templates: `{{ variable }}` or `{{ variable | filter }}`,
// nothing else. No expressions, no code: a placeholder is replaced by a variable's value, maybe
// reshaped by a fixed filter. `\{{` writes a literal `{{`; any other `{{` is an error.

/** A variable's value: text, or an integer or boolean for variables of those types. */
export type TemplateValue = string | number | boolean;

/** Words of a value: split at non-alphanumerics and lower→upper case changes. */
function words(value: string): string[] {
  return value
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w !== "");
}
const capital = (w: string) => (w === "" ? w : w[0]!.toUpperCase() + w.slice(1).toLowerCase());

/** The filters, by name: each turns a value into text. */
export const FILTERS = {
  lower: (v: TemplateValue) => String(v).toLowerCase(),
  upper: (v: TemplateValue) => String(v).toUpperCase(),
  kebab: (v: TemplateValue) => words(String(v)).map((w) => w.toLowerCase()).join("-"),
  snake: (v: TemplateValue) => words(String(v)).map((w) => w.toLowerCase()).join("_"),
  constant: (v: TemplateValue) => words(String(v)).map((w) => w.toUpperCase()).join("_"),
  camel: (v: TemplateValue) => words(String(v)).map((w, i) => (i === 0 ? w.toLowerCase() : capital(w))).join(""),
  pascal: (v: TemplateValue) => words(String(v)).map(capital).join(""),
  title: (v: TemplateValue) => words(String(v)).map(capital).join(" "),
  /** Text safe inside HTML: & < > " ' escaped. */
  html: (v: TemplateValue) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`),
  /** A JSON literal: a quoted, escaped string (also a valid TypeScript/JavaScript string), or the number or boolean. */
  json: (v: TemplateValue) => JSON.stringify(v),
  /** The value escaped for inside "…" in JSON, JavaScript or TypeScript, without the quotes (a template file stays valid JSON). */
  escaped: (v: TemplateValue) => JSON.stringify(String(v)).slice(1, -1),
} as const satisfies Record<string, (v: TemplateValue) => string>;

export type FilterName = keyof typeof FILTERS;
export const FILTER_NAMES = Object.keys(FILTERS) as FilterName[];

/** One `{{ … }}` in a text, with its place (lines and columns count from 1). */
export interface Placeholder {
  variable: string;
  filters: FilterName[];
  line: number;
  column: number;
  /** The placeholder as written, braces included. */
  source: string;
}

/** A problem in a text's placeholders, with its place in that text. */
export interface PlaceholderIssue {
  line: number;
  column: number;
  message: string;
  hint?: string;
}

type Token = { kind: "text"; text: string } | { kind: "placeholder"; placeholder: Placeholder };

const EXPRESSION = /^([A-Za-z][A-Za-z0-9_]*)((?:\s*\|\s*[A-Za-z][A-Za-z0-9_]*)*)$/;

/** Splits a text into literal runs and placeholders; malformed ones become issues. */
function tokenize(text: string): { tokens: Token[]; issues: PlaceholderIssue[] } {
  const tokens: Token[] = [];
  const issues: PlaceholderIssue[] = [];
  let literal = "";
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const advanceTo = (end: number) => {
    for (let j = i; j < end; j++) {
      if (text.charCodeAt(j) === 10) {
        line++;
        lineStart = j + 1;
      }
    }
    i = end;
  };
  while (i < text.length) {
    const open = text.indexOf("{{", i);
    if (open === -1) {
      literal += text.slice(i);
      advanceTo(text.length);
      break;
    }
    if (open > 0 && text[open - 1] === "\\") {
      // `\{{` is a literal `{{`: drop the backslash, keep the braces.
      literal += `${text.slice(i, open - 1)}{{`;
      advanceTo(open + 2);
      continue;
    }
    literal += text.slice(i, open);
    advanceTo(open);
    const column = open - lineStart + 1;
    const lineEnd = text.indexOf("\n", open);
    const close = text.indexOf("}}", open + 2);
    if (close === -1 || (lineEnd !== -1 && close > lineEnd)) {
      issues.push({ line, column, message: "`{{` without a closing `}}` on the same line", hint: "write \\{{ for a literal {{" });
      literal += "{{";
      advanceTo(open + 2);
      continue;
    }
    const source = text.slice(open, close + 2);
    const match = EXPRESSION.exec(text.slice(open + 2, close).trim());
    if (!match) {
      issues.push({ line, column, message: `malformed placeholder ${source}: expected {{ variable }} or {{ variable | filter }}`, hint: "write \\{{ for a literal {{" });
      literal += source;
      advanceTo(close + 2);
      continue;
    }
    const filters: FilterName[] = [];
    for (const raw of (match[2] ?? "").split("|").map((f) => f.trim()).filter((f) => f !== "")) {
      if (Object.hasOwn(FILTERS, raw)) filters.push(raw as FilterName);
      else issues.push({ line, column, message: `unknown filter "${raw}" in ${source}`, hint: `filters: ${FILTER_NAMES.join(", ")}` });
    }
    if (literal !== "") tokens.push({ kind: "text", text: literal });
    literal = "";
    tokens.push({ kind: "placeholder", placeholder: { variable: match[1] as string, filters, line, column, source } });
    advanceTo(close + 2);
  }
  if (literal !== "") tokens.push({ kind: "text", text: literal });
  return { tokens, issues };
}

/**
 * The placeholders of a text and its problems: malformed or unclosed placeholders, unknown
 * filters, and variables not in `known`.
 *
 * @example
 * scanPlaceholders('const service = {{ name | json }};', new Set(["name"])); // { placeholders: [{ variable: "name", filters: ["json"], line: 1, column: 17, … }], issues: [] }
 */
export function scanPlaceholders(text: string, known: ReadonlySet<string>, suggest?: (variable: string) => string | undefined): { placeholders: Placeholder[]; issues: PlaceholderIssue[] } {
  const { tokens, issues } = tokenize(text);
  const placeholders: Placeholder[] = [];
  for (const t of tokens) {
    if (t.kind !== "placeholder") continue;
    placeholders.push(t.placeholder);
    const p = t.placeholder;
    if (!known.has(p.variable)) {
      const close = suggest?.(p.variable);
      issues.push({
        line: p.line,
        column: p.column,
        message: `unknown variable "${p.variable}" in ${p.source}`,
        hint: close !== undefined ? `did you mean \`${close}\`?` : `variables: ${[...known].join(", ")}`,
      });
    }
  }
  issues.sort((a, b) => a.line - b.line || a.column - b.column);
  return { placeholders, issues };
}

/** A placeholder replaced by its value (filters applied left to right). */
export function placeholderText(p: Pick<Placeholder, "variable" | "filters">, value: TemplateValue): string {
  let out: TemplateValue = value;
  for (const f of p.filters) out = FILTERS[f](out);
  return String(out);
}

/**
 * Replaces every placeholder of `text`. Throws (a plain Error naming the first problem) when
 * the text has one: callers check texts with scanPlaceholders first.
 *
 * @example
 * renderPlaceholders("services/{{name}}", { name: "orders" }); // "services/orders"
 */
export function renderPlaceholders(text: string, values: Readonly<Record<string, TemplateValue>>): string {
  const { tokens, issues } = tokenize(text);
  if (issues[0] !== undefined) throw new Error(`${issues[0].line}:${issues[0].column} ${issues[0].message}`);
  let out = "";
  for (const t of tokens) {
    if (t.kind === "text") {
      out += t.text;
      continue;
    }
    // Own values only: a variable named toString or constructor is not Object.prototype's.
    const value = Object.hasOwn(values, t.placeholder.variable) ? values[t.placeholder.variable] : undefined;
    if (value === undefined) throw new Error(`${t.placeholder.line}:${t.placeholder.column} no value for "${t.placeholder.variable}"`);
    out += placeholderText(t.placeholder, value);
  }
  return out;
}

/** The one placeholder a text consists of (`"{{ port }}"`), if that is all it is. */
export function solePlaceholder(text: string): Placeholder | undefined {
  const { tokens, issues } = tokenize(text);
  const only = tokens.length === 1 ? tokens[0] : undefined;
  return issues.length === 0 && only?.kind === "placeholder" ? only.placeholder : undefined;
}
