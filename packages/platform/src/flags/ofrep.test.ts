// OFREP bulk evaluation's ETag: 304 while neither the set nor the context changed, and, for a set
// whose rules read the time ($flagd.timestamp), only while the answers themselves are the same.
import { compileFlagSet, type FlagSet } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import type { FlagSnapshot } from "./flag-service.js";
import { ofrepEvaluateAll, readsTime } from "./ofrep.js";

const LAUNCH = Date.parse("2026-06-01T12:00:00Z");

function snapshot(set: FlagSet, clock: () => number): FlagSnapshot {
  return { revision: 1, set, compiled: compileFlagSet(set, { now: clock }), etag: "0123456789abcdef", updatedAt: undefined };
}

const launch: FlagSet = {
  flags: {
    // On from the launch time: the same set and context answer differently once it has passed.
    "summer-sale": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting: { if: [{ ">=": [{ var: "$flagd.timestamp" }, LAUNCH / 1000] }, "on", "off"] } },
    plain: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
  },
};

type Bulk = { flags: Array<{ key: string; value: unknown }> };
const value = (body: unknown, key: string) => (body as Bulk).flags.find((f) => f.key === key)?.value;

describe("OFREP bulk evaluation", () => {
  it("answers 304 to an unchanged set and context", () => {
    const snap = snapshot({ flags: { plain: launch.flags.plain! } }, () => LAUNCH);
    const first = ofrepEvaluateAll(snap, { context: { targetingKey: "u1" } }, undefined);
    expect(first.status).toBe(200);
    expect(ofrepEvaluateAll(snap, { context: { targetingKey: "u1" } }, first.headers?.etag).status).toBe(304);
    expect(ofrepEvaluateAll(snap, { context: { targetingKey: "u2" } }, first.headers?.etag).status).toBe(200);
  });

  it("does not answer 304 once a rule on $flagd.timestamp gives another answer, and still does while the answers stay the same", () => {
    let now = LAUNCH - 60_000;
    const snap = snapshot(launch, () => now);
    const before = ofrepEvaluateAll(snap, { context: { targetingKey: "u1" } }, undefined);
    expect(before.status).toBe(200);
    expect(value(before.body, "summer-sale")).toBe(false);
    const etag = before.headers?.etag as string;
    now += 30_000;
    expect(ofrepEvaluateAll(snap, { context: { targetingKey: "u1" } }, etag)).toEqual({ status: 304, headers: { etag } });

    now = LAUNCH + 1_000;
    const after = ofrepEvaluateAll(snap, { context: { targetingKey: "u1" } }, etag);
    expect(after.status).toBe(200);
    expect(value(after.body, "summer-sale")).toBe(true);
    expect(after.headers?.etag).not.toBe(etag);
    expect(ofrepEvaluateAll(snap, { context: { targetingKey: "u1" } }, after.headers?.etag).status).toBe(304);
  });

  it("counts a shared evaluator and a computed var path as reading the time, $flagd.flagKey not", () => {
    expect(readsTime({ if: [{ ">": [{ var: ["$flagd.timestamp", 0] }, 1] }, "on", "off"] })).toBe(true);
    expect(readsTime({ in: ["x", { var: "$flagd" }] })).toBe(true);
    expect(readsTime({ var: { cat: ["$flagd.", "timestamp"] } })).toBe(true);
    expect(readsTime({ "==": [{ var: "$flagd.flagKey" }, "summer-sale"] })).toBe(false);
    expect(readsTime({ fractional: [["on", 50], ["off", 50]] })).toBe(false);

    let now = LAUNCH - 1_000;
    const viaRef: FlagSet = {
      flags: { "summer-sale": { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting: { if: [{ $ref: "launched" }, "on", "off"] } } },
      $evaluators: { launched: { ">=": [{ var: "$flagd.timestamp" }, LAUNCH / 1000] } },
    };
    const snap = snapshot(viaRef, () => now);
    const before = ofrepEvaluateAll(snap, { context: {} }, undefined);
    now = LAUNCH;
    const after = ofrepEvaluateAll(snap, { context: {} }, before.headers?.etag);
    expect(after.status).toBe(200);
    expect(value(after.body, "summer-sale")).toBe(true);
  });
});
