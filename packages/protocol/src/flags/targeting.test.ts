// The JsonLogic compiler on its own: each operator's result (JsonLogic's semantics), the iteration
// budget, and what the compile-time checks report and where.
import { describe, expect, it } from "vitest";
import type { FlagIssue } from "./flag-set.js";
import { BudgetExceededError, compileRule, NO_SPLIT, type CompileScope, type EvalState } from "./targeting.js";

function scopeFor(variants?: string[], evaluators?: Record<string, unknown>): CompileScope {
  return { issues: [], evaluators, variants: variants === undefined ? undefined : new Set(variants), report: true, refStack: [], refSite: undefined };
}

function state(ctx: object, budget = 10_000): EvalState {
  return { ctx, flagKey: "my-flag", timestamp: -1, now: () => 1_700_000_000_999, budget, split: NO_SPLIT };
}

/** Compiles `rule` (which must be valid) and applies it to `data`. */
function run(rule: unknown, data: object = {}, budget?: number): unknown {
  const scope = scopeFor();
  const compiled = compileRule(rule, [], false, scope);
  if (scope.issues.length > 0) throw new Error(`unexpected issues: ${JSON.stringify(scope.issues)}`);
  return compiled(data, state(data, budget));
}

/** The issues compiling `rule` reports, as "path: message". */
function problems(rule: unknown, variants?: string[], evaluators?: Record<string, unknown>): string[] {
  const scope = scopeFor(variants, evaluators);
  compileRule(rule, ["t"], true, scope);
  return scope.issues.map((i: FlagIssue) => `${i.path.join(".")}: ${i.message}`);
}

describe("JsonLogic operators", () => {
  const data = { a: 1, b: "two", user: { name: "ann", tags: ["x", "y"], age: 30, nothing: null }, list: [1, 2, 3, 4], empty: "", pies: [{ filling: "apple" }, { filling: "cherry" }] };

  it.each<[string, unknown, unknown]>([
    ["var", { var: "a" }, 1],
    ["var dot path", { var: "user.name" }, "ann"],
    ["var array index", { var: "user.tags.1" }, "y"],
    ["var numeric path", { var: 1 }, undefined],
    ["var default", { var: ["user.missing", "dflt"] }, "dflt"],
    ["var null leaf → default", { var: ["user.nothing", "dflt"] }, "dflt"],
    ["var missing → null", { var: "nope.deeper" }, null],
    ["var dynamic path", { var: { cat: ["user", ".", "name"] } }, "ann"],
    ["var $flagd.flagKey", { var: "$flagd.flagKey" }, "my-flag"],
    ["var $flagd.timestamp (seconds, floored)", { var: "$flagd.timestamp" }, 1_700_000_000],
    ["missing", { missing: ["a", "nope", "empty", "user.name"] }, ["nope", "empty"]],
    ["missing from merge", { missing: { merge: [["a"], ["zzz"]] } }, ["zzz"]],
    ["missing_some met", { missing_some: [1, ["a", "nope"]] }, []],
    ["missing_some unmet", { missing_some: [2, ["a", "nope"]] }, ["nope"]],
    ["if then", { if: [true, "yes", "no"] }, "yes"],
    ["if else", { if: [false, "yes", "no"] }, "no"],
    ["if chain", { if: [false, 1, { "==": [{ var: "a" }, 1] }, 2, 3] }, 2],
    ["if chain, no else", { if: [false, 1, false, 2] }, null],
    ["if one arg", { if: ["only"] }, "only"],
    ["?: ternary", { "?:": [[], "a", "b"] }, "b"],
    ["== loose", { "==": [1, "1"] }, true],
    ["=== strict", { "===": [1, "1"] }, false],
    ["!= loose", { "!=": [0, false] }, false],
    ["!== strict", { "!==": [0, false] }, true],
    ["! (empty array is falsy)", { "!": [[]] }, true],
    ["! non-array argument", { "!": true }, false],
    ["!! \"0\" is truthy", { "!!": ["0"] }, true],
    ["or returns the first truthy", { or: [false, 0, "a", "b"] }, "a"],
    ["or returns the last when none", { or: [false, 0] }, 0],
    ["and returns the first falsy", { and: [true, "", 3] }, ""],
    ["and returns the last when all truthy", { and: [true, "a", 3] }, 3],
    [">", { ">": [2, 1] }, true],
    [">=", { ">=": [1, 1] }, true],
    ["<", { "<": [1, 2] }, true],
    ["<= ", { "<=": [2, 1] }, false],
    ["< between (exclusive)", { "<": [1, 1, 3] }, false],
    ["<= between (inclusive)", { "<=": [1, 1, 3] }, true],
    ["max", { max: [1, 3, 2] }, 3],
    ["min", { min: [1, 3, 2] }, 1],
    ["+", { "+": [1, 2, 3, "4"] }, 10],
    ["+ casts", { "+": ["3.14"] }, 3.14],
    ["- binary", { "-": [4, 2] }, 2],
    ["- unary", { "-": [2] }, -2],
    ["*", { "*": [2, 3, 4] }, 24],
    ["/", { "/": [4, 2] }, 2],
    ["%", { "%": [101, 2] }, 1],
    ["in array", { in: ["Ringo", ["John", "Paul", "George", "Ringo"]] }, true],
    ["in array (strict)", { in: ["1", [1, 2]] }, false],
    ["in string", { in: ["Spring", "Springfield"] }, true],
    ["in large literal array (set)", { in: [{ var: "b" }, ["a", "b", "c", "d", "e", "f", "g", "two", "h"]] }, true],
    ["in large literal array miss", { in: [{ var: "a" }, ["1", "b", "c", "d", "e", "f", "g", "two", "h"]] }, false],
    ["in non-container", { in: ["a", { var: "a" }] }, false],
    ["cat", { cat: ["I love", " pie", 2, null] }, "I love pie2"],
    ["substr from", { substr: ["jsonlogic", 4] }, "logic"],
    ["substr from end", { substr: ["jsonlogic", -5] }, "logic"],
    ["substr length", { substr: ["jsonlogic", 1, 3] }, "son"],
    ["substr negative length", { substr: ["jsonlogic", 4, -2] }, "log"],
    ["merge", { merge: [[1, 2], 3, [4, [5]]] }, [1, 2, 3, 4, [5]]],
    ["map", { map: [{ var: "list" }, { "*": [{ var: "" }, 2] }] }, [2, 4, 6, 8]],
    ["filter", { filter: [{ var: "list" }, { "%": [{ var: "" }, 2] }] }, [1, 3]],
    ["reduce", { reduce: [{ var: "list" }, { "+": [{ var: "current" }, { var: "accumulator" }] }, 0] }, 10],
    ["reduce over a non-array gives the initial value", { reduce: [{ var: "a" }, { var: "current" }, 7] }, 7],
    ["map over a non-array", { map: [{ var: "a" }, { var: "" }] }, []],
    ["all", { all: [[1, 2, 3], { ">": [{ var: "" }, 0] }] }, true],
    ["all on empty is false", { all: [[], { ">": [{ var: "" }, 0] }] }, false],
    ["some", { some: [[-1, 0, 1], { ">": [{ var: "" }, 0] }] }, true],
    ["some over objects", { some: [{ var: "pies" }, { "==": [{ var: "filling" }, "apple"] }] }, true],
    ["none", { none: [[-3, -2, -1], { ">": [{ var: "" }, 0] }] }, true],
    ["starts_with", { starts_with: [{ var: "b" }, "tw"] }, true],
    ["ends_with", { ends_with: [{ var: "b" }, "x"] }, false],
    ["starts_with non-string → null", { starts_with: [{ var: "a" }, "1"] }, null],
    ["sem_ver", { sem_ver: ["1.2.3", "<", "1.10.0"] }, true],
    ["sem_ver dynamic invalid operator → null", { sem_ver: ["1.0.0", { var: "b" }, "1.0.0"] }, null],
    ["literal array", [1, { var: "a" }], [1, 1]],
    ["literal {}", {}, {}],
  ])("%s", (_name, rule, expected) => {
    const out = run(rule, data);
    if (expected === undefined) expect(out).toBeNull();
    else expect(out).toEqual(expected);
  });

  it("var never reads prototypes: __proto__, constructor, toString are missing", () => {
    expect(run({ var: "__proto__" }, {})).toBeNull();
    expect(run({ var: "constructor" }, {})).toBeNull();
    expect(run({ var: "user.toString" }, { user: {} })).toBeNull();
    expect(run({ var: "__proto__.x" }, JSON.parse('{"__proto__": {"x": 1}}') as object)).toBe(1); // an own key is data
    expect(run({ var: "x" }, Object.create({ x: "inherited" }) as object)).toBeNull();
  });

  it("$flagd is the evaluation's, not the context's; inside map `var` reads the element", () => {
    expect(run({ var: "$flagd.flagKey" }, { $flagd: { flagKey: "spoofed" } })).toBe("my-flag");
    expect(run({ map: [{ var: "items" }, { var: "$flagd.flagKey" }] }, { items: [{ $flagd: { flagKey: "element" } }] })).toEqual(["element"]);
  });

  it("stops a rule that visits more array elements than the budget with BudgetExceededError", () => {
    const big = { list: Array.from({ length: 50 }, (_, i) => i) };
    expect(run({ map: [{ var: "list" }, { var: "" }] }, big, 50)).toHaveLength(50);
    expect(() => run({ map: [{ var: "list" }, { var: "" }] }, big, 49)).toThrow(BudgetExceededError);
    // Nested iteration counts every element visited: 200 outer + 200 × 3 inner.
    const nested = { all: [{ var: "list" }, { map: [{ var: "" }, 1] }] };
    const lists = { list: Array.from({ length: 200 }, () => [1, 2, 3]) };
    expect(run(nested, lists, 800)).toBe(true);
    expect(() => run(nested, lists, 799)).toThrow(BudgetExceededError);
  });

  it("fractional at run time: a non-string bucketing value or a bad computed weight answers null", () => {
    const split = (weight: unknown, data: object): unknown => run({ fractional: [{ var: "id" }, ["a", { var: "w" }], ["b", 1]] }, { ...data, w: weight });
    expect(split(1, { id: "x" })).toMatch(/^[ab]$/);
    expect(split(1, { id: 42 })).toBeNull(); // flagd: cast with "cat" to bucket by a number
    expect(split(1.5, { id: "x" })).toBeNull();
    expect(split("1", { id: "x" })).toBeNull();
    expect(split(2147483647, { id: "x" })).toBeNull(); // total 2^31 exceeds the limit
    expect(split(null, { id: "x", targetingKey: "t" })).toMatch(/^[ab]$/); // flagd (Go) keeps weight 1
    expect(run({ fractional: [["a", 1]] }, { targetingKey: 7 })).toBeNull();
    expect(run({ fractional: [["a", 1]] }, { targetingKey: "u" })).toBe("a");
  });

  it("sem_ver parses a repeated context version once (one-entry cache) and still sees a changed one", () => {
    const scope = scopeFor();
    const rule = compileRule({ sem_ver: [{ var: "v" }, ">=", "2.0.0"] }, [], false, scope);
    expect(rule({ v: "2.1.0" }, state({}))).toBe(true);
    expect(rule({ v: "2.1.0" }, state({}))).toBe(true);
    expect(rule({ v: "1.9.9" }, state({}))).toBe(false);
  });
});

describe("compile-time checks", () => {
  it("names unknown operators and wrong arities at the operator's path", () => {
    expect(problems({ if: [{ nope: [1] }, "a", "b"] })).toEqual(['t.if.0.nope: unknown operator "nope"']);
    expect(problems({ "==": [1] })).toEqual(["t.==: == takes 2 arguments, got 1"]);
    expect(problems({ "!": [1, 2] })).toEqual(["t.!: ! takes 1 argument, got 2"]);
    expect(problems({ substr: ["a"] })).toEqual(["t.substr: substr takes 2 to 3 arguments, got 1"]);
    expect(problems({ "*": [2] })).toEqual(["t.*: * takes at least 2 arguments, got 1"]);
    expect(problems({ reduce: [[1], { var: "" }] })).toEqual(["t.reduce: reduce takes 3 arguments, got 2"]);
    expect(problems({ sem_ver: [{ var: "v" }, "="] })).toEqual(["t.sem_ver: sem_ver takes 3 arguments, got 2"]);
    expect(problems({ starts_with: ["abc"] })).toEqual(["t.starts_with: starts_with takes 2 arguments, got 1"]);
    expect(problems({ starts_with: "abc" })).toEqual(["t.starts_with: starts_with takes an array of arguments"]);
  });

  it("rejects an object with several operators, and non-JSON values", () => {
    expect(problems({ and: [{ "==": [1, 1], "!=": [1, 2] }] })).toEqual(["t.and.0: an operation has exactly one operator, found 2: ==, !="]);
    expect(problems({ "==": [Number.POSITIVE_INFINITY, 1] })).toEqual(["t.==.0: numbers must be finite"]);
    expect(problems({ "==": [() => 1, 1] })).toEqual(["t.==.0: function is not a JSON value"]);
  });

  it("checks flagd operators' literal arguments as flagd's schema does", () => {
    expect(problems({ sem_ver: [{ var: "version" }, "*", "2.0.0"] })).toEqual(['t.sem_ver.1: "*" is not a sem_ver operator (=, !=, <, <=, >, >=, ^, ~)']);
    expect(problems({ sem_ver: [{ var: "version" }, "=", "2.0.0.0"] })).toEqual(['t.sem_ver.2: "2.0.0.0" is not a semantic version']);
    expect(problems({ ends_with: [{ var: "id" }, 0] })).toEqual(["t.ends_with.1: ends_with compares strings: give a string or an operation, got 0"]);
    expect(problems({ var: "$flagd.invalidProp" })).toEqual(['t.var: "$flagd.invalidProp" is not provided; $flagd offers $flagd.flagKey and $flagd.timestamp']);
    expect(problems({ in: ["a", 5] })).toEqual(["t.in.1: in looks in a string or an array"]);
    expect(problems({ var: [true] })).toEqual(["t.var.0: var takes a path: a string, a number or an operation"]);
  });

  it("checks fractional: bucketing value, bucket shapes, literal weights (integer, ≥ 0, total ≤ 2^31-1)", () => {
    expect(problems({ fractional: ["invalid", ["a", 25], ["b", 25]] }, ["a", "b"])).toEqual([
      't.fractional.0: fractional starts with an expression giving the bucketing value (e.g. {"var": "email"}) or with a bucket [variant, weight]',
    ]);
    expect(problems({ fractional: [["a", 25], ["b", 25.5]] }, ["a", "b"])).toEqual(["t.fractional.1.1: a weight is an integer from 0 to 2147483647, got 25.5"]);
    expect(problems({ fractional: [["a", 25], ["b", -25]] }, ["a", "b"])).toEqual(["t.fractional.1.1: a weight is an integer from 0 to 2147483647, got -25"]);
    expect(problems({ fractional: [["a", 25], ["b", "25"]] }, ["a", "b"])).toEqual(['t.fractional.1.1: a weight is a non-negative integer or an operation, got "25"']);
    expect(problems({ fractional: [["a", 2147483647], ["b", 1]] }, ["a", "b"])).toEqual(["t.fractional: the weights add up to 2147483648, more than 2147483647"]);
    expect(problems({ fractional: [["a", 1, 2], "b"] }, ["a", "b"])).toEqual(["t.fractional.0: a bucket is [variant] or [variant, weight]", "t.fractional.1: a bucket is [variant] or [variant, weight]"]);
    expect(problems({ fractional: [{ var: "email" }] }, ["a"])).toEqual(["t.fractional: fractional needs at least one bucket [variant, weight]"]);
    expect(problems({ fractional: [[["a"], 1]] }, ["a"])).toEqual(["t.fractional.0.0: a bucket's variant is a string, boolean, number, null or an operation"]);
  });

  it("reports literal results that name no variant, where they can be the result (not in conditions)", () => {
    expect(problems({ if: [{ "==": [{ var: "x" }, "typo"] }, "on", "of"] }, ["on", "off"])).toEqual(['t.if.2: targeting can return "of", which is not a variant (variants: on, off)']);
    expect(problems({ fractional: [["on", 1], ["nope", 1]] }, ["on", "off"])).toEqual(['t.fractional.1.0: targeting can return "nope", which is not a variant (variants: on, off)']);
    expect(problems({ or: [{ var: "x" }, true] }, ["on"])).toEqual(['t.or.1: targeting can return "true", which is not a variant (variants: on)']);
    expect(problems({ if: [{ in: ["x", ["a", "b"]] }, "on", null] }, ["on"])).toEqual([]);
    expect(problems({ if: [true, [1]] }, ["on"])).toEqual(["t.if.1: targeting can return [1], which names no variant (variants: on)"]);
  });

  it("follows $ref: a missing one is reported where it is used; a literal result inside is reported at the $ref", () => {
    expect(problems({ if: [{ $ref: "nope" }, "on", "off"] }, ["on", "off"], {})).toEqual(['t.if.0.$ref: $ref "nope" names no entry of $evaluators']);
    expect(problems({ $ref: "pick" }, ["on", "off"], { pick: { if: [{ var: "x" }, "on", "maybe"] } })).toEqual(['t.$ref: targeting can return "maybe", which is not a variant (variants: on, off)']);
    expect(problems({ $ref: 5 }, ["on"], {})).toEqual(["t.$ref: $ref names an entry of $evaluators (a string)"]);
  });

  it("limits nesting depth instead of overflowing the stack", () => {
    let deep: unknown = true;
    for (let i = 0; i < 200; i++) deep = { "!": [deep] };
    expect(problems(deep).some((p) => p.endsWith("targeting is nested more than 64 levels deep"))).toBe(true);
  });
});
