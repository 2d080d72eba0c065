// A parser for the Prometheus text exposition format (0.0.4): what a gateway's admin /metrics
// answers and the scraper feeds the metric store. Errors name the line and column.
import { KeelsonError } from "@keelson/protocol";

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

/** One sample line. Histogram samples keep their own names (`x_bucket`, `x_sum`, `x_count`). */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the line carries a timestamp. */
  timestampMs: number | undefined;
  /** 1-based line number in the text. */
  line: number;
}

/** The samples of one metric, under the name its `# TYPE` line gives (or the sample's own name). */
export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string | undefined;
  samples: Sample[];
}

export interface ParseOptions {
  /** Where the text came from, for error messages (default "metrics"). */
  source?: string;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: ReadonlySet<string> = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
// Go's ParseFloat, which Prometheus uses, also takes these spellings.
const SPECIAL_VALUES: Readonly<Record<string, number>> = {
  "+inf": Infinity,
  inf: Infinity,
  "+infinity": Infinity,
  infinity: Infinity,
  "-inf": -Infinity,
  "-infinity": -Infinity,
  nan: NaN,
};
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Parses exposition text into metric families, in the order they first appear.
 *
 * @example
 * const [requests] = parsePrometheusText('# TYPE hits_total counter\nhits_total{code="200"} 3\n');
 * requests.samples[0].labels.code; // "200"
 */
export function parsePrometheusText(text: string, options: ParseOptions = {}): MetricFamily[] {
  const source = options.source ?? "metrics";
  const families = new Map<string, MetricFamily>();
  // Names whose TYPE or HELP was declared, to catch a second declaration.
  const typed = new Set<string>();
  const helped = new Set<string>();
  const lines = text.split("\n");

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i] as string;
    if (line.endsWith("\r")) line = line.slice(0, -1);
    const fail = (column: number, message: string): never => {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${source}:${lineNo}:${column}: ${message}`, {
        details: { source, line: lineNo, column, text: line.length > 200 ? `${line.slice(0, 200)}…` : line },
      });
    };
    const trimmed = line.trimStart();
    if (trimmed === "") continue;
    if (trimmed.startsWith("#")) {
      parseComment(trimmed, line.length - trimmed.length, lineNo);
      continue;
    }
    const sample = parseSampleLine(line, lineNo, fail);
    const family = familyOf(sample.name);
    checkSample(family, sample, fail);
    family.samples.push(sample);
  }
  return [...families.values()];

  function parseComment(comment: string, indent: number, lineNo: number): void {
    // "# HELP name text" and "# TYPE name type"; any other comment is ignored.
    const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(comment);
    if (!m) return;
    const [, keyword, name, rest = ""] = m as unknown as [string, "HELP" | "TYPE", string, string | undefined];
    const fail = (message: string): never => {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${source}:${lineNo}:${indent + 1}: ${message}`, { details: { source, line: lineNo } });
    };
    if (!METRIC_NAME.test(name)) fail(`${keyword} line: "${name}" is not a valid metric name`);
    const existing = families.get(name);
    if (keyword === "TYPE") {
      const type = rest.trim();
      if (!TYPES.has(type)) fail(`TYPE line for ${name}: unknown type "${type}" (expected counter, gauge, histogram, summary or untyped)`);
      if (typed.has(name)) fail(`second TYPE line for ${name}`);
      if (existing !== undefined && existing.samples.length > 0) fail(`TYPE line for ${name} comes after its samples`);
      typed.add(name);
      if (existing) existing.type = type as MetricType;
      else families.set(name, { name, type: type as MetricType, help: undefined, samples: [] });
    } else {
      if (helped.has(name)) fail(`second HELP line for ${name}`);
      helped.add(name);
      const help = rest.replace(/\\(\\|n)/g, (_, c: string) => (c === "n" ? "\n" : "\\"));
      if (existing) existing.help = help;
      else families.set(name, { name, type: "untyped", help, samples: [] });
    }
  }

  function familyOf(name: string): MetricFamily {
    const own = families.get(name);
    if (own !== undefined) return own;
    // A histogram's `_bucket`/`_sum`/`_count` (a summary's `_sum`/`_count`) belong to its family.
    const suffix = /_(bucket|sum|count)$/.exec(name);
    if (suffix) {
      const base = families.get(name.slice(0, suffix.index));
      if (base !== undefined && (base.type === "histogram" || (base.type === "summary" && suffix[1] !== "bucket"))) return base;
    }
    const family: MetricFamily = { name, type: "untyped", help: undefined, samples: [] };
    families.set(name, family);
    return family;
  }
}

type Fail = (column: number, message: string) => never;

function parseSampleLine(line: string, lineNo: number, fail: Fail): Sample {
  let pos = 0;
  const n = line.length;
  const skipSpace = () => {
    while (pos < n && (line[pos] === " " || line[pos] === "\t")) pos++;
  };
  skipSpace();
  const nameStart = pos;
  while (pos < n && isNameChar(line.charCodeAt(pos), true)) pos++;
  const name = line.slice(nameStart, pos);
  if (!METRIC_NAME.test(name)) fail(nameStart + 1, name === "" ? `expected a metric name, got "${line.slice(nameStart, nameStart + 20)}"` : `"${name}" is not a valid metric name`);

  const labels: Record<string, string> = {};
  const afterName = pos;
  skipSpace();
  let spaced = pos > afterName;
  if (line[pos] === "{") {
    pos++;
    for (;;) {
      skipSpace();
      if (pos >= n) fail(pos + 1, `unterminated label set of ${name}: expected "}"`);
      if (line[pos] === "}") {
        pos++;
        break;
      }
      const labelStart = pos;
      while (pos < n && isNameChar(line.charCodeAt(pos), false)) pos++;
      const label = line.slice(labelStart, pos);
      if (!LABEL_NAME.test(label)) fail(labelStart + 1, label === "" ? `expected a label name in ${name}, got "${line[pos] ?? "end of line"}"` : `"${label}" is not a valid label name`);
      if (Object.hasOwn(labels, label)) fail(labelStart + 1, `label "${label}" appears twice in ${name}`);
      skipSpace();
      if (line[pos] !== "=") fail(pos + 1, `expected "=" after label name "${label}", got ${describe(line[pos])}`);
      pos++;
      skipSpace();
      if (line[pos] !== '"') fail(pos + 1, `expected a quoted value for label "${label}", got ${describe(line[pos])}`);
      pos++;
      let value = "";
      for (;;) {
        // Copy the run up to the next quote or backslash in one slice (values rarely hold escapes).
        const runStart = pos;
        while (pos < n) {
          const code = line.charCodeAt(pos);
          if (code === QUOTE || code === BACKSLASH) break;
          pos++;
        }
        if (pos > runStart) value += line.slice(runStart, pos);
        if (pos >= n) fail(pos + 1, `unterminated value of label "${label}": expected a closing quote`);
        const c = line[pos] as string;
        if (c === '"') {
          pos++;
          break;
        }
        if (c === "\\") {
          const next = line[pos + 1];
          if (next === "\\" || next === '"') value += next;
          else if (next === "n") value += "\n";
          else fail(pos + 1, `invalid escape "\\${next ?? ""}" in the value of label "${label}" (use \\\\, \\" or \\n)`);
          pos += 2;
          continue;
        }
      }
      labels[label] = value;
      skipSpace();
      if (line[pos] === ",") pos++;
      else if (line[pos] !== "}") fail(pos + 1, `expected "," or "}" after the value of label "${label}", got ${describe(line[pos])}`);
    }
    const afterLabels = pos;
    skipSpace();
    spaced = pos > afterLabels;
  }
  if (!spaced && pos < n) fail(pos + 1, `expected a space before the value of ${name}, got ${describe(line[pos])}`);
  const valueStart = pos;
  while (pos < n && line[pos] !== " " && line[pos] !== "\t") pos++;
  const valueText = line.slice(valueStart, pos);
  if (valueText === "") fail(valueStart + 1, `missing value of ${name}`);
  const value = parseValue(valueText);
  if (value === undefined) fail(valueStart + 1, `value of ${name}: "${valueText}" is not a number`);

  skipSpace();
  let timestampMs: number | undefined;
  if (pos < n) {
    const tsStart = pos;
    while (pos < n && line[pos] !== " " && line[pos] !== "\t") pos++;
    const tsText = line.slice(tsStart, pos);
    if (!/^-?\d+$/.test(tsText) || !Number.isSafeInteger(Number(tsText))) fail(tsStart + 1, `timestamp of ${name}: "${tsText}" is not an integer of milliseconds`);
    timestampMs = Number(tsText);
    skipSpace();
    if (pos < n) fail(pos + 1, `unexpected "${line.slice(pos, pos + 20)}" after the timestamp of ${name}`);
  }
  return { name, labels, value: value as number, timestampMs, line: lineNo };
}

const QUOTE = 34;
const BACKSLASH = 92;

/** [a-zA-Z0-9_], plus ":" in metric names. */
function isNameChar(code: number, colon: boolean): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === 95 || (colon && code === 58);
}

function checkSample(family: MetricFamily, sample: Sample, fail: Fail): void {
  if (family.type === "histogram" && sample.name === `${family.name}_bucket`) {
    const le = sample.labels.le;
    if (le === undefined) fail(1, `histogram bucket ${sample.name} has no "le" label`);
    if (parseValue(le as string) === undefined || Number.isNaN(parseValue(le as string))) fail(1, `histogram bucket ${sample.name}: le="${le}" is not a number`);
  } else if (family.type === "histogram" && sample.name === family.name) {
    fail(1, `${sample.name} is a histogram: its samples are ${sample.name}_bucket, _sum and _count`);
  } else if (family.type === "summary" && sample.name === family.name && sample.labels.quantile === undefined) {
    fail(1, `summary ${sample.name} sample has no "quantile" label`);
  }
}

/** A sample value or `le` bound as Prometheus reads it; undefined when it is not a number. */
export function parseValue(text: string): number | undefined {
  const special = SPECIAL_VALUES[text.toLowerCase()];
  if (special !== undefined) return special;
  return DECIMAL.test(text) ? Number(text) : undefined;
}

function describe(c: string | undefined): string {
  return c === undefined ? "end of line" : `"${c}"`;
}
