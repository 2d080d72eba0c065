// Experiments over the memory store: users counted once, conversions once per user and event,
// the user cap, the expected split read from the flag, and aggregates that survive a restart.
import { describe, expect, it } from "vitest";
import type { ExperimentEvent, FlagDefinition } from "@keelson/protocol";
import { createGatewayMetrics } from "../gateway/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createMetricStore, type RetentionTier } from "../telemetry/index.js";
import { normalQuantile, wilson } from "./experiment-stats.js";
import { createExperiments, expectedWeights, experimentStart } from "./experiments.js";
import { createFlagService, type FlagChange, type FlagService } from "./flag-service.js";

const checkout: FlagDefinition = { state: "ENABLED", type: "experiment", variants: { on: true, off: false }, defaultVariant: "off", targeting: { fractional: [["on", 50], ["off", 50]] } };

const exposure = (user: string, variant: string, flag = "checkout"): ExperimentEvent => ({ type: "exposure", flag, variant, targetingKey: user });
const conversion = (user: string, event = "purchase", value?: number): ExperimentEvent => ({ type: "conversion", event, targetingKey: user, ...(value !== undefined ? { value } : {}) });

async function setup(): Promise<{ store: Store; flags: FlagService }> {
  const store = createMemoryStore();
  const flags = createFlagService({ store, project: "shop" });
  await flags.put("checkout", checkout, "test");
  await flags.put("banner", { state: "ENABLED", type: "release", variants: { on: true, off: false }, defaultVariant: "off" }, "test");
  return { store, flags };
}

describe("experiments", () => {
  it("counts each user once in their first variant and each conversion once per user and event", async () => {
    const { store, flags } = await setup();
    const experiments = createExperiments({ store, project: "shop", flags });
    const result = await experiments.ingest([
      exposure("u1", "on"),
      exposure("u1", "on"),
      exposure("u2", "on"),
      exposure("u3", "off"),
      exposure("u3", "on"), // the flag changed under u3: stays in "off"
      exposure("u9", "on", "banner"), // not an experiment
      conversion("u1", "purchase", 10),
      conversion("u1", "purchase", 5), // counted once as a user, both values summed
      conversion("u3", "purchase", 7),
      conversion("u3", "signup"),
      conversion("stranger"), // never exposed
    ]);
    expect(result).toEqual({ accepted: 10, ignored: { notAnExperiment: 1, userCap: 0, overCap: 0 } });

    const r = await experiments.results("checkout", { metric: "purchase" });
    expect(r.metrics).toEqual(["purchase", "signup"]);
    expect(r.control).toBe("off");
    expect(r.variants.map((v) => [v.variant, v.users, v.conversions, v.events, v.valueSum])).toEqual([
      ["on", 2, 1, 2, 15],
      ["off", 1, 1, 1, 7],
    ]);
    expect(r.switched).toBe(1);
    expect(r.unattributed).toBe(1);
    expect(r.notes.join("\n")).toMatch(/1 exposures served a counted user another variant/);
    expect((await experiments.results("checkout", { metric: "signup" })).variants.map((v) => v.conversions)).toEqual([0, 1]);
  });

  it("picks the only metric seen, asks which one when there are several, and checks the control", async () => {
    const { store, flags } = await setup();
    const experiments = createExperiments({ store, project: "shop", flags });
    const none = await experiments.results("checkout");
    expect(none.metric).toBeUndefined();
    expect(none.notes.join("\n")).toMatch(/no conversions yet/);
    await experiments.ingest([exposure("u1", "on"), conversion("u1")]);
    expect((await experiments.results("checkout")).metric).toBe("purchase");
    await experiments.ingest([conversion("u1", "signup")]);
    await expect(experiments.results("checkout")).rejects.toThrow(/metric: flag "checkout" has conversions for purchase, signup/);
    // The metrics to choose from, for clients that offer a choice (the dashboard).
    await expect(experiments.results("checkout")).rejects.toMatchObject({ details: { metrics: ["purchase", "signup"] } });
    await expect(experiments.results("checkout", { metric: "purchase", control: "maybe" })).rejects.toThrow(/control: flag "checkout" has no variant "maybe"; its variants: on, off/);
    expect((await experiments.results("checkout", { metric: "purchase", control: "on" })).comparisons.map((c) => c.variant)).toEqual(["off"]);
    await expect(experiments.results("banner")).rejects.toThrow(/not an experiment \(type release\)/);
    await expect(experiments.results("nope")).rejects.toMatchObject({ code: "KEELSON_ERR_NOT_FOUND" });
  });

  it("stops counting new users at the cap and says so", async () => {
    const { store, flags } = await setup();
    const experiments = createExperiments({ store, project: "shop", flags, maxUsers: 3 });
    const r = await experiments.ingest(["a", "b", "c", "d", "e"].map((u) => exposure(u, "on")).concat([exposure("a", "on"), conversion("e")]));
    expect(r.ignored.userCap).toBe(2);
    const results = await experiments.results("checkout");
    expect(results.variants.find((v) => v.variant === "on")?.users).toBe(3);
    expect(results.usersDropped).toBe(2);
    expect(results.notes.join("\n")).toMatch(/counting stopped at 3 users: 2 later exposures/);
  });

  it("keeps counting each user once across a restart, from aggregates and the chunked log in settings", async () => {
    const { store, flags } = await setup();
    const first = createExperiments({ store, project: "shop", flags, chunkSize: 3 });
    await first.ingest([exposure("u1", "on"), exposure("u2", "off"), exposure("u3", "on"), exposure("u4", "off"), conversion("u1"), conversion("u2", "purchase", 3)]);
    await first.ingest([exposure("u5", "on"), conversion("u5")]);
    const before = await first.results("checkout");
    // Aggregates plus ceil(8 records / 3) chunks; the last one is open.
    expect(JSON.parse((await store.getSetting("experiment.shop.checkout")) ?? "{}")).toMatchObject({ records: 8, exposed: [3, 2] });
    expect(JSON.parse((await store.getSetting("experiment.shop.checkout#2")) ?? "[]")).toEqual([["u5", 0], ["u5", -1]]);

    const second = createExperiments({ store, project: "shop", flags, chunkSize: 3 });
    expect(await second.results("checkout")).toEqual(before);
    // Known users and conversions are not counted again; a new one is, into the open chunk.
    await second.ingest([exposure("u1", "on"), exposure("u2", "off"), conversion("u1"), conversion("u2"), exposure("u6", "off"), conversion("u6")]);
    const after = await second.results("checkout");
    expect(after.variants.map((v) => [v.variant, v.users, v.conversions])).toEqual([
      ["on", 3, 2],
      ["off", 3, 2],
    ]);
    const third = createExperiments({ store, project: "shop", flags, chunkSize: 3 });
    expect(await third.results("checkout")).toEqual(after);
  });

  it("applies batches one at a time", async () => {
    const { store, flags } = await setup();
    const experiments = createExperiments({ store, project: "shop", flags });
    await Promise.all(Array.from({ length: 20 }, (_, i) => experiments.ingest([exposure(`u${i % 5}`, i % 2 === 0 ? "on" : "off")])));
    const r = await experiments.results("checkout");
    expect(r.variants.reduce((n, v) => n + v.users, 0)).toBe(5);
  });
});

describe("expectedWeights", () => {
  it("reads a top-level fractional, with or without a bucketing expression and with default weights", () => {
    expect(expectedWeights(checkout)).toEqual({ weights: { on: 50, off: 50 }, from: "fractional" });
    expect(expectedWeights({ ...checkout, targeting: { fractional: [{ var: "email" }, ["on", 10], ["off", 90]] } })).toEqual({ weights: { on: 10, off: 90 }, from: "fractional" });
    expect(expectedWeights({ ...checkout, targeting: { fractional: [["on"], ["off"]] } })).toEqual({ weights: { on: 1, off: 1 }, from: "fractional" });
  });

  it("falls back to equal weights over the variants for any other targeting", () => {
    expect(expectedWeights({ ...checkout, targeting: undefined })).toEqual({ weights: { on: 1, off: 1 }, from: "equal" });
    expect(expectedWeights({ ...checkout, targeting: { if: [true, { fractional: [["on", 90], ["off", 10]] }, "off"] } }).from).toBe("equal");
    expect(expectedWeights({ ...checkout, targeting: { fractional: [["on", { var: "w" }], ["off", 10]] } }).from).toBe("equal");
  });
});

/**
 * A control plane's gateway side on one clock: a real gateway's counters, a metric store, the
 * flags, and experiments created (the control plane's start) at `t`.
 */
function gatewaySetup(options: { start: number; retention?: RetentionTier[] }) {
  let t = options.start;
  // Flag changes are events: the store stamps them.
  const store = createMemoryStore({ now: () => t });
  const flags = createFlagService({ store, project: "shop", now: () => new Date(t) });
  const metrics = createMetricStore({ now: () => t, ...(options.retention ? { retention: options.retention } : {}) });
  let gateway = createGatewayMetrics({ defaultMetrics: false });
  let scrapes = 0;
  const scrape = async () => {
    scrapes++;
    metrics.ingest(await gateway.registry.metrics(), { instance: "127.0.0.1:8081", at: t });
  };
  const experiments = () => createExperiments({ store, project: "shop", flags, gateway: { metrics, refresh: scrape }, now: () => new Date(t) });
  return {
    flags,
    scrape,
    experiments,
    get scrapes() {
      return scrapes;
    },
    get gateway() {
      return gateway;
    },
    /** The gateway process restarts: its counters start from zero again. */
    restartGateway() {
      gateway = createGatewayMetrics({ defaultMetrics: false });
    },
    at(ms: number) {
      t = ms;
    },
    /** `n` requests of one variant on /checkout, every `errorEvery`-th a 503. */
    record(variant: string, n: number, errorEvery = 0, seconds = 0.01) {
      const cell = gateway.flagVariant("/checkout", "checkout", variant);
      for (let i = 0; i < n; i++) gateway.recordFlag(cell, errorEvery > 0 && i % errorEvery === 0 ? 503 : 200, seconds);
    },
  };
}

const T0 = Date.parse("2026-11-20T09:00:00.000Z");
const MIN = 60_000;

describe("experiment results from the gateway's metrics", () => {
  it("adds the requests the gateway routed by the flag, summed over routes, with abandoned ones apart, after a fresh scrape", async () => {
    const g0 = gatewaySetup({ start: T0 });
    const experiments = g0.experiments();
    await g0.scrape(); // the baseline
    g0.at(T0 + MIN);
    await g0.flags.put("checkout", checkout, "test");
    expect((await experiments.results("checkout")).gateway).toBeUndefined();

    const { gateway } = g0;
    const on = [gateway.flagVariant("/checkout", "checkout", "on"), gateway.flagVariant("/api/checkout", "checkout", "on")];
    const off = gateway.flagVariant("/checkout", "checkout", "off");
    for (let i = 0; i < 300; i++) {
      gateway.recordFlag(on[i % 2]!, i % 10 === 0 ? 503 : 200, 0.2);
      gateway.recordFlag(off, 200, 0.004);
    }
    gateway.recordFlag(off, 499, 9);
    // Another flag's requests are not this one's.
    gateway.recordFlag(gateway.flagVariant("/", "banner", "on"), 500, 1);

    g0.at(T0 + 5 * MIN);
    const r = await experiments.results("checkout");
    expect(g0.scrapes).toBe(3);
    const g = r.gateway!;
    expect(g).toMatchObject({ mode: "sequential", startedAt: "2026-11-20T09:01:00.000Z", since: "2026-11-20T09:01:00.000Z" });
    expect(g.reason).toBeUndefined();
    expect(g.routes).toEqual(["/api/checkout", "/checkout"]);
    expect(g.variants.map((v) => [v.variant, v.requests, v.errors, v.abandoned])).toEqual([
      ["on", 300, 30, 0],
      ["off", 300, 0, 1],
    ]);
    const byVariant = Object.fromEntries(g.variants.map((v) => [v.variant, v]));
    expect(byVariant.on?.errorRatio).toBeCloseTo(0.1, 10);
    // 0.2 s falls in (0.1, 0.25], 0.004 s in (0.0025, 0.005]: interpolated inside the bucket.
    expect(byVariant.on?.p50).toBeCloseTo(0.175, 6);
    expect(byVariant.off?.p50).toBeGreaterThan(0.0025);
    expect(byVariant.off?.p50).toBeLessThanOrEqual(0.005);
    expect(g.comparisons[0]).toMatchObject({ variant: "on", control: "off", verdict: "control wins" });
    expect(g).toMatchObject({ verdict: "control wins", winner: "off" });
    expect(g.notes.join("\n")).toMatch(/counts requests, not users/);
  });

  it("gives a verdict over every request since the experiment's start when the store holds all of it, counting only from the split's last change", async () => {
    const g = gatewaySetup({ start: T0 });
    const experiments = g.experiments();
    await g.scrape();
    g.at(T0 + MIN);
    await g.flags.put("checkout", { ...checkout, targeting: { fractional: [["on", 10], ["off", 90]] } }, "test");
    // Under the first split: both variants fail a lot. Not part of the experiment as it stands.
    g.record("on", 100, 2);
    g.record("off", 900, 2);
    g.at(T0 + 5 * MIN);
    await g.scrape();
    // The ramp to 50/50 starts the experiment afresh; a later edit of the description does not.
    g.at(T0 + 10 * MIN);
    await g.flags.put("checkout", checkout, "test");
    g.at(T0 + 11 * MIN);
    await g.flags.put("checkout", { ...checkout, description: "the new checkout" }, "test");
    g.at(T0 + 30 * MIN);
    g.record("on", 2_000, 10); // 200 errors
    g.record("off", 2_000); // none
    g.at(T0 + 26 * 60 * MIN); // past a day: the store's 1-minute steps
    const r = (await experiments.results("checkout")).gateway!;
    expect(r).toMatchObject({ mode: "sequential", startedAt: "2026-11-20T09:10:00.000Z", since: "2026-11-20T09:10:00.000Z", verdict: "control wins", winner: "off" });
    expect(r.variants.map((v) => [v.variant, v.requests, v.errors])).toEqual([
      ["on", 2_000, 200],
      ["off", 2_000, 0],
    ]);
    expect(r.comparisons[0]?.difference?.low).toBeGreaterThan(0);
  });

  it("is descriptive, with no comparison and no verdict, when the metric store starts after the experiment (a control plane restart)", async () => {
    const g = gatewaySetup({ start: T0 });
    await g.flags.put("checkout", checkout, "test");
    // The control plane (and its in-memory store) starts an hour into the experiment.
    g.at(T0 + 60 * MIN);
    const experiments = g.experiments();
    await g.scrape();
    g.record("on", 2_000, 10);
    g.record("off", 2_000);
    g.at(T0 + 70 * MIN);
    const r = (await experiments.results("checkout", { alpha: 0.1 })).gateway!;
    expect(r.mode).toBe("descriptive");
    expect(r.reason).toBe("the metric store holds data only since 2026-11-20T10:00:00Z (it is kept in memory from the control plane's start), after the experiment started at 2026-11-20T09:00:00Z: no verdict");
    expect(r).toMatchObject({ startedAt: "2026-11-20T09:00:00.000Z", since: "2026-11-20T10:00:00.000Z", alpha: 0.1, comparisons: [] });
    expect(r.verdict).toBeUndefined();
    expect(r.winner).toBeUndefined();
    // Per variant what the store holds, with its Wilson interval at 1 - alpha.
    expect(r.variants.map((v) => [v.variant, v.requests, v.errors, v.errorRatio])).toEqual([
      ["on", 2_000, 200, 0.1],
      ["off", 2_000, 0, 0],
    ]);
    expect(r.variants[0]?.ci).toEqual(wilson(200, 2_000, normalQuantile(0.95)));
  });

  it("is descriptive once the experiment's start is older than the store keeps", async () => {
    const g = gatewaySetup({ start: T0, retention: [{ stepMs: 10_000, spanMs: 60 * MIN }] });
    const experiments = g.experiments();
    await g.scrape();
    g.at(T0 + MIN);
    await g.flags.put("checkout", checkout, "test");
    g.record("on", 500, 10);
    g.record("off", 500);
    g.at(T0 + 29 * MIN);
    await g.scrape();
    g.at(T0 + 30 * MIN);
    expect((await experiments.results("checkout")).gateway).toMatchObject({ mode: "sequential", verdict: "control wins" });
    g.at(T0 + 90 * MIN);
    g.record("on", 100, 10);
    g.record("off", 100);
    const r = (await experiments.results("checkout")).gateway!;
    expect(r).toMatchObject({ mode: "descriptive", reason: "the experiment started at 2026-11-20T09:01:00Z, longer ago than the metric store keeps (1 hour): no verdict", since: "2026-11-20T09:30:00.000Z" });
    expect(r.verdict).toBeUndefined();
    expect(r.comparisons).toEqual([]);
    // The hour the store still holds, from 09:30: not the requests scraped at 09:29.
    expect(r.variants.map((v) => [v.variant, v.requests, v.errors])).toEqual([
      ["on", 100, 10],
      ["off", 100, 0],
    ]);
  });

  it("counts across a gateway restart in the middle: the counter going down is a reset, and what it counted since is added", async () => {
    const g = gatewaySetup({ start: T0 });
    const experiments = g.experiments();
    await g.scrape();
    g.at(T0 + MIN);
    await g.flags.put("checkout", checkout, "test");
    g.record("on", 1_000, 10); // 100 errors
    g.record("off", 1_000);
    g.at(T0 + 10 * MIN);
    await g.scrape();
    g.restartGateway();
    g.record("on", 300, 10); // 30 errors: fewer than before, so the store sees a reset
    g.record("off", 400);
    g.at(T0 + 20 * MIN);
    await g.scrape();
    g.record("on", 700, 10); // 70 errors
    g.record("off", 600);
    g.at(T0 + 30 * MIN);
    const r = (await experiments.results("checkout")).gateway!;
    expect(r.mode).toBe("sequential");
    expect(r.variants.map((v) => [v.variant, v.requests, v.errors])).toEqual([
      ["on", 2_000, 200],
      ["off", 2_000, 0],
    ]);
    expect(r).toMatchObject({ verdict: "control wins", winner: "off" });
  });
});

describe("experimentStart", () => {
  const change = (at: string, before: FlagDefinition | null, after: FlagDefinition | null): FlagChange => ({
    seq: 1,
    at,
    actor: "test",
    kind: before === null ? "flag.created" : after === null ? "flag.deleted" : "flag.changed",
    revision: 1,
    before,
    after,
    diff: [],
  });
  const release: FlagDefinition = { ...checkout, type: "release" };

  it("is the newest change after which the flag was an experiment with its current assignment", () => {
    const history = [
      change("2026-11-20T12:00:00.000Z", { ...checkout, owner: "team-a" }, { ...checkout, owner: "team-b", metadata: { note: "x" } }),
      change("2026-11-20T11:00:00.000Z", checkout, { ...checkout, owner: "team-a" }),
      change("2026-11-20T10:00:00.000Z", release, checkout), // became an experiment
      change("2026-11-20T09:00:00.000Z", null, release),
    ];
    expect(experimentStart(history)?.at).toBe("2026-11-20T10:00:00.000Z");
    // A kill (state and targeting) or a changed split starts it again.
    expect(experimentStart([change("2026-11-20T13:00:00.000Z", checkout, { ...checkout, state: "DISABLED" }), ...history])?.at).toBe("2026-11-20T13:00:00.000Z");
    expect(experimentStart([change("2026-11-20T13:00:00.000Z", checkout, { ...checkout, targeting: { fractional: [["on", 1], ["off", 99]] } }), ...history])?.at).toBe(
      "2026-11-20T13:00:00.000Z",
    );
    // Only edits that assign no one differently: the start is not in this history.
    expect(experimentStart(history.slice(0, 2))).toBeUndefined();
  });
});
