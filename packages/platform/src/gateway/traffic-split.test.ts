// Tests for the release choice: weights, a release without endpoints, pins and the cookie.
import { describe, expect, it } from "vitest";
import { createSeededRandom } from "./random.js";
import { ReleasePicker, readCookie, splitLabels, stickyCookie } from "./traffic-split.js";

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
