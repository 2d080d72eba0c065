// Evaluation counts and stale flags with a memory store and a hand-moved clock: counts written at
// most every flushMs, stale by evaluation (counted from the last evaluation, the last change or
// the start of counting) and by change, and the exemptions of kill switches and permissions.
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import { createGatewayMetrics } from "../gateway/index.js";
import { createMemoryStore } from "../store/index.js";
import { createMetricStore } from "../telemetry/index.js";
import { createFlagService } from "./flag-service.js";
import { createFlagUsage, type FlagUsage } from "./flag-usage.js";
import { findStaleFlags } from "./stale-flags.js";

const DAY = 86_400_000;
const flag = (type?: string) => ({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", ...(type ? { type } : {}) });

function setup(options: { flushMs?: number } = {}) {
  let t = Date.parse("2026-01-01T00:00:00Z");
  const clock = { now: () => new Date(t), advance: (ms: number) => (t += ms) };
  const store = createMemoryStore({ now: () => t });
  const flags = createFlagService({ store, project: "shop", now: clock.now });
  const usage = createFlagUsage({ store, project: "shop", flags, now: clock.now, flushMs: options.flushMs ?? 60_000 });
  usages.push(usage);
  return { clock, store, flags, usage };
}
const usages: FlagUsage[] = [];
afterEach(async () => {
  await Promise.all(usages.splice(0).map((u) => u.close()));
});

describe("flag usage", () => {
  it("counts in memory and writes the setting at most every flushMs, keeping only existing flags", async () => {
    const { clock, store, flags, usage } = setup({ flushMs: 30 });
    await flags.put("checkout", flag(), "ana");
    await usage.read();
    const written = async () => JSON.parse((await store.getSetting("flags-usage.shop")) as string) as { since: string; flags: Record<string, { evaluations: number; lastEvaluatedAt: string }> };
    expect(await written()).toEqual({ since: "2026-01-01T00:00:00.000Z", flags: {} });

    clock.advance(5_000);
    for (let i = 0; i < 1_000; i++) usage.record("checkout");
    expect(usage.recordAll({ checkout: 500, nope: 3 })).toBe(2);
    // Not per request: nothing is written before the timer fires.
    expect((await written()).flags).toEqual({});
    await waitFor(async () => (await written()).flags.checkout, { what: "the timed write" });
    expect(await written()).toEqual({ since: "2026-01-01T00:00:00.000Z", flags: { checkout: { evaluations: 1_500, lastEvaluatedAt: "2026-01-01T00:00:05.000Z" } } });

    clock.advance(DAY);
    usage.record("checkout", 2);
    expect((await usage.read()).flags.checkout).toEqual({ evaluations: 1_502, lastEvaluatedAt: "2026-01-02T00:00:05.000Z" });
  });

  it("keeps its counts across a restart and drops deleted flags", async () => {
    const { clock, store, flags, usage } = setup();
    await flags.put("a", flag(), "ana");
    await flags.put("b", flag(), "ana");
    usage.record("a", 3);
    usage.record("b", 4);
    await usage.close();
    await flags.remove("b", "ana");
    clock.advance(DAY);
    const again = createFlagUsage({ store, project: "shop", flags, now: clock.now, flushMs: 60_000 });
    usages.push(again);
    again.record("a");
    expect((await again.read())).toEqual({ since: "2026-01-01T00:00:00.000Z", flags: { a: { evaluations: 4, lastEvaluatedAt: "2026-01-02T00:00:00.000Z" } } });
  });
});

describe("stale flags", () => {
  it("finds flags with no evaluation for `days`, from their last evaluation, last change or the start of counting", async () => {
    const { clock, flags, usage } = setup();
    await usage.read(); // counting begins 2026-01-01
    await flags.put("used", flag(), "ana");
    await flags.put("abandoned", flag(), "ana");
    await flags.put("never", flag(), "ana");
    usage.record("used");
    usage.record("abandoned");
    await usage.flush();

    clock.advance(20 * DAY);
    await flags.put("fresh", flag(), "ana"); // created on day 20, never evaluated
    clock.advance(11 * DAY);
    usage.record("used");
    const now = clock.now();
    const report = await findStaleFlags({ flags, usage, now });
    expect(report).toMatchObject({ at: "2026-02-01T00:00:00.000Z", days: 30, unchangedDays: 90, countingSince: "2026-01-01T00:00:00.000Z" });
    expect(report.flags).toEqual([
      {
        flag: "abandoned",
        reasons: ["not-evaluated"],
        why: ["no evaluation for 31 days (last 2026-01-01)"],
        lastEvaluatedAt: "2026-01-01T00:00:00.000Z",
        lastChangedAt: "2026-01-01T00:00:00.000Z",
        evaluations: 1,
      },
      { flag: "never", reasons: ["not-evaluated"], why: ["never evaluated in 31 days (since its last change 2026-01-01)"], lastChangedAt: "2026-01-01T00:00:00.000Z", evaluations: 0 },
    ]);
    // A shorter window catches the flag created on day 20 too.
    expect((await findStaleFlags({ flags, usage, now, days: 10 })).flags.map((f) => f.flag)).toEqual(["abandoned", "never", "fresh"]);
  });

  it("counts a never-evaluated flag from the start of counting when that is later than its last change", async () => {
    const { clock, store, flags } = setup();
    await flags.put("old", flag(), "ana");
    clock.advance(100 * DAY);
    // The control plane began counting evaluations only now (an upgrade).
    const usage = createFlagUsage({ store, project: "shop", flags, now: clock.now, flushMs: 60_000 });
    usages.push(usage);
    await usage.read();
    clock.advance(10 * DAY);
    const report = await findStaleFlags({ flags, usage, now: clock.now(), unchangedDays: 365 });
    expect(report.flags).toEqual([]);
    clock.advance(21 * DAY);
    expect((await findStaleFlags({ flags, usage, now: clock.now(), unchangedDays: 365 })).flags[0]?.why).toEqual(["never evaluated in 31 days (since counting began 2026-04-11)"]);
  });

  it("finds flags unchanged for `unchangedDays` even when used, but not kill switches and permissions", async () => {
    const { clock, flags, usage } = setup();
    await usage.read();
    for (const [key, type] of [["release-flag", "release"], ["untyped", undefined], ["breaker", "kill-switch"], ["admin-area", "permission"], ["touched", "operational"]] as const) {
      await flags.put(key, flag(type), "ana");
    }
    clock.advance(60 * DAY);
    await flags.kill("touched", "bo"); // a kill is a change
    clock.advance(40 * DAY);
    for (const key of ["release-flag", "untyped", "breaker", "admin-area", "touched"]) usage.record(key);
    const report = await findStaleFlags({ flags, usage, now: clock.now() });
    expect(report.flags.map((f) => [f.flag, f.reasons, f.why])).toEqual([
      ["release-flag", ["unchanged"], ["no change for 100 days (last 2026-01-01)"]],
      ["untyped", ["unchanged"], ["no change for 100 days (last 2026-01-01)"]],
    ]);

    // Exempt from the change rule, not from the evaluation rule.
    clock.advance(30 * DAY);
    const later = await findStaleFlags({ flags, usage, now: clock.now() });
    expect(later.flags.map((f) => [f.flag, f.reasons])).toEqual([
      ["release-flag", ["not-evaluated", "unchanged"]],
      ["untyped", ["not-evaluated", "unchanged"]],
      ["admin-area", ["not-evaluated"]],
      ["breaker", ["not-evaluated"]],
      // Killed on day 60: 70 days without a change.
      ["touched", ["not-evaluated"]],
    ]);
  });

  it("refuses windows that are not whole days", async () => {
    const { flags, usage } = setup();
    await expect(findStaleFlags({ flags, usage, now: new Date(), days: 0 })).rejects.toThrow(/days: expected a whole number of days from 1 to 3650, got 0/);
    await expect(findStaleFlags({ flags, usage, now: new Date(), unchangedDays: 1.5 })).rejects.toThrow(/unchangedDays/);
  });
});

describe("stale flags routed by the gateway", () => {
  it("counts the requests a gateway routed by a flag (scraped into the metric store) as its evaluations, so a flag only gateways use is not stale", async () => {
    let t = Date.parse("2026-01-01T00:00:00Z");
    const now = () => new Date(t);
    const store = createMemoryStore({ now: () => t });
    const flags = createFlagService({ store, project: "shop", now });
    // A real gateway's counters, scraped the way the control plane scrapes them.
    const gateway = createGatewayMetrics({ defaultMetrics: false });
    const metricStore = createMetricStore({ now: () => t });
    const scrape = async () => metricStore.ingest(await gateway.registry.metrics(), { instance: "127.0.0.1:8081", at: t });
    const usage = createFlagUsage({ store, project: "shop", flags, now, flushMs: 60_000, gateway: { metrics: metricStore } });
    usages.push(usage);
    await usage.read(); // counting begins 2026-01-01
    await flags.put("checkout-v2", flag("release"), "ana");
    await flags.put("unused", flag("release"), "ana");

    t += 40 * DAY;
    await scrape(); // the gateway's first scrape: its baseline
    const v2 = gateway.flagVariant("/checkout", "checkout-v2", "on");
    const v1 = gateway.flagVariant("/checkout", "checkout-v2", "off");
    for (let i = 0; i < 5; i++) gateway.recordFlag(v2, i === 0 ? 500 : 200, 0.01);
    gateway.recordFlag(v1, 200, 0.01);
    t += 5_000;
    await scrape();
    // Requests are taken a whole 10 s step at a time, a step after it ended: not yet.
    expect((await usage.read()).flags["checkout-v2"]).toBeUndefined();
    t += 30_000;
    const used = (await usage.read()).flags["checkout-v2"];
    expect(used?.evaluations).toBe(6);
    expect(Date.parse(used!.lastEvaluatedAt)).toBeGreaterThanOrEqual(Date.parse("2026-02-10T00:00:00Z"));
    expect(Date.parse(used!.lastEvaluatedAt)).toBeLessThanOrEqual(t);
    // Taken once: reading again counts nothing twice.
    t += 60_000;
    expect((await usage.read()).flags["checkout-v2"]?.evaluations).toBe(6);

    const report = await findStaleFlags({ flags, usage, now: now() });
    expect(report.flags.map((f) => [f.flag, f.reasons])).toEqual([["unused", ["not-evaluated"]]]);
    // A month later without gateway traffic it is stale like any other.
    t += 31 * DAY;
    await scrape();
    expect((await findStaleFlags({ flags, usage, now: now() })).flags.find((f) => f.flag === "checkout-v2")?.why).toEqual(["no evaluation for 31 days (last 2026-02-10)"]);
  });

  it("counts every outcome as an evaluation: a routing kill switch left off (unassigned), refused requests and a down variant's errors", async () => {
    let t = Date.parse("2026-01-01T00:00:00Z");
    const now = () => new Date(t);
    const store = createMemoryStore({ now: () => t });
    const flags = createFlagService({ store, project: "shop", now });
    const gateway = createGatewayMetrics({ defaultMetrics: false });
    const metricStore = createMetricStore({ now: () => t });
    const scrape = async () => metricStore.ingest(await gateway.registry.metrics(), { instance: "127.0.0.1:8081", at: t });
    const usage = createFlagUsage({ store, project: "shop", flags, now, flushMs: 60_000, gateway: { metrics: metricStore } });
    usages.push(usage);
    await usage.read();
    await flags.put("kill-switch", flag("kill-switch"), "ana");
    await flags.put("down", flag("release"), "ana");

    t += 40 * DAY;
    await scrape();
    // What the gateway counts for a disabled flag, and for a variant whose service has no replica
    // and requests the gateway refused (RouteFlagEvaluator.decide, the proxy).
    gateway.flagVariant("/", "kill-switch", "none").unassigned += 3;
    const treatment = gateway.flagVariant("/", "down", "treatment");
    treatment.error += 2;
    treatment.rejected += 1;
    t += 5_000;
    await scrape();
    t += 30_000;
    const read = await usage.read();
    expect([read.flags["kill-switch"]?.evaluations, read.flags["down"]?.evaluations]).toEqual([3, 3]);
    expect((await findStaleFlags({ flags, usage, now: now() })).flags).toEqual([]);
  });
});
