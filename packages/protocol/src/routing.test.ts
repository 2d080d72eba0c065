// Tests for the traffic split schema's A/B rules and affinity, and for routing by flag: what the
// schemas accept, and that each rejection names the field at fault.
import { describe, expect, it } from "vitest";
import { RouteFlagSchema, RouteSchema, RoutingTableSchema, TrafficSplitSchema } from "./routing.js";

const weights = [
  { release: "r-canary", weight: 10, label: "canary" },
  { release: "r-stable", weight: 90, label: "stable" },
];

/** The issues of a rejected split as `path: message`. */
function problems(split: unknown): string[] {
  const parsed = TrafficSplitSchema.safeParse(split);
  if (parsed.success) throw new Error(`expected a rejection, got ${JSON.stringify(parsed.data)}`);
  return parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("TrafficSplitSchema", () => {
  it("accepts a split with match rules and affinity, and one without (both optional)", () => {
    const split = {
      weights,
      sticky: false,
      match: [
        { release: "r-canary", headers: { "X-User-Group": { exact: "beta" } } },
        { release: "r-canary", cookies: { canary: { regex: "always|yes" } }, headers: { "x-client": { prefix: "ios/" } } },
      ],
      affinity: { header: "x-user-id" },
    };
    expect(TrafficSplitSchema.parse(split)).toEqual(split);
    expect(TrafficSplitSchema.parse({ weights, sticky: true })).toEqual({ weights, sticky: true });
  });

  it("rejects a rule without any header or cookie condition", () => {
    expect(problems({ weights, sticky: false, match: [{ release: "r-canary" }] })).toEqual(["match.0: a match rule needs at least one header or cookie condition"]);
    expect(problems({ weights, sticky: false, match: [{ release: "r-canary", headers: {}, cookies: {} }] })).toEqual([
      "match.0: a match rule needs at least one header or cookie condition",
    ]);
  });

  it("rejects a StringMatch with two of exact, prefix, regex, or none", () => {
    expect(problems({ weights, sticky: false, match: [{ release: "r-canary", headers: { "x-g": { exact: "a", prefix: "b" } } }] })).toEqual([
      "match.0.headers.x-g: give exactly one of exact, prefix, regex",
    ]);
    expect(problems({ weights, sticky: false, match: [{ release: "r-canary", cookies: { c: {} } }] })).toEqual(["match.0.cookies.c: give exactly one of exact, prefix, regex"]);
    expect(problems({ weights, sticky: false, match: [{ release: "r-canary", cookies: { c: { exact: "a", glob: "*" } } }] })[0]).toMatch(/^match\.0\.cookies\.c: .*glob/);
  });

  it("rejects a regex that does not compile, naming the rule, the header and the field", () => {
    const issues = problems({
      weights,
      sticky: false,
      match: [
        { release: "r-canary", headers: { "x-g": { exact: "beta" } } },
        { release: "r-canary", headers: { "x-g": { regex: "(beta" } } },
      ],
    });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^match\.1\.headers\.x-g\.regex: match rule 1: header "x-g": Invalid regular expression: \/\(beta\/: Unterminated group/);
  });

  it("rejects header and cookie names that are not HTTP tokens", () => {
    expect(problems({ weights, sticky: false, match: [{ release: "r-canary", headers: { "x g": { exact: "1" } } }] })).toEqual([
      "match.0.headers.x g: not a valid header name (letters, digits and !#$%&'*+.^_`|~-)",
    ]);
    expect(problems({ weights, sticky: false, affinity: { cookie: "a;b" } })[0]).toMatch(/^affinity\.cookie: /);
  });

  it("wants exactly one of affinity's header and cookie", () => {
    expect(problems({ weights, sticky: false, affinity: {} })).toEqual(["affinity: give exactly one of header, cookie"]);
    expect(problems({ weights, sticky: false, affinity: { header: "x-user-id", cookie: "uid" } })).toEqual(["affinity: give exactly one of header, cookie"]);
    expect(TrafficSplitSchema.parse({ weights, sticky: false, affinity: { cookie: "uid" } }).affinity).toEqual({ cookie: "uid" });
  });
});

describe("RoutingTableSchema", () => {
  it("keeps a table whose split holds a regex this engine cannot compile: the gateway drops that rule, not the table", () => {
    const table = {
      version: 1,
      project: "p",
      generatedAt: "2026-01-01T00:00:00.000Z",
      routes: [],
      services: [{ name: "web", endpoints: [], split: { weights, sticky: false, match: [{ release: "r-canary", headers: { "x-g": { regex: "(beta" } } }] } }],
    };
    expect(RoutingTableSchema.safeParse(table).success).toBe(true);
    // The rest of the split is still checked.
    const noCondition = { ...table, services: [{ name: "web", endpoints: [], split: { weights, sticky: false, match: [{ release: "r-canary" }] } }] };
    expect(RoutingTableSchema.safeParse(noCondition).success).toBe(false);
  });
});

describe("RouteFlagSchema", () => {
  const flag = {
    key: "checkout-experiment",
    context: { targetingKey: { header: "x-user-id" }, plan: { cookie: "shop-plan" } },
    variants: { control: { version: "stable" }, treatment: { service: "checkout-v2", version: "canary" } },
  };

  /** The issues of a rejected route flag as `path: message`. */
  function flagProblems(value: unknown): string[] {
    const parsed = RouteFlagSchema.safeParse(value);
    if (parsed.success) throw new Error(`expected a rejection, got ${JSON.stringify(parsed.data)}`);
    return parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  }

  it("accepts a flag with header and cookie context, and defaults the context to none", () => {
    expect(RouteFlagSchema.parse(flag)).toEqual(flag);
    expect(RouteFlagSchema.parse({ key: "f", variants: { on: { service: "b" } } })).toEqual({ key: "f", context: {}, variants: { on: { service: "b" } } });
    expect(RouteSchema.parse({ service: "web", pathPrefix: "/", flag }).flag).toEqual(flag);
  });

  it("rejects a variant without service or version, no variants, and an unknown target field", () => {
    expect(flagProblems({ ...flag, variants: { control: {} } })).toEqual(["variants.control: give service, version or both"]);
    expect(flagProblems({ ...flag, variants: {} })).toEqual(["variants: list at least one variant"]);
    expect(flagProblems({ ...flag, variants: { control: { release: "r-1" } } })[0]).toMatch(/^variants\.control: .*release/);
  });

  it("rejects a context source with both or neither of header and cookie, and bad attribute names", () => {
    expect(flagProblems({ ...flag, context: { targetingKey: { header: "x-user-id", cookie: "uid" } } })).toEqual(["context.targetingKey: give exactly one of header, cookie"]);
    expect(flagProblems({ ...flag, context: { targetingKey: {} } })).toEqual(["context.targetingKey: give exactly one of header, cookie"]);
    expect(flagProblems({ ...flag, context: { "user.id": { header: "x-user-id" } } })[0]).toMatch(/^context\.user\.id: not a valid attribute name/);
    expect(flagProblems({ ...flag, context: { targetingKey: { header: "x user" } } })).toEqual(["context.targetingKey.header: not a valid header name"]);
  });

  it("rejects a key that is not a flag key", () => {
    expect(flagProblems({ ...flag, key: "-bad key" })).toEqual(["key: not a valid flag key"]);
  });
});

describe("RoutingTableSchema flags", () => {
  const base = { version: 1, project: "p", generatedAt: "2026-01-01T00:00:00.000Z", routes: [], services: [] };

  it("carries a flag set with its revision, each definition unchecked so one bad flag does not cost the table", () => {
    const flags = { revision: 7, set: { flags: { good: { state: "ENABLED", variants: { on: true }, defaultVariant: "on" }, bad: { state: "MAYBE" } } } };
    expect(RoutingTableSchema.parse({ ...base, flags }).flags).toEqual(flags);
    expect(RoutingTableSchema.parse(base).flags).toBeUndefined();
  });

  it("still checks the envelope: a revision and a set with flags", () => {
    expect(RoutingTableSchema.safeParse({ ...base, flags: { set: { flags: {} } } }).success).toBe(false);
    expect(RoutingTableSchema.safeParse({ ...base, flags: { revision: -1, set: { flags: {} } } }).success).toBe(false);
    expect(RoutingTableSchema.safeParse({ ...base, flags: { revision: 1, set: {} } }).success).toBe(false);
    expect(RoutingTableSchema.safeParse({ ...base, flags: { revision: 1, set: { flags: {}, extra: 1 } } }).success).toBe(false);
  });
});
