import { describe, expect, it } from "vitest";
import { createMemoryStore, type Store } from "../store/index.js";
import { readTrafficSplit, writeTrafficSplit } from "./traffic-splits.js";

async function storeWithReleases(): Promise<Store> {
  const store = createMemoryStore();
  for (const id of ["r-aaaaaaaaaaaa", "r-bbbbbbbbbbbb"]) {
    await store.putRelease({ id, project: "shop", service: "orders", sourceHash: id, configHash: id, gitCommit: undefined, createdAt: new Date().toISOString(), details: {} });
  }
  return store;
}

describe("traffic splits", () => {
  it("stores a valid split, records who changed it, and clears it", async () => {
    const store = await storeWithReleases();
    const split = {
      weights: [
        { release: "r-aaaaaaaaaaaa", weight: 90, label: "stable" },
        { release: "r-bbbbbbbbbbbb", weight: 10, label: "canary" },
      ],
      sticky: true,
    };
    expect(await writeTrafficSplit({ store, project: "shop", service: "orders", split, actor: "ana" })).toEqual(split);
    expect(await readTrafficSplit(store, "shop", "orders")).toEqual(split);
    await writeTrafficSplit({ store, project: "shop", service: "orders", split: undefined, actor: "bo" });
    expect(await readTrafficSplit(store, "shop", "orders")).toBeUndefined();
    const events = await store.listEvents({ kinds: ["traffic.changed"] });
    expect(events.map((e) => [e.actor, (e.details as { after?: unknown }).after])).toEqual([
      ["ana", split],
      ["bo", undefined],
    ]);
  });

  it("rejects weights that do not add up to 100, unknown releases, duplicates and bad shapes, naming the problem", async () => {
    const store = await storeWithReleases();
    const write = (split: unknown) => writeTrafficSplit({ store, project: "shop", service: "orders", split, actor: "t" });
    await expect(write({ weights: [{ release: "r-aaaaaaaaaaaa", weight: 90 }], sticky: false })).rejects.toThrow(/must add up to 100, got 90/);
    await expect(write({ weights: [{ release: "r-cccccccccccc", weight: 100 }], sticky: false })).rejects.toThrow(/has no release "r-cccccccccccc"/);
    await expect(
      write({ weights: [{ release: "r-aaaaaaaaaaaa", weight: 50 }, { release: "r-aaaaaaaaaaaa", weight: 50 }], sticky: false }),
    ).rejects.toThrow(/listed twice/);
    await expect(write({ weights: [{ release: "r-aaaaaaaaaaaa", weight: 150 }], sticky: false })).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
    await expect(write({ weights: [] })).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
    expect(await readTrafficSplit(store, "shop", "orders")).toBeUndefined();
  });

  it("stores match rules and affinity, and rejects a rule naming an unknown release or holding a bad regex, naming the rule", async () => {
    const store = await storeWithReleases();
    const write = (split: unknown) => writeTrafficSplit({ store, project: "shop", service: "orders", split, actor: "t" });
    const weights = [
      { release: "r-bbbbbbbbbbbb", weight: 0, label: "canary" },
      { release: "r-aaaaaaaaaaaa", weight: 100, label: "stable" },
    ];
    const split = {
      weights,
      sticky: false,
      match: [{ release: "r-bbbbbbbbbbbb", headers: { "x-user-group": { exact: "beta" } }, cookies: { canary: { regex: "always|yes" } } }],
      affinity: { header: "x-user-id" },
    };
    expect(await write(split)).toEqual(split);
    expect(await readTrafficSplit(store, "shop", "orders")).toEqual(split);
    await expect(write({ weights, sticky: false, match: [{ release: "r-cccccccccccc", cookies: { canary: { exact: "always" } } }] })).rejects.toThrow(
      'traffic split match.0: service "orders" has no release "r-cccccccccccc"',
    );
    await expect(write({ weights, sticky: false, match: [split.match[0], { release: "r-bbbbbbbbbbbb", headers: { "x-g": { regex: "[" } } }] })).rejects.toThrow(
      /^traffic split\.match\.1\.headers\.x-g\.regex: match rule 1: header "x-g": Invalid regular expression/,
    );
    await expect(write({ weights, sticky: false, affinity: { header: "x-user-id", cookie: "uid" } })).rejects.toThrow("traffic split.affinity: give exactly one of header, cookie");
    expect(await readTrafficSplit(store, "shop", "orders")).toEqual(split);
  });
});

