// Compiles flagd targeting (JsonLogic plus fractional, sem_ver, starts_with, ends_with and $ref)
// into closures once, checking it on the way: every problem found is reported with its path.
// Evaluation then walks no JSON, only calls closures; nothing here throws except on hostile
// context values (caught by the caller) or an exhausted iteration budget.
import type { FlagIssue } from "./flag-set.js";
import { MAX_TOTAL_WEIGHT, pickBucket } from "./fractional.js";
import { murmur3_32 } from "./murmur3.js";
import { isSemVerOperator, parseSemVer, SEM_VER_TESTS, testSemVer, type SemVer } from "./sem-ver.js";

export type Path = Array<string | number>;

/** Per-evaluation state, reused between evaluations (never shared by two at once). */
export interface EvalState {
  /** The caller's context: the top-level data `var` reads. */
  ctx: object;
  flagKey: string;
  /** `$flagd.timestamp` in seconds, read from the clock on first use; -1 until then. */
  timestamp: number;
  now: () => number;
  /** Array elements the rule may still visit (map, filter, reduce, all, some, none, merge, missing). */
  budget: number;
  /** The last value a `fractional` in result position returned (NO_SPLIT when none). */
  split: unknown;
}

export type Rule = (data: unknown, s: EvalState) => unknown;

export const NO_SPLIT: unique symbol = Symbol("no-split");

/** Thrown when a rule visits more array elements than the budget allows. */
export class BudgetExceededError extends Error {
  constructor() {
    super("targeting visited more array elements than allowed (maxIterations)");
    this.name = "BudgetExceededError";
  }
}

export interface CompileScope {
  issues: FlagIssue[];
  evaluators: Readonly<Record<string, unknown>> | undefined;
  /** The flag's variant names, to check literal results; undefined when compiling a shared evaluator. */
  variants: ReadonlySet<string> | undefined;
  /** false inside a $ref: the evaluator's own problems are reported once, at $evaluators.<name>. */
  report: boolean;
  refStack: string[];
  /** Inside a $ref, where a literal result that names no variant is reported. */
  refSite: Path | undefined;
}

const MAX_DEPTH = 64;
const MAX_REF_CHAIN = 32;
const hasOwn = Object.hasOwn;

const constants = new WeakMap<Rule, { value: unknown }>();

function constant(value: unknown): Rule {
  const rule: Rule = () => value;
  constants.set(rule, { value });
  return rule;
}

const NULL_RULE = constant(null);

function constantOf(rule: Rule): { value: unknown } | undefined {
  return constants.get(rule);
}

/** JsonLogic truthiness: like JavaScript's, except that an empty array is false. */
export function truthy(v: unknown): boolean {
  return Array.isArray(v) ? v.length > 0 : !!v;
}

function spend(s: EvalState, n: number): void {
  s.budget -= n;
  if (s.budget < 0) throw new BudgetExceededError();
}

function issue(scope: CompileScope, path: Path, message: string): void {
  if (scope.report) scope.issues.push({ path, message });
}

function describe(v: unknown): string {
  const text = JSON.stringify(v);
  return text === undefined ? String(v) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The variant name a targeting result selects, as flagd maps it (booleans and numbers as text). */
export function variantName(v: unknown): string | undefined {
  switch (typeof v) {
    case "string":
      return v;
    case "boolean":
      return v ? "true" : "false";
    case "number":
      return String(v);
    case "object":
    case "bigint":
    case "function":
    case "symbol":
    case "undefined":
      return undefined;
  }
}

function checkResultLiteral(value: unknown, path: Path, scope: CompileScope): void {
  const variants = scope.variants;
  if (variants === undefined || value === null) return;
  const name = variantName(value);
  const at = scope.refSite ?? path;
  const known = [...variants].join(", ");
  if (name === undefined) scope.issues.push({ path: at, message: `targeting can return ${describe(value)}, which names no variant (variants: ${known})` });
  else if (!variants.has(name)) scope.issues.push({ path: at, message: `targeting can return "${name}", which is not a variant (variants: ${known})` });
}

/**
 * Compiles a JsonLogic node. `tail` is true where the node's value becomes the targeting result,
 * so literals there must name a variant and a `fractional` there marks its result as a split.
 */
export function compileRule(node: unknown, path: Path, tail: boolean, scope: CompileScope): Rule {
  if (path.length > MAX_DEPTH) {
    issue(scope, path, `targeting is nested more than ${MAX_DEPTH} levels deep`);
    return NULL_RULE;
  }
  if (node === null) return NULL_RULE;
  switch (typeof node) {
    case "string":
    case "boolean":
      if (tail) checkResultLiteral(node, path, scope);
      return constant(node);
    case "number":
      if (!Number.isFinite(node)) {
        issue(scope, path, "numbers must be finite");
        return NULL_RULE;
      }
      if (tail) checkResultLiteral(node, path, scope);
      return constant(node);
    case "object":
      break;
    case "bigint":
    case "function":
    case "symbol":
    case "undefined":
      issue(scope, path, `${typeof node} is not a JSON value`);
      return NULL_RULE;
  }
  if (Array.isArray(node)) {
    if (tail) checkResultLiteral(node, path, scope);
    const items = node.map((item, i) => compileRule(item, [...path, i], false, scope));
    if (items.every((r) => constantOf(r) !== undefined)) return constant(Object.freeze(items.map((r) => constantOf(r)?.value)));
    const n = items.length;
    return (d, s) => {
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = (items[i] as Rule)(d, s);
      return out;
    };
  }
  const keys = Object.keys(node);
  if (keys.length === 0) {
    if (tail) checkResultLiteral(node, path, scope);
    return constant(Object.freeze({}));
  }
  if (keys.length > 1) {
    issue(scope, path, `an operation has exactly one operator, found ${keys.length}: ${keys.join(", ")}`);
    return NULL_RULE;
  }
  const op = keys[0] as string;
  const raw = (node as Record<string, unknown>)[op];
  if (op === "$ref") return compileRef(raw, [...path, op], tail, scope);
  const spec = OPERATORS.get(op);
  const opPath = [...path, op];
  if (spec === undefined) {
    issue(scope, opPath, `unknown operator "${op}"`);
    return NULL_RULE;
  }
  if (spec.arrayOnly && !Array.isArray(raw)) {
    issue(scope, opPath, `${op} takes an array of arguments`);
    return NULL_RULE;
  }
  const args: unknown[] = Array.isArray(raw) ? raw : [raw];
  if (args.length < spec.min || args.length > spec.max) {
    const want = spec.min === spec.max ? `${spec.min}` : spec.max === Infinity ? `at least ${spec.min}` : `${spec.min} to ${spec.max}`;
    issue(scope, opPath, `${op} takes ${want} argument${want === "1" ? "" : "s"}, got ${args.length}`);
    return NULL_RULE;
  }
  const at = (i: number): Path => (Array.isArray(raw) ? [...opPath, i] : opPath);
  return spec.compile({ args, at, opPath, tail, scope });
}

function compileRef(name: unknown, path: Path, tail: boolean, scope: CompileScope): Rule {
  if (typeof name !== "string") {
    issue(scope, path, "$ref names an entry of $evaluators (a string)");
    return NULL_RULE;
  }
  const evaluators = scope.evaluators;
  if (evaluators === undefined || !hasOwn(evaluators, name)) {
    issue(scope, path, `$ref "${name}" names no entry of $evaluators`);
    return NULL_RULE;
  }
  if (scope.refStack.includes(name)) return NULL_RULE; // a cycle, reported by checkEvaluatorCycles
  if (scope.refStack.length >= MAX_REF_CHAIN) {
    issue(scope, path, `$ref chains are limited to ${MAX_REF_CHAIN} levels`);
    return NULL_RULE;
  }
  const inner: CompileScope = { ...scope, report: false, refStack: [...scope.refStack, name], refSite: scope.refSite ?? path };
  return compileRule(evaluators[name], ["$evaluators", name], tail, inner);
}

interface OpInput {
  args: unknown[];
  /** Path of argument i. */
  at: (i: number) => Path;
  opPath: Path;
  tail: boolean;
  scope: CompileScope;
}

interface OpSpec {
  min: number;
  max: number;
  /** Rejects a single non-array argument (flagd's custom operators). */
  arrayOnly?: boolean;
  compile: (input: OpInput) => Rule;
}

function compileArgs({ args, at, scope }: OpInput, tailArgs = false, tail = false): Rule[] {
  return args.map((a, i) => compileRule(a, at(i), tailArgs && tail, scope));
}

// --- var, missing, missing_some ------------------------------------------------------------------

const FLAGD = "$flagd";

function timestampOf(s: EvalState): number {
  if (s.timestamp < 0) s.timestamp = Math.floor(s.now() / 1000);
  return s.timestamp;
}

/** Own-property walk: never reaches prototypes ("__proto__", "constructor" read as missing). */
function lookup(d: unknown, segs: readonly string[], s: EvalState): unknown {
  if (d === s.ctx && segs[0] === FLAGD) {
    if (segs.length === 1) return { flagKey: s.flagKey, timestamp: timestampOf(s) };
    if (segs.length === 2) return segs[1] === "flagKey" ? s.flagKey : segs[1] === "timestamp" ? timestampOf(s) : undefined;
    return undefined;
  }
  let cur = d;
  for (let i = 0; i < segs.length; i++) {
    if (typeof cur !== "object" || cur === null) return undefined;
    const seg = segs[i] as string;
    if (!hasOwn(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

function pathSegments(p: unknown): string[] | undefined {
  if (p === null || p === undefined || p === "") return [];
  if (typeof p === "string") return p.split(".");
  if (typeof p === "number") return [String(p)];
  return undefined;
}

function compileVar({ args, at, tail, scope }: OpInput): Rule {
  const pathArg = args[0];
  const fallback = args.length > 1 ? compileRule(args[1], at(1), tail, scope) : NULL_RULE;
  const withDefault = (v: unknown, d: unknown, s: EvalState): unknown => (v === undefined || v === null ? fallback(d, s) : v);
  if (pathArg !== null && typeof pathArg === "object" && !Array.isArray(pathArg)) {
    const dynamic = compileRule(pathArg, at(0), false, scope);
    return (d, s) => {
      const segs = pathSegments(dynamic(d, s));
      return withDefault(segs === undefined ? undefined : segs.length === 0 ? d : lookup(d, segs, s), d, s);
    };
  }
  const segs = pathSegments(pathArg);
  if (segs === undefined) {
    issue(scope, at(0), "var takes a path: a string, a number or an operation");
    return NULL_RULE;
  }
  if (segs.length === 0) return (d) => d;
  if (segs[0] === FLAGD) {
    if (segs.length > 2 || (segs.length === 2 && segs[1] !== "flagKey" && segs[1] !== "timestamp")) {
      issue(scope, at(0), `"${segs.join(".")}" is not provided; $flagd offers $flagd.flagKey and $flagd.timestamp`);
      return NULL_RULE;
    }
    return (d, s) => withDefault(lookup(d, segs, s), d, s);
  }
  if (segs.length === 1) {
    const key = segs[0] as string;
    return (d, s) => {
      if (typeof d === "object" && d !== null && hasOwn(d, key)) {
        const v = (d as Record<string, unknown>)[key];
        if (v !== undefined && v !== null) return v;
      }
      return fallback(d, s);
    };
  }
  return (d, s) => withDefault(lookup(d, segs, s), d, s);
}

function missingKeys(d: unknown, keys: readonly unknown[], s: EvalState): unknown[] {
  spend(s, keys.length);
  const out: unknown[] = [];
  for (const key of keys) {
    const segs = pathSegments(key);
    const v = segs === undefined ? undefined : segs.length === 0 ? d : lookup(d, segs, s);
    if (v === undefined || v === null || v === "") out.push(key);
  }
  return out;
}

function compileMissing(input: OpInput): Rule {
  const rules = compileArgs(input);
  return (d, s) => {
    if (rules.length === 0) return [];
    const first = (rules[0] as Rule)(d, s);
    if (Array.isArray(first)) return missingKeys(d, first, s);
    const keys = [first];
    for (let i = 1; i < rules.length; i++) keys.push((rules[i] as Rule)(d, s));
    return missingKeys(d, keys, s);
  };
}

function compileMissingSome(input: OpInput): Rule {
  const { args, at, scope } = input;
  if (typeof args[0] !== "number" && !isOperation(args[0])) issue(scope, at(0), "missing_some takes the number of keys needed first");
  if (!Array.isArray(args[1]) && !isOperation(args[1])) issue(scope, at(1), "missing_some takes an array of keys second");
  const [need, keys] = compileArgs(input) as [Rule, Rule];
  return (d, s) => {
    const list = keys(d, s);
    if (!Array.isArray(list)) return [];
    const missing = missingKeys(d, list, s);
    return list.length - missing.length >= Number(need(d, s)) ? [] : missing;
  };
}

function isOperation(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// --- logic ---------------------------------------------------------------------------------------

function compileIf({ args, at, tail, scope }: OpInput): Rule {
  const n = args.length;
  // Conditions sit at even indexes before the last; values (and the final else) may be results.
  const rules = args.map((a, i) => compileRule(a, at(i), tail && (i % 2 === 1 || i === n - 1), scope));
  if (n === 1) return rules[0] as Rule;
  if (n === 2) {
    const [c, t] = rules as [Rule, Rule];
    return (d, s) => (truthy(c(d, s)) ? t(d, s) : null);
  }
  if (n === 3) {
    const [c, t, e] = rules as [Rule, Rule, Rule];
    return (d, s) => (truthy(c(d, s)) ? t(d, s) : e(d, s));
  }
  return (d, s) => {
    let i = 0;
    for (; i < n - 1; i += 2) if (truthy((rules[i] as Rule)(d, s))) return (rules[i + 1] as Rule)(d, s);
    return i === n - 1 ? (rules[i] as Rule)(d, s) : null;
  };
}

function compileOr(input: OpInput): Rule {
  const rules = compileArgs(input, true, input.tail);
  return (d, s) => {
    let v: unknown = null;
    for (let i = 0; i < rules.length; i++) {
      v = (rules[i] as Rule)(d, s);
      if (truthy(v)) return v;
    }
    return v;
  };
}

function compileAnd(input: OpInput): Rule {
  const rules = compileArgs(input, true, input.tail);
  return (d, s) => {
    let v: unknown = null;
    for (let i = 0; i < rules.length; i++) {
      v = (rules[i] as Rule)(d, s);
      if (!truthy(v)) return v;
    }
    return v;
  };
}

type Binary = (a: unknown, b: unknown) => unknown;

/** A two-argument operator; a constant right-hand side is captured instead of called. */
function binary(fn: Binary): (input: OpInput) => Rule {
  return (input) => {
    const [a, b] = compileArgs(input) as [Rule, Rule];
    const kb = constantOf(b);
    if (kb !== undefined) {
      const k = kb.value;
      return (d, s) => fn(a(d, s), k);
    }
    return (d, s) => fn(a(d, s), b(d, s));
  };
}

// JsonLogic's == and != are JavaScript's loose equality, on purpose.
const looseEq: Binary = (a, b) => a == b;
const looseNe: Binary = (a, b) => a != b;
const strictEq: Binary = (a, b) => a === b;
const strictNe: Binary = (a, b) => a !== b;
// JsonLogic compares with JavaScript's coercions; the casts only silence the type checker.
const gt: Binary = (a, b) => (a as number) > (b as number);
const ge: Binary = (a, b) => (a as number) >= (b as number);
const lt = (a: unknown, b: unknown): boolean => (a as number) < (b as number);
const le = (a: unknown, b: unknown): boolean => (a as number) <= (b as number);

function compileBetween(cmp: (a: unknown, b: unknown) => boolean): (input: OpInput) => Rule {
  return (input) => {
    const rules = compileArgs(input);
    if (rules.length === 2) return binary(cmp)(input);
    const [a, b, c] = rules as [Rule, Rule, Rule];
    return (d, s) => {
      const vb = b(d, s);
      return cmp(a(d, s), vb) && cmp(vb, c(d, s));
    };
  };
}

function compileNot(input: OpInput): Rule {
  const [a] = compileArgs(input) as [Rule];
  return (d, s) => !truthy(a(d, s));
}

function compileNotNot(input: OpInput): Rule {
  const [a] = compileArgs(input) as [Rule];
  return (d, s) => truthy(a(d, s));
}

// --- numbers and strings -------------------------------------------------------------------------

function compileFold(start: number, step: (acc: number, x: number) => number): (input: OpInput) => Rule {
  return (input) => {
    const rules = compileArgs(input);
    return (d, s) => {
      let acc = start;
      for (let i = 0; i < rules.length; i++) acc = step(acc, Number((rules[i] as Rule)(d, s)));
      return acc;
    };
  };
}

function compileMinus(input: OpInput): Rule {
  const rules = compileArgs(input);
  const [a, b] = rules as [Rule, Rule | undefined];
  if (b === undefined) return (d, s) => -Number(a(d, s));
  return (d, s) => Number(a(d, s)) - Number(b(d, s));
}

function compileExtreme(pick: (a: number, b: number) => number): (input: OpInput) => Rule {
  return (input) => {
    const rules = compileArgs(input);
    return (d, s) => {
      let acc = Number((rules[0] as Rule)(d, s));
      for (let i = 1; i < rules.length; i++) acc = pick(acc, Number((rules[i] as Rule)(d, s)));
      return acc;
    };
  };
}

function compileIn(input: OpInput): Rule {
  const { args, at, scope } = input;
  const haystack = args[1];
  if (haystack !== null && typeof haystack !== "string" && !Array.isArray(haystack) && !isOperation(haystack)) {
    issue(scope, at(1), "in looks in a string or an array");
  }
  const [a, b] = compileArgs(input) as [Rule, Rule];
  const kb = constantOf(b)?.value;
  if (Array.isArray(kb) && kb.length >= 8 && kb.every((x) => x === null || typeof x !== "object")) {
    const set = new Set<unknown>(kb);
    return (d, s) => set.has(a(d, s));
  }
  return (d, s) => {
    const hay = b(d, s);
    if (typeof hay === "string") return hay.includes(String(a(d, s)));
    if (Array.isArray(hay)) return hay.includes(a(d, s));
    return false;
  };
}

function toText(v: unknown): string {
  return v === null || v === undefined ? "" : typeof v === "string" ? v : String(v);
}

function compileCat(input: OpInput): Rule {
  const rules = compileArgs(input);
  if (rules.length === 2) {
    const [a, b] = rules as [Rule, Rule];
    return (d, s) => toText(a(d, s)) + toText(b(d, s));
  }
  return (d, s) => {
    let out = "";
    for (let i = 0; i < rules.length; i++) out += toText((rules[i] as Rule)(d, s));
    return out;
  };
}

function compileSubstr(input: OpInput): Rule {
  const [src, start, len] = compileArgs(input) as [Rule, Rule, Rule | undefined];
  return (d, s) => {
    const text = toText(src(d, s));
    const n = text.length;
    let from = Math.trunc(Number(start(d, s))) || 0;
    if (from < 0) from = Math.max(0, n + from);
    if (len === undefined) return text.slice(from);
    const count = Math.trunc(Number(len(d, s))) || 0;
    return count < 0 ? text.slice(from, Math.max(from, n + count)) : text.slice(from, from + count);
  };
}

function compileMerge(input: OpInput): Rule {
  const rules = compileArgs(input);
  return (d, s) => {
    const out: unknown[] = [];
    for (let i = 0; i < rules.length; i++) {
      const v = (rules[i] as Rule)(d, s);
      if (Array.isArray(v)) {
        spend(s, v.length);
        for (const x of v) out.push(x);
      } else out.push(v);
    }
    return out;
  };
}

function compileStringCompare(name: string, test: (a: string, b: string) => boolean): (input: OpInput) => Rule {
  return (input) => {
    const { args, at, scope } = input;
    args.forEach((a, i) => {
      if (typeof a !== "string" && !isOperation(a)) issue(scope, at(i), `${name} compares strings: give a string or an operation, got ${describe(a)}`);
    });
    const [a, b] = compileArgs(input) as [Rule, Rule];
    // flagd answers null (not false) for non-strings, so the default variant is served.
    return (d, s) => {
      const x = a(d, s);
      const y = b(d, s);
      return typeof x === "string" && typeof y === "string" ? test(x, y) : null;
    };
  };
}

// --- arrays --------------------------------------------------------------------------------------

function arrayOf(v: unknown, s: EvalState): readonly unknown[] | undefined {
  if (!Array.isArray(v)) return undefined;
  spend(s, v.length);
  return v;
}

function compileMap(input: OpInput): Rule {
  const [list, fn] = compileArgs(input) as [Rule, Rule];
  return (d, s) => {
    const items = arrayOf(list(d, s), s);
    if (items === undefined) return [];
    const out = new Array<unknown>(items.length);
    for (let i = 0; i < items.length; i++) out[i] = fn(items[i], s);
    return out;
  };
}

function compileFilter(input: OpInput): Rule {
  const [list, fn] = compileArgs(input) as [Rule, Rule];
  return (d, s) => {
    const items = arrayOf(list(d, s), s);
    if (items === undefined) return [];
    const out: unknown[] = [];
    for (const item of items) if (truthy(fn(item, s))) out.push(item);
    return out;
  };
}

function compileReduce(input: OpInput): Rule {
  const [list, fn, initial] = compileArgs(input) as [Rule, Rule, Rule];
  return (d, s) => {
    let acc = initial(d, s);
    const items = arrayOf(list(d, s), s);
    if (items === undefined) return acc;
    for (const current of items) acc = fn({ current, accumulator: acc }, s);
    return acc;
  };
}

function compileQuantifier(kind: "all" | "some" | "none"): (input: OpInput) => Rule {
  return (input) => {
    const [list, fn] = compileArgs(input) as [Rule, Rule];
    return (d, s) => {
      const items = arrayOf(list(d, s), s);
      if (items === undefined || items.length === 0) return kind === "none";
      for (const item of items) {
        const hit = truthy(fn(item, s));
        if (kind === "all" && !hit) return false;
        if (kind !== "all" && hit) return kind === "some";
      }
      return kind !== "some";
    };
  };
}

// --- flagd: sem_ver, fractional ------------------------------------------------------------------

/** A literal version operand, parsed at compile time (undefined when the operand is not literal). */
function literalVersion(rule: Rule, path: Path, scope: CompileScope): { version: SemVer | undefined } | undefined {
  const k = constantOf(rule);
  if (k === undefined) return undefined;
  const version = parseSemVer(k.value);
  if (version === undefined) issue(scope, path, `${describe(k.value)} is not a semantic version`);
  return { version };
}

/** A version operand: parsed at compile time when literal, else through a one-entry cache. */
function versionOperand(rule: Rule, literal: { version: SemVer | undefined } | undefined): (d: unknown, s: EvalState) => SemVer | undefined {
  if (literal !== undefined) {
    const parsed = literal.version;
    return () => parsed;
  }
  let lastRaw: unknown = NO_SPLIT;
  let lastParsed: SemVer | undefined;
  return (d, s) => {
    const raw = rule(d, s);
    if (raw !== lastRaw) {
      lastParsed = parseSemVer(raw);
      lastRaw = raw;
    }
    return lastParsed;
  };
}

function compileSemVer(input: OpInput): Rule {
  const { at, scope } = input;
  const [a, op, b] = compileArgs(input) as [Rule, Rule, Rule];
  const leftLiteral = literalVersion(a, at(0), scope);
  const rightLiteral = literalVersion(b, at(2), scope);
  const left = versionOperand(a, leftLiteral);
  const right = versionOperand(b, rightLiteral);
  const kop = constantOf(op);
  if (kop !== undefined && !isSemVerOperator(kop.value)) {
    issue(scope, at(1), `${describe(kop.value)} is not a sem_ver operator (=, !=, <, <=, >, >=, ^, ~)`);
  }
  // flagd answers null (not false) for invalid versions or operators: the default variant is served.
  const target = rightLiteral?.version;
  if (kop !== undefined && isSemVerOperator(kop.value) && target !== undefined) {
    const test = SEM_VER_TESTS[kop.value]; // the usual shape: [{"var": ...}, ">=", "2.1.0"]
    return (d, s) => {
      const x = left(d, s);
      return x === undefined ? null : test(x, target);
    };
  }
  return (d, s) => {
    const x = left(d, s);
    const o = op(d, s);
    const y = right(d, s);
    return x === undefined || y === undefined || !isSemVerOperator(o) ? null : testSemVer(x, o, y);
  };
}

/** flagKey + targetingKey, flagd's bucketing value when no expression gives one. */
function targetingKeyValue(s: EvalState): string | undefined {
  const ctx = s.ctx as Record<string, unknown>;
  const tk = hasOwn(ctx, "targetingKey") ? ctx.targetingKey : undefined;
  return typeof tk === "string" && tk !== "" ? s.flagKey + tk : undefined;
}

function compileFractional({ args, at, opPath, tail, scope }: OpInput): Rule {
  let first = 0;
  let bucketBy: Rule | undefined;
  if (!Array.isArray(args[0])) {
    first = 1;
    if (isOperation(args[0])) bucketBy = compileRule(args[0], at(0), false, scope);
    else if (args[0] !== null) issue(scope, at(0), 'fractional starts with an expression giving the bucketing value (e.g. {"var": "email"}) or with a bucket [variant, weight]');
  }
  if (args.length - first < 1) issue(scope, opPath, "fractional needs at least one bucket [variant, weight]");

  const variants: Rule[] = [];
  const weights: Rule[] = [];
  let literalTotal = 0;
  for (let i = first; i < args.length; i++) {
    const bucket = args[i];
    if (!Array.isArray(bucket) || bucket.length < 1 || bucket.length > 2) {
      issue(scope, at(i), "a bucket is [variant] or [variant, weight]");
      continue;
    }
    const v = bucket[0];
    if (Array.isArray(v) || (isOperation(v) && Object.keys(v as object).length === 0)) {
      issue(scope, [...at(i), 0], "a bucket's variant is a string, boolean, number, null or an operation");
      variants.push(NULL_RULE);
    } else variants.push(compileRule(v, [...at(i), 0], tail, scope));
    const w = bucket.length === 2 ? bucket[1] : 1;
    if (typeof w === "number") {
      if (!Number.isInteger(w) || w < 0 || w > MAX_TOTAL_WEIGHT) issue(scope, [...at(i), 1], `a weight is an integer from 0 to ${MAX_TOTAL_WEIGHT}, got ${w}`);
      else literalTotal += w;
      weights.push(constant(w));
    } else if (isOperation(w)) {
      weights.push(compileRule(w, [...at(i), 1], false, scope));
    } else {
      issue(scope, [...at(i), 1], `a weight is a non-negative integer or an operation, got ${describe(w)}`);
      weights.push(NULL_RULE);
    }
  }
  if (literalTotal > MAX_TOTAL_WEIGHT) issue(scope, opPath, `the weights add up to ${literalTotal}, more than ${MAX_TOTAL_WEIGHT}`);

  const n = variants.length;
  const staticWeights = weights.every((w) => constantOf(w) !== undefined);
  const cumulative = new Float64Array(n);
  let total = 0;
  if (staticWeights) {
    for (let i = 0; i < n; i++) cumulative[i] = total += Number(constantOf(weights[i] as Rule)?.value);
  }

  const pick = (d: unknown, s: EvalState, index: number): unknown => {
    const v = (variants[index] as Rule)(d, s);
    if (v === null || v === undefined) return null;
    if (typeof v !== "string" && typeof v !== "boolean" && typeof v !== "number") return null;
    if (tail) s.split = v;
    return v;
  };

  return (d, s) => {
    let key: string | undefined;
    if (bucketBy !== undefined) {
      const v = bucketBy(d, s);
      if (typeof v === "string") key = v;
      else if (v === null || v === undefined) key = targetingKeyValue(s);
      else return null; // flagd: the bucketing value must be a string (cast with "cat")
    } else key = targetingKeyValue(s);
    if (key === undefined) return null; // flagd: no bucketing value → null → default variant
    const hash = murmur3_32(key);
    if (staticWeights) return total === 0 ? null : pick(d, s, pickBucket(hash, cumulative, total));
    const dynamic = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const w = (weights[i] as Rule)(d, s);
      let weight: number;
      if (w === null || w === undefined) weight = 1; // flagd (Go) keeps the default weight
      else if (typeof w === "number" && Number.isInteger(w)) weight = w < 0 ? 0 : w; // rollouts may go negative: clamp
      else return null;
      if (weight > MAX_TOTAL_WEIGHT) return null;
      dynamic[i] = sum += weight;
    }
    if (sum === 0 || sum > MAX_TOTAL_WEIGHT) return null;
    return pick(d, s, pickBucket(hash, dynamic, sum));
  };
}

// --- the operator table --------------------------------------------------------------------------

const ANY = Infinity;

const OPERATORS = new Map<string, OpSpec>([
  ["var", { min: 0, max: 2, compile: compileVar }],
  ["missing", { min: 0, max: ANY, compile: compileMissing }],
  ["missing_some", { min: 2, max: 2, arrayOnly: true, compile: compileMissingSome }],
  ["if", { min: 1, max: ANY, compile: compileIf }],
  ["?:", { min: 1, max: ANY, compile: compileIf }],
  ["==", { min: 2, max: 2, compile: binary(looseEq) }],
  ["===", { min: 2, max: 2, compile: binary(strictEq) }],
  ["!=", { min: 2, max: 2, compile: binary(looseNe) }],
  ["!==", { min: 2, max: 2, compile: binary(strictNe) }],
  ["!", { min: 1, max: 1, compile: compileNot }],
  ["!!", { min: 1, max: 1, compile: compileNotNot }],
  ["or", { min: 1, max: ANY, compile: compileOr }],
  ["and", { min: 1, max: ANY, compile: compileAnd }],
  [">", { min: 2, max: 2, compile: binary(gt) }],
  [">=", { min: 2, max: 2, compile: binary(ge) }],
  ["<", { min: 2, max: 3, compile: compileBetween(lt) }],
  ["<=", { min: 2, max: 3, compile: compileBetween(le) }],
  ["max", { min: 1, max: ANY, compile: compileExtreme(Math.max) }],
  ["min", { min: 1, max: ANY, compile: compileExtreme(Math.min) }],
  ["+", { min: 1, max: ANY, compile: compileFold(0, (a, x) => a + x) }],
  ["-", { min: 1, max: 2, compile: compileMinus }],
  ["*", { min: 2, max: ANY, compile: compileFold(1, (a, x) => a * x) }],
  ["/", { min: 2, max: 2, compile: binary((a, b) => Number(a) / Number(b)) }],
  ["%", { min: 2, max: 2, compile: binary((a, b) => Number(a) % Number(b)) }],
  ["in", { min: 2, max: 2, compile: compileIn }],
  ["cat", { min: 1, max: ANY, compile: compileCat }],
  ["substr", { min: 2, max: 3, compile: compileSubstr }],
  ["merge", { min: 1, max: ANY, compile: compileMerge }],
  ["map", { min: 2, max: 2, compile: compileMap }],
  ["filter", { min: 2, max: 2, compile: compileFilter }],
  ["reduce", { min: 3, max: 3, compile: compileReduce }],
  ["all", { min: 2, max: 2, compile: compileQuantifier("all") }],
  ["some", { min: 2, max: 2, compile: compileQuantifier("some") }],
  ["none", { min: 2, max: 2, compile: compileQuantifier("none") }],
  ["starts_with", { min: 2, max: 2, arrayOnly: true, compile: compileStringCompare("starts_with", (a, b) => a.startsWith(b)) }],
  ["ends_with", { min: 2, max: 2, arrayOnly: true, compile: compileStringCompare("ends_with", (a, b) => a.endsWith(b)) }],
  ["sem_ver", { min: 3, max: 3, arrayOnly: true, compile: compileSemVer }],
  ["fractional", { min: 1, max: ANY, arrayOnly: true, compile: compileFractional }],
]);

/** Operator names targeting may use (JsonLogic's and flagd's). */
export const TARGETING_OPERATORS: readonly string[] = Object.freeze([...OPERATORS.keys()]);

/** Names of the $evaluators a rule refers to, in order of appearance. */
export function refsOf(node: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > MAX_DEPTH || typeof node !== "object" || node === null) return out;
  if (Array.isArray(node)) {
    for (const item of node) refsOf(item, out, depth + 1);
    return out;
  }
  for (const [k, v] of Object.entries(node)) {
    if (k === "$ref" && typeof v === "string") out.push(v);
    else refsOf(v, out, depth + 1);
  }
  return out;
}
