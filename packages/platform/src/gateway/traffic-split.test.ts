// Tests for the release choice: weights, a release without endpoints, pins and the cookie,
// A/B match rules and the affinity hash.
import { describe, expect, it } from "vitest";
import type { MatchRule } from "@keelson/protocol";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";
import { createSeededRandom } from "./random.js";
import { MatchRules, PatternCache, ReleasePicker, UserAffinity, affinityHash, readCookie, sameHeaderName, splitLabels, stickyCookie } from "./traffic-split.js";

const group = (release: string, endpoints: number) => ({ release, available: { items: new Array<unknown>(endpoints).fill(0) } });

describe("ReleasePicker", () => {
  it("splits 90/10 within a percentage point over 100,000 seeded picks", () => {
    const stable = group("r1", 2);
    const canary = group("r2", 1);
    const picker = new ReleasePicker(
      [
        { group: stable, weight: 90 },
        { group: canary, weight: 10 },
      ],
      [stable, canary],
      new Map(),
    );
    const random = createSeededRandom(9);
    let canaryPicks = 0;
    for (let i = 0; i < 100_000; i++) if (picker.pick(random) === canary) canaryPicks++;
    expect(Math.abs(canaryPicks / 100_000 - 0.1)).toBeLessThan(0.01);
  });

  it("gives nothing to weight 0 and gives the share of a release without endpoints to the others", () => {
    const a = group("a", 1);
    const b = group("b", 1);
    const c = group("c", 1);
    const picker = new ReleasePicker(
      [
        { group: a, weight: 50 },
        { group: b, weight: 50 },
        { group: c, weight: 0 },
      ],
      [a, b, c],
      new Map(),
    );
    const random = createSeededRandom(1);
    const seen = new Set(Array.from({ length: 1_000 }, () => picker.pick(random)!.release));
    expect([...seen].sort()).toEqual(["a", "b"]);
    b.available.items.length = 0;
    picker.refresh();
    for (let i = 0; i < 100; i++) expect(picker.pick(random)).toBe(a);
    a.available.items.length = 0;
    picker.refresh();
    expect(picker.pick(random)).toBeUndefined();
  });

  it("pins by label or by release id, including a release with weight 0, while it has endpoints", () => {
    const stable = group("r-1", 1);
    const preview = group("r-2", 1);
    const split = {
      sticky: false,
      weights: [
        { release: "r-1", weight: 100, label: "stable" },
        { release: "r-2", weight: 0, label: "preview" },
      ],
    };
    const picker = new ReleasePicker(
      [
        { group: stable, weight: 100 },
        { group: preview, weight: 0 },
      ],
      [stable, preview],
      splitLabels(split),
    );
    expect(picker.pinned("preview")).toBe(preview);
    expect(picker.pinned("r-2")).toBe(preview);
    expect(picker.pinned("stable")).toBe(stable);
    expect(picker.pinned("nope")).toBeUndefined();
    preview.available.items.length = 0;
    expect(picker.pinned("preview")).toBeUndefined();
  });
});

describe("cookies", () => {
  it("writes the sticky cookie with Path, HttpOnly and SameSite=Lax", () => {
    expect(stickyCookie("web", "r-3f9a")).toBe("keelson-v-web=r-3f9a; Path=/; HttpOnly; SameSite=Lax");
  });

  it("reads a cookie only where a cookie starts, with or without spaces and quotes", () => {
    expect(readCookie("keelson-v-web=r-1", "keelson-v-web")).toBe("r-1");
    expect(readCookie("a=1; keelson-v-web=r-2; b=3", "keelson-v-web")).toBe("r-2");
    expect(readCookie("a=1;keelson-v-web=\"r-3\"", "keelson-v-web")).toBe("r-3");
    expect(readCookie("x-keelson-v-web=r-9; keelson-v-webshop=r-8", "keelson-v-web")).toBeUndefined();
    expect(readCookie("x-keelson-v-web=r-9; keelson-v-web=r-4", "keelson-v-web")).toBe("r-4");
    expect(readCookie("keelson-v-web=%zz", "keelson-v-web")).toBeUndefined();
  });
});

type Group = ReturnType<typeof group>;

function rules(list: MatchRule[], groups: Group[], options: { log?: GatewayLogger; patterns?: PatternCache } = {}): MatchRules<Group> | undefined {
  const byRelease = new Map(groups.map((g) => [g.release, g]));
  return MatchRules.compile({ service: "web", rules: list, group: (r) => byRelease.get(r), patterns: options.patterns ?? new PatternCache(undefined), log: options.log ?? silentLogger });
}

function recordingLogger(): GatewayLogger & { warnings: Array<[object, string | undefined]> } {
  const warnings: Array<[object, string | undefined]> = [];
  return { ...silentLogger, warnings, warn: (obj, msg) => void warnings.push([obj, msg]) };
}

describe("MatchRules", () => {
  const stable = group("r-stable", 1);
  const canary = group("r-canary", 1);
  const preview = group("r-preview", 1);

  it("matches header names in any case, exact, prefix and whole-value regex, and reads only the headers named", () => {
    const m = rules(
      [
        { release: "r-canary", headers: { "X-User-Group": { exact: "beta" } } },
        { release: "r-preview", headers: { "x-client": { prefix: "ios/" }, "x-build": { regex: "[0-9]+" } } },
      ],
      [stable, canary, preview],
    )!;
    expect(m.headers).toEqual(["x-user-group", "x-client", "x-build"]);
    expect(m.choose(["x-user-group", "beta"], undefined)).toBe(canary);
    expect(m.choose(["X-USER-GROUP", "beta"], undefined)).toBe(canary);
    expect(m.choose(["x-user-group", "beta2"], undefined)).toBeUndefined();
    expect(m.choose(["x-user-group", "Beta"], undefined)).toBeUndefined();
    expect(m.choose(["X-Client", "ios/17.2", "x-build", "42"], undefined)).toBe(preview);
    // Every condition of a rule must hold; the regex must match the whole value.
    expect(m.choose(["x-client", "ios/17.2"], undefined)).toBeUndefined();
    expect(m.choose(["x-client", "ios/17.2", "x-build", "42a"], undefined)).toBeUndefined();
    expect(m.choose(["x-client", "android/14", "x-build", "42"], undefined)).toBeUndefined();
    expect(m.choose([], undefined)).toBeUndefined();
  });

  it("matches cookies, and takes the first matching rule whose release has an available endpoint", () => {
    const a = group("a", 1);
    const b = group("b", 1);
    const m = rules(
      [
        { release: "a", cookies: { canary: { exact: "always" } } },
        { release: "b", cookies: { canary: { prefix: "al" } }, headers: { "x-any": { regex: ".*" } } },
        { release: "b", cookies: { canary: { regex: "al(ways|l)" } } },
      ],
      [a, b],
    )!;
    expect(m.choose([], "theme=dark; canary=always")).toBe(a);
    expect(m.choose([], "canary=all")).toBe(b);
    expect(m.choose([], "canary=never")).toBeUndefined();
    expect(m.choose([], undefined)).toBeUndefined();
    expect(m.choose([], "xcanary=always")).toBeUndefined();
    a.available.items.length = 0;
    expect(m.choose([], "canary=always")).toBe(b);
    b.available.items.length = 0;
    expect(m.choose(["x-any", "1"], "canary=always")).toBeUndefined();
  });

  it("joins a repeated header into one value, as node does", () => {
    const m = rules([{ release: "r-canary", headers: { "x-flags": { exact: "a, b" } } }], [canary])!;
    expect(m.choose(["x-flags", "a", "X-Flags", "b"], undefined)).toBe(canary);
    expect(m.choose(["x-flags", "a"], undefined)).toBeUndefined();
  });

  it("drops a rule whose regex does not compile, warning once across tables, and keeps the others", () => {
    const log = recordingLogger();
    const list: MatchRule[] = [
      { release: "r-canary", headers: { "x-g": { regex: "(beta" } } },
      { release: "r-preview", headers: { "x-g": { regex: "beta|preview" } } },
    ];
    const first = new PatternCache(undefined);
    const m = rules(list, [canary, preview], { log, patterns: first })!;
    first.seal();
    expect(m.choose(["x-g", "beta"], undefined)).toBe(preview);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]![0]).toMatchObject({ service: "web", rule: 0, header: "x-g", regex: "(beta" });
    // The next table with the same rules reuses the compiled patterns: no second warning.
    const second = new PatternCache(first);
    expect(rules(list, [canary, preview], { log, patterns: second })!.choose(["x-g", "beta"], undefined)).toBe(preview);
    expect(log.warnings).toHaveLength(1);
    // A rule set with nothing usable compiles to nothing (a split without rules costs nothing).
    expect(rules([list[0]!], [canary, preview], { log, patterns: second })).toBeUndefined();
    expect(rules([{ release: "r-gone", headers: { a: { exact: "1" } } }], [canary])).toBeUndefined();
  });

  it("compares header names without allocating, ignoring ASCII case only", () => {
    expect(sameHeaderName("X-User-ID", "x-user-id")).toBe(true);
    expect(sameHeaderName("x-user-i", "x-user-id")).toBe(false);
    expect(sameHeaderName("x-user_id", "x-user-id")).toBe(false);
  });
});

describe("affinity", () => {
  const reference = (service: string, value: string) => {
    // FNV-1a over the UTF-8 bytes via TextEncoder, then murmur3's fmix32: the documented definition.
    let h = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(`${service}\0${value}`)) h = Math.imul(h ^ byte, 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  };

  it("hashes service and value as documented, UTF-8 included, stable across runs", () => {
    for (const value of ["user-1", "", "Ümit", "用户", "🙂emoji", "lone\ud800surrogate"]) expect(affinityHash("web", value)).toBe(reference("web", value));
    // Pinned values: a change here moves users between releases on upgrade.
    expect(affinityHash("web", "user-42")).toBe(2_045_407_369);
    expect(affinityHash("", "")).toBe(91_794_203);
    expect(affinityHash("web", "user-42")).not.toBe(affinityHash("api", "user-42"));
  });

  it("keeps a user on one release, spreads 10,000 users within 2 points of the weights, and skips a release without endpoints", () => {
    const canary = group("canary", 1);
    const stable = group("stable", 2);
    const picker = new ReleasePicker(
      [
        { group: canary, weight: 20 },
        { group: stable, weight: 80 },
      ],
      [canary, stable],
      new Map(),
    );
    const affinity = new UserAffinity("web", { header: "X-User-Id" });
    const pick = (user: string) => picker.at(affinity.fraction(["x-user-id", user], undefined)!);
    let onCanary = 0;
    for (let i = 0; i < 10_000; i++) {
      const first = pick(`user-${i}`);
      if (first === canary) onCanary++;
      if (i % 100 === 0) for (let k = 0; k < 5; k++) expect(pick(`user-${i}`)).toBe(first);
    }
    expect(Math.abs(onCanary / 10_000 - 0.2)).toBeLessThan(0.02);
    canary.available.items.length = 0;
    picker.refresh();
    for (let i = 0; i < 200; i++) expect(pick(`user-${i}`)).toBe(stable);
  });

  it("leaves users on the canary (listed first) when its weight grows from 10 to 50", () => {
    const canary = group("canary", 1);
    const stable = group("stable", 1);
    const at = (w: number) =>
      new ReleasePicker(
        [
          { group: canary, weight: w },
          { group: stable, weight: 100 - w },
        ],
        [canary, stable],
        new Map(),
      );
    const ten = at(10);
    const fifty = at(50);
    const affinity = new UserAffinity("web", { cookie: "uid" });
    let early = 0;
    let later = 0;
    for (let i = 0; i < 10_000; i++) {
      const f = affinity.fraction([], `uid=${i}`)!;
      if (ten.at(f) === canary) {
        early++;
        expect(fifty.at(f)).toBe(canary);
      }
      if (fifty.at(f) === canary) later++;
    }
    expect(Math.abs(early / 10_000 - 0.1)).toBeLessThan(0.02);
    expect(Math.abs(later / 10_000 - 0.5)).toBeLessThan(0.02);
  });

  it("has no key without the header or cookie, or with an empty one", () => {
    const byHeader = new UserAffinity("web", { header: "x-user-id" });
    const byCookie = new UserAffinity("web", { cookie: "uid" });
    expect(byHeader.fraction(["x-other", "1"], "x-user-id=1")).toBeUndefined();
    expect(byHeader.fraction(["x-user-id", ""], undefined)).toBeUndefined();
    expect(byCookie.fraction(["uid", "1"], undefined)).toBeUndefined();
    expect(byCookie.fraction([], "a=1; uid=")).toBeUndefined();
    const f = byHeader.fraction(["X-User-ID", "u-7"], undefined)!;
    expect(f).toBe(affinityHash("web", "u-7") / 2 ** 32);
    expect(f).toBeGreaterThanOrEqual(0);
    expect(f).toBeLessThan(1);
  });
});
