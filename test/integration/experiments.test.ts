// Experiments end to end: a real control plane (HTTP, memory store), the SDK's OpenFeature
// provider recording exposures for an experiment flag and conversions from client.track, and
// the results endpoint computing lift and verdict, and catching a deliberately skewed split.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OpenFeature, type Client } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { compileFlagSet, type FlagDefinition } from "@keelson/protocol";
import { KeelsonFlagProvider } from "../../packages/sdk/src/flags.js";
import { createIdentity } from "../../packages/sdk/src/identity.js";
import { createApiSecurity, createControlPlane, type ControlPlane } from "../../packages/platform/src/api/index.js";
import { formatExperimentResults } from "../../packages/platform/src/cli/experiment-commands.js";
import { createReconciler } from "../../packages/platform/src/delivery/index.js";
import type { ExperimentResults } from "../../packages/platform/src/flags/index.js";
import { createMemoryDriver } from "../../packages/platform/src/runtime/index.js";
import { createMemoryStore } from "../../packages/platform/src/store/index.js";

const silent = { info() {}, warn() {}, error() {} };
const experiment: FlagDefinition = { state: "ENABLED", type: "experiment", variants: { on: true, off: false }, defaultVariant: "off", targeting: { fractional: [["on", 50], ["off", 50]] } };

/** mulberry32, seeded. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded choice of exactly `share` of `users`. */
function pick(users: string[], share: number, random: () => number): Set<string> {
  const shuffled = [...users];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j] as string, shuffled[i] as string];
  }
  return new Set(shuffled.slice(0, Math.round(users.length * share)));
}

describe("experiments", () => {
  let cp: ControlPlane;
  let url: string;
  let client: Client;
  let provider: KeelsonFlagProvider;
  let cleanup: () => Promise<void>;
  let stopReconciler: () => Promise<void>;
  let token: string;

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  const results = async (flag: string, query = "") => (await call("GET", `/v1/experiments/${flag}/results${query}`)).body as unknown as ExperimentResults;

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-experiments-");
    cleanup = tmp.cleanup;
    const store = createMemoryStore();
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    stopReconciler = () => reconciler.stop();
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    ({ token } = await security.tokens.create({ name: "test", role: "admin", actor: "test" }));
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
    for (const key of ["new-checkout", "skewed-checkout"]) expect((await call("PUT", `/v1/flags/${key}`, experiment)).status).toBe(200);
    // The provider sends what a replica would send as its identity: here the test's API token.
    const identityFile = join(tmp.dir, "identity.jwt");
    await writeFile(identityFile, token);
    provider = new KeelsonFlagProvider({ url, experiments: { flushMs: 50 }, log: silent, identity: createIdentity({ identityFile, tlsDir: "" }) });
    await OpenFeature.setProviderAndWait("keelson-experiments", provider);
    client = OpenFeature.getClient("keelson-experiments");
  });
  afterAll(async () => {
    await OpenFeature.clearProviders();
    await stopReconciler();
    await cp.close();
    await cleanup();
  });

  it("reports per-variant counts, a lift whose always-valid interval excludes 0, and 'treatment wins'", async () => {
    // 4,000 users: with 2,000 the expected difference (4 points, z ≈ 3.0) sits right on the
    // always-valid boundary (≈ 3.0 standard errors at best), so the verdict would be a coin flip.
    const users = Array.from({ length: 4_000 }, (_, i) => `user-${i}`);
    const arms: Record<string, string[]> = { on: [], off: [] };
    const t0 = performance.now();
    for (const u of users) {
      const d = await client.getBooleanDetails("new-checkout", false, { targetingKey: u });
      expect(d.reason).toBe("SPLIT");
      arms[d.variant as string]?.push(u);
      // Repeated evaluations are one exposure.
      await client.getBooleanValue("new-checkout", false, { targetingKey: u });
    }
    console.log(`[experiments] ${users.length * 2} evaluations of an experiment flag: ${(((performance.now() - t0) * 1000) / (users.length * 2)).toFixed(1)} µs each, exposures recorded on the side`);
    const random = rng(7);
    const converters = { on: pick(arms.on as string[], 0.12, random), off: pick(arms.off as string[], 0.08, random) };
    for (const u of [...converters.on, ...converters.off]) client.track("purchase", { targetingKey: u }, { value: 20 });
    // A second purchase counts as an event but not as another converting user; a stranger's not at all.
    for (const u of [...converters.on].slice(0, 10)) client.track("purchase", { targetingKey: u }, { value: 5 });
    client.track("purchase", { targetingKey: "never-exposed" });
    client.track("purchase", {}); // no targetingKey: skipped

    const expected = { on: { users: arms.on?.length, conversions: converters.on.size }, off: { users: arms.off?.length, conversions: converters.off.size } };
    expect(Math.abs((expected.on.users ?? 0) - 2_000)).toBeLessThan(150);
    let r = await results("new-checkout", "?metric=purchase");
    await waitFor(
      async () => {
        r = await results("new-checkout", "?metric=purchase");
        return r.variants.reduce((n, v) => n + v.conversions, 0) === converters.on.size + converters.off.size && r.unattributed === 1;
      },
      { what: "every exposure and conversion to reach the control plane" },
    );
    expect(provider.experimentEvents).toMatchObject({ queued: 0, dropped: 0 });
    const on = r.variants.find((v) => v.variant === "on");
    const off = r.variants.find((v) => v.variant === "off");
    expect({ on: { users: on?.users, conversions: on?.conversions }, off: { users: off?.users, conversions: off?.conversions } }).toEqual(expected);
    expect(on).toMatchObject({ events: converters.on.size + 10, valueSum: converters.on.size * 20 + 50 });
    expect(on?.rate).toBeCloseTo(0.12, 3);
    expect(off?.rate).toBeCloseTo(0.08, 3);
    expect(r).toMatchObject({ flag: "new-checkout", metric: "purchase", control: "off", weightsFrom: "fractional", verdict: "treatment wins", winner: "on" });
    const lift = r.comparisons[0];
    expect(lift?.variant).toBe("on");
    expect(lift?.absolute?.estimate).toBeCloseTo(0.04, 2);
    expect(lift?.absolute?.low).toBeGreaterThan(0);
    expect(lift?.relative?.low).toBeGreaterThan(0);
    expect(r.srm).toMatchObject({ checked: true, broken: false });
    // Without ?metric the only event seen is taken.
    expect((await results("new-checkout")).metric).toBe("purchase");

    const text = formatExperimentResults(r);
    console.log(text);
    expect(text).toMatch(/^on\s+\d+\s+\d+\s+12\.\d\d%/m);
    expect(text).toMatch(/verdict: treatment wins \(on\)/);
    expect(text).toMatch(/sample ratio: χ² = [\d.]+ \(df 1\), p = [\d.]+, expected on 50\.0% \/ off 50\.0% \(fractional\) ok/);
  }, 60_000);

  it("calls an experiment broken when exposures of one variant go missing (sample ratio mismatch)", async () => {
    // The same 50/50 split over 10,000 users, but a fifth of those served "off" are never exposed
    // (as when one variant's page fails before the flag is evaluated): about 55.6% land on "on".
    const local = compileFlagSet({ flags: { "skewed-checkout": experiment } });
    const random = rng(99);
    const counts = { on: 0, off: 0 };
    for (let i = 0; i < 10_000; i++) {
      const u = `visitor-${i}`;
      const variant = local.evaluate("skewed-checkout", { targetingKey: u }).variant as "on" | "off";
      if (variant === "off" && random() < 0.2) continue;
      const d = await client.getBooleanDetails("skewed-checkout", false, { targetingKey: u });
      expect(d.variant).toBe(variant);
      counts[variant]++;
    }
    let r = await results("skewed-checkout");
    await waitFor(
      async () => {
        r = await results("skewed-checkout");
        return r.variants.reduce((n, v) => n + v.users, 0) === counts.on + counts.off;
      },
      { what: "the exposures to reach the control plane" },
    );
    expect(r.srm).toMatchObject({ checked: true, broken: true, df: 1 });
    expect(r.srm.p).toBeLessThan(0.001);
    expect(counts.on / (counts.on + counts.off)).toBeGreaterThan(0.54);
    expect(r.verdict).toBe("broken: sample ratio mismatch");
    expect(r.notes[0]).toMatch(/users per variant do not match the split \(on 50\.0%, off 50\.0%\)/);
    const text = formatExperimentResults(r);
    expect(text).toMatch(/MISMATCH \(p < 0\.001\)/);
    expect(text).toMatch(/verdict: broken: sample ratio mismatch/);
  }, 60_000);

  it("refuses bad events with the field named, and bad queries", async () => {
    const bad = await call("POST", "/v1/experiments/events", { events: [{ type: "exposure", flag: "new-checkout", variant: "on", targetingKey: "u" }, { type: "conversion", event: "purchase", targetingKey: 42 }] });
    expect(bad.status).toBe(400);
    expect((bad.body.error as { message: string }).message).toBe("events.1.targetingKey: expected the user's targetingKey (a string)");
    const tooMany = await call("POST", "/v1/experiments/events", { events: Array.from({ length: 1_001 }, () => ({ type: "conversion", event: "e", targetingKey: "u" })) });
    expect((tooMany.body.error as { message: string }).message).toBe("events: expected at most 1000 events per request");
    const huge = await call("POST", "/v1/experiments/events", JSON.stringify({ events: [], pad: "x".repeat(1_100_000) }));
    expect(huge.status).toBe(400);
    expect((huge.body.error as { message: string }).message).toMatch(/request body exceeds/);
    expect((await call("POST", "/v1/experiments/events", { events: [{ type: "click" }] })).body.error).toMatchObject({ message: 'events.0.type: expected type "exposure" or "conversion"' });
    const ok = await call("POST", "/v1/experiments/events", { events: [{ type: "exposure", flag: "no-such-flag", variant: "on", targetingKey: "u" }] });
    expect(ok).toMatchObject({ status: 200, body: { accepted: 0, ignored: { notAnExperiment: 1 } } });

    expect((await call("GET", "/v1/experiments/new-checkout/results?control=maybe")).body.error).toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT", message: expect.stringMatching(/^control: /) });
    expect((await call("GET", "/v1/experiments/new-checkout/results?alpha=2")).body.error).toMatchObject({ message: expect.stringMatching(/^alpha: /) });
    expect((await call("GET", "/v1/experiments/missing/results")).status).toBe(404);
  });
});
