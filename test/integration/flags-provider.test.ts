// The SDK's OpenFeature provider against a real control plane (HTTP, memory store): it serves
// from a local snapshot, hears changes over the stream, keeps serving when the control plane is
// gone (STALE), recovers when it is back, becomes READY when the control plane comes up after its
// initialization timed out, a kill switch reaches 100 connected providers, and its evaluation
// counts reach the control plane. (How fast the kill spreads: bench/flags-propagation.mjs.)
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ProviderEvents, ProviderStatus, OpenFeature } from "@openfeature/server-sdk";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir, waitFor } from "#test-support";
import { KeelsonFlagProvider } from "../../packages/sdk/src/flags.js";
import { createIdentity, type Identity } from "../../packages/sdk/src/identity.js";
import { createApiSecurity, createControlPlane, type ControlPlane } from "../../packages/platform/src/api/index.js";
import { createReconciler } from "../../packages/platform/src/delivery/index.js";
import { createMemoryDriver } from "../../packages/platform/src/runtime/index.js";
import { createMemoryStore, type Store } from "../../packages/platform/src/store/index.js";

const silent = { info() {}, warn() {}, error() {} };
const checkout = { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", safeVariant: "off", targeting: { fractional: [["on", 50], ["off", 50]] } };

interface Plane {
  cp: ControlPlane;
  url: string;
  /** An admin API token (kept in the store, so it outlives a restart on the same store). */
  token: string;
  stop(): Promise<void>;
}

/** A control plane over `store`; pass the token of an earlier one on the same store to keep using it. */
async function startControlPlane(store: Store, dir: string, port: number, token?: string): Promise<Plane> {
  const driver = createMemoryDriver();
  const reconciler = createReconciler({ store, driver, project: "shop", stateDir: dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
  const security = await createApiSecurity({ store, project: "shop", stateDir: dir });
  token ??= (await security.tokens.create({ name: "test", role: "admin", actor: "test" })).token;
  const cp = createControlPlane({ project: "shop", dir, stateDir: dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
  const url = await cp.listen("127.0.0.1", port);
  return {
    cp,
    url,
    token,
    async stop() {
      await reconciler.stop();
      await cp.close();
    },
  };
}

/** What the providers send as their identity: the plane's API token, from a file as a replica's would be. */
async function identityOf(plane: Plane, dir: string): Promise<Identity> {
  const identityFile = join(dir, "identity.jwt");
  await writeFile(identityFile, plane.token);
  return createIdentity({ identityFile, tlsDir: "" });
}

function api(plane: Plane, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${plane.url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${plane.token}` } });
}

async function put(plane: Plane, key: string, body: unknown): Promise<void> {
  const res = await api(plane, `/v1/flags/${key}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  expect(res.status, await res.clone().text()).toBe(200);
}

describe("KeelsonFlagProvider", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });

  it("evaluates locally, hears changes, goes STALE without the control plane and recovers when it is back", async () => {
    const tmp = await makeTempDir("keelson-flags-provider-");
    cleanups.push(tmp.cleanup);
    const store = createMemoryStore();
    const port = await freePort();
    let plane = await startControlPlane(store, tmp.dir, port);
    cleanups.push(() => plane.stop());
    await put(plane, "new-checkout", checkout);

    const provider = new KeelsonFlagProvider({ url: plane.url, pollMs: 200, reconnectMs: 100, identity: await identityOf(plane, tmp.dir) });
    const events: string[] = [];
    for (const e of [ProviderEvents.Ready, ProviderEvents.ConfigurationChanged, ProviderEvents.Stale, ProviderEvents.Error]) provider.events.addHandler(e, () => events.push(e));
    await OpenFeature.setProviderAndWait("keelson-test", provider);
    cleanups.push(() => OpenFeature.clearProviders());
    const client = OpenFeature.getClient("keelson-test");

    const users = Array.from({ length: 100 }, (_, i) => `user-${i}`);
    const first = await Promise.all(users.map((u) => client.getBooleanDetails("new-checkout", false, { targetingKey: u })));
    expect(first.every((d) => d.reason === "SPLIT" && d.errorCode === undefined)).toBe(true);
    const on = first.filter((d) => d.value).length;
    expect(on).toBeGreaterThan(30);
    expect(on).toBeLessThan(70);
    // A wrong type or a missing flag is the caller's default with an error code, never a throw.
    expect(await client.getStringDetails("new-checkout", "x", { targetingKey: "u" })).toMatchObject({ value: "x", errorCode: "TYPE_MISMATCH" });
    expect(await client.getBooleanDetails("nope", true, { targetingKey: "u" })).toMatchObject({ value: true, errorCode: "FLAG_NOT_FOUND" });

    // A change arrives over the stream.
    const rev = provider.revision as number;
    await put(plane, "new-checkout", { ...checkout, targeting: undefined, defaultVariant: "on" });
    await waitFor(() => (provider.revision ?? 0) > rev, { what: "the change to reach the provider" });
    expect(events).toContain(ProviderEvents.ConfigurationChanged);
    expect(await client.getBooleanValue("new-checkout", false, { targetingKey: "user-1" })).toBe(true);

    // The control plane goes away: the provider says STALE and keeps serving its snapshot.
    await plane.stop();
    await waitFor(() => events.includes(ProviderEvents.Stale), { what: "STALE" });
    const cached = await client.getBooleanDetails("new-checkout", false, { targetingKey: "user-1" });
    expect(cached.value).toBe(true);
    expect(cached.errorCode).toBeUndefined();

    // Back (same store, same port, a change made meanwhile): READY again with the newer set.
    plane = await startControlPlane(store, tmp.dir, port, plane.token);
    await put(plane, "new-checkout", { ...checkout, targeting: undefined, defaultVariant: "off" });
    await waitFor(async () => (await client.getBooleanValue("new-checkout", true, { targetingKey: "user-1" })) === false, { timeoutMs: 15_000, what: "the provider to catch up after the restart" });
    expect(events.lastIndexOf(ProviderEvents.Ready)).toBeGreaterThan(events.indexOf(ProviderEvents.Stale));
  }, 60_000);

  it("becomes READY when the control plane comes up after initialize() timed out (cold start), and serves its flags", async () => {
    const tmp = await makeTempDir("keelson-flags-cold-");
    cleanups.push(tmp.cleanup);
    const store = createMemoryStore();
    // The flag is in the store before the control plane on the provider's port ever starts.
    const seeding = await startControlPlane(store, tmp.dir, 0);
    await put(seeding, "new-checkout", { ...checkout, targeting: undefined, defaultVariant: "on" });
    const identity = await identityOf(seeding, tmp.dir);
    await seeding.stop();

    const port = await freePort();
    const provider = new KeelsonFlagProvider({ url: `http://127.0.0.1:${port}`, initTimeoutMs: 300, reconnectMs: 100, pollMs: 100, identity });
    cleanups.push(() => OpenFeature.clearProviders());
    await expect(OpenFeature.setProviderAndWait("keelson-cold", provider)).rejects.toThrow(/no flag snapshot from http:\/\/127\.0\.0\.1:\d+ within 300 ms/);
    const client = OpenFeature.getClient("keelson-cold");
    expect(client.providerStatus).toBe(ProviderStatus.ERROR);
    let readies = 0;
    client.addHandler(ProviderEvents.Ready, () => readies++);
    expect(await client.getBooleanDetails("new-checkout", false, { targetingKey: "u" })).toMatchObject({ value: false, errorCode: "PROVIDER_NOT_READY" });

    const plane = await startControlPlane(store, tmp.dir, port, seeding.token);
    cleanups.push(() => plane.stop());
    await waitFor(() => client.providerStatus === ProviderStatus.READY, { what: "the provider to become READY" });
    expect(readies).toBe(1);
    const details = await client.getBooleanDetails("new-checkout", false, { targetingKey: "u" });
    expect(details).toMatchObject({ value: true, reason: "STATIC" });
    expect(details.errorCode).toBeUndefined();
  }, 60_000);

  it("a kill switch reaches 100 connected providers: every client evaluates the flag off", async () => {
    const tmp = await makeTempDir("keelson-flags-fanout-");
    cleanups.push(tmp.cleanup);
    const plane = await startControlPlane(createMemoryStore(), tmp.dir, 0);
    cleanups.push(() => plane.stop());
    await put(plane, "new-checkout", { ...checkout, targeting: undefined, defaultVariant: "on" });
    const identity = await identityOf(plane, tmp.dir);
    const domains = Array.from({ length: 100 }, (_, i) => `keelson-fanout-${i}`);
    cleanups.push(() => OpenFeature.clearProviders());
    await Promise.all(domains.map((d) => OpenFeature.setProviderAndWait(d, new KeelsonFlagProvider({ url: plane.url, identity }))));
    const clients = domains.map((d) => OpenFeature.getClient(d));
    const values = () => Promise.all(clients.map((c) => c.getBooleanValue("new-checkout", false, { targetingKey: "u" })));
    expect(await values()).toEqual(Array.from({ length: 100 }, () => true));

    const res = await api(plane, "/v1/flags/new-checkout/kill", { method: "POST" });
    expect(res.status).toBe(200);
    // The flag's default here is true: only the killed definition (safeVariant "off") gives false.
    await waitFor(async () => (await Promise.all(clients.map((c) => c.getBooleanValue("new-checkout", true, { targetingKey: "u" })))).every((v) => v === false), {
      what: "all 100 clients to evaluate the kill",
    });
    const killed = await Promise.all(clients.map((c) => c.getBooleanDetails("new-checkout", true, { targetingKey: "u" })));
    expect(killed.every((d) => d.value === false && d.reason === "STATIC" && d.errorCode === undefined)).toBe(true);
    expect(clients.every((c) => c.providerStatus === ProviderStatus.READY)).toBe(true);
  }, 60_000);

  it("counts evaluations of every flag type and sends them with its batches; the control plane keeps the totals", async () => {
    const tmp = await makeTempDir("keelson-flags-usage-");
    cleanups.push(tmp.cleanup);
    const plane = await startControlPlane(createMemoryStore(), tmp.dir, 0);
    cleanups.push(() => plane.stop());
    await put(plane, "new-checkout", checkout);
    await put(plane, "breaker", { state: "ENABLED", type: "kill-switch", variants: { on: true, off: false }, defaultVariant: "on" });
    await put(plane, "unused", { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" });
    const provider = new KeelsonFlagProvider({ url: plane.url, experiments: { flushMs: 20 }, identity: await identityOf(plane, tmp.dir) });
    await provider.initialize();
    cleanups.push(() => provider.onClose());
    for (let i = 0; i < 250; i++) await provider.resolveBooleanEvaluation("new-checkout", false, { targetingKey: `u${i}` });
    for (let i = 0; i < 3; i++) await provider.resolveBooleanEvaluation("breaker", false, {});
    // A flag that does not exist is not counted; a type mismatch of one that does is.
    await provider.resolveBooleanEvaluation("nope", false, {});
    await provider.resolveStringEvaluation("breaker", "x", {});
    const usage = async () => ((await (await api(plane, "/v1/flags/usage")).json()) as { flags: Record<string, { evaluations: number; lastEvaluatedAt: string }> }).flags;
    await waitFor(async () => (await usage()).breaker?.evaluations === 4, { what: "the counts at the control plane" });
    const flags = await usage();
    expect(Object.keys(flags).sort()).toEqual(["breaker", "new-checkout"]);
    expect(flags["new-checkout"]?.evaluations).toBe(250);
  }, 60_000);
});
