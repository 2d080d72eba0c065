// sem_ver parsing (flagd's lenient forms) and semver 2.0 precedence.
import { describe, expect, it } from "vitest";
import { compareSemVer, parseSemVer, testSemVer, type SemVer } from "./sem-ver.js";

const v = (text: string): SemVer => {
  const parsed = parseSemVer(text);
  if (parsed === undefined) throw new Error(`${text} should parse`);
  return parsed;
};

describe("parseSemVer", () => {
  it("accepts full versions, a v/V prefix, 1 and 1.2 shorthands, numbers, and ignores build metadata", () => {
    expect(parseSemVer("1.2.3")).toEqual({ major: "1", minor: "2", patch: "3", prerelease: [] });
    expect(parseSemVer("v1.2.3")).toEqual(parseSemVer("1.2.3"));
    expect(parseSemVer("V1.2.3")).toEqual(parseSemVer("1.2.3"));
    expect(parseSemVer("1")).toEqual({ major: "1", minor: "0", patch: "0", prerelease: [] });
    expect(parseSemVer("1.2")).toEqual({ major: "1", minor: "2", patch: "0", prerelease: [] });
    expect(parseSemVer(1.2)).toEqual(parseSemVer("1.2.0"));
    expect(parseSemVer(2)).toEqual(parseSemVer("2.0.0"));
    expect(parseSemVer("1.0.0-rc.1+build.5")).toEqual({ major: "1", minor: "0", patch: "0", prerelease: ["rc", "1"] });
  });

  it("rejects what Go's x/mod/semver rejects: four parts, leading zeros, shorthand with pre-release, junk, non-strings", () => {
    for (const bad of ["2.0.0.0", "01.2.3", "1.02.3", "1.2-rc", "1.0.0-01", "not-a-version", "", "v", "1.2.3-", "1.2.3+", "vv1.0.0"]) {
      expect(parseSemVer(bad), bad).toBeUndefined();
    }
    for (const bad of [null, undefined, true, {}, ["1.0.0"], Number.NaN]) expect(parseSemVer(bad)).toBeUndefined();
  });
});

describe("compareSemVer", () => {
  it("orders by semver 2.0 precedence, pre-releases below their release", () => {
    const ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"];
    for (let i = 0; i + 1 < ordered.length; i++) {
      expect(compareSemVer(v(ordered[i] as string), v(ordered[i + 1] as string)), `${ordered[i]} < ${ordered[i + 1]}`).toBeLessThan(0);
      expect(compareSemVer(v(ordered[i + 1] as string), v(ordered[i] as string))).toBeGreaterThan(0);
    }
    expect(compareSemVer(v("1.0.0+a"), v("1.0.0+b"))).toBe(0);
  });

  it("compares huge numeric parts exactly (no float rounding)", () => {
    expect(compareSemVer(v("9007199254740993.0.0"), v("9007199254740992.0.0"))).toBeGreaterThan(0);
  });

  it("^ matches the major, ~ the major and minor", () => {
    expect(testSemVer(v("3.1.0"), "^", v("3.0.0"))).toBe(true);
    expect(testSemVer(v("3.1.0"), "~", v("3.0.0"))).toBe(false);
    expect(testSemVer(v("3.0.9"), "~", v("3.0.0"))).toBe(true);
    expect(testSemVer(v("4.0.0"), "^", v("3.0.0"))).toBe(false);
    expect(testSemVer(v("1.0.0"), "!=", v("1.0.1"))).toBe(true);
    expect(testSemVer(v("1.0.0"), "<=", v("1.0.0"))).toBe(true);
    expect(testSemVer(v("1.0.0"), ">=", v("1.0.1"))).toBe(false);
  });
});
