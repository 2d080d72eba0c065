// Tests for the traffic split schema's A/B rules and affinity: what it accepts, and that each
// rejection names the field at fault.
import { describe, expect, it } from "vitest";
import { RoutingTableSchema, TrafficSplitSchema } from "./routing.js";

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
