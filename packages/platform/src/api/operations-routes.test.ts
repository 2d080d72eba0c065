// The operations endpoints through the real control plane: chaos experiments (who may start
// them, faults reaching the routing table, stopping, the control-plane injection's record), the
// autoscaler's decisions and waking a service scaled to zero, the refusal to scale an autoscaled
// service by hand, and the store's integrity check.
import type { KeelsonEvent, RoutingTable } from "@keelson/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { createAutoscaler, type Autoscaler, type ServiceLoad } from "../autoscale/index.js";
import { createReconciler, type Reconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createChaosController, createMemoryDriver, type ChaosController, type MemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
services:
  orders:
    owner: commerce
    path: orders
    start: node main.js
    replicas: 2
  search:
    owner: web
    path: search
    start: node main.js
    replicas: 0
    autoscale: { min: 0, max: 3, scaleToZero: { holdTimeout: 5s } }
`;

const RELEASES = { orders: "r-aaaaaaaaaaaa", search: "r-bbbbbbbbbbbb" } as const;

describe("operations endpoints", () => {
  let cp: ControlPlane;
  let url: string;
  let store: Store;
  let driver: MemoryDriver;
  let reconciler: Reconciler;
  let chaos: ChaosController;
  let autoscaler: Autoscaler;
  let cleanup: () => Promise<void>;
  let admin: string;
  let webDeployer: string;
  let viewer: string;
  let load: ServiceLoad | undefined;
  const silent = { info() {}, warn() {}, error() {} };

  const call = (method: string, path: string, token: string, body?: unknown) =>
    fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-ops-");
    cleanup = tmp.cleanup;
    store = createMemoryStore();
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: RELEASES[name as keyof typeof RELEASES] })),
      remove: [],
      events: [],
    });
    for (const [service, id] of Object.entries(RELEASES)) {
      await store.putRelease({ id, project: "shop", service, sourceHash: "s", configHash: "c", gitCommit: undefined, createdAt: new Date().toISOString(), details: {} });
    }
    driver = createMemoryDriver();
    reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent, convergeIntervalMs: 100 });
    reconciler.start();
    await reconciler.converge();
    await waitFor(() => (driver.list().filter((r) => r.state === "ready").length === 2 ? true : undefined));
    chaos = createChaosController({ store, project: "shop", driver, services: async () => ["orders", "search"] });
    autoscaler = createAutoscaler({
      store,
      project: "shop",
      load: { read: async () => load },
      scale: (service, replicas) => reconciler.scale(service, replicas, "autoscaler", { autoscaler: true }),
    });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    admin = (await security.tokens.create({ name: "ops", role: "admin", actor: "test" })).token;
    webDeployer = (await security.tokens.create({ name: "web-ci", role: "deployer", teams: ["web"], actor: "test" })).token;
    viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, chaos, autoscaler });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await chaos?.close();
    await autoscaler?.stop();
    await reconciler?.stop();
    await cp?.close();
    await Promise.all(driver.list().map((r) => driver.stop(r.spec.id)));
    await cleanup();
  });

  it("lets only the owner team's deployers and admins start an experiment on a service, and only admins on every service", async () => {
    const body = { kind: "kill", durationMs: 1_000, intervalMs: 60_000 };
    expect((await call("POST", "/v1/services/orders/chaos", webDeployer, body)).status).toBe(403);
    expect((await call("POST", "/v1/chaos", webDeployer, body)).status).toBe(403);
    expect((await call("POST", "/v1/services/orders/chaos", viewer, body)).status).toBe(403);
    const bad = await call("POST", "/v1/services/orders/chaos", admin, { kind: "kill", durationMs: 0 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/^durationMs:/);
    const res = await call("POST", "/v1/services/orders/chaos", admin, body);
    expect(res.status).toBe(201);
    const x = (await res.json()) as { id: string; injections: number; recent: Array<{ replica: string }> };
    expect(x.injections).toBe(1);
    expect(x.recent[0]?.replica).toMatch(/^orders-/);
    const listed = (await (await call("GET", "/v1/chaos", viewer)).json()) as { experiments: Array<{ id: string }> };
    expect(listed.experiments.map((e) => e.id)).toContain(x.id);
    const audit = await store.listEvents({ kinds: ["audit"] });
    expect(audit.some((e) => e.details.action === "POST /v1/services/:name/chaos" && e.details.status === 403)).toBe(true);
  });

  it("puts a fault in the routing table while it runs and takes it out when stopped", async () => {
    const res = await call("POST", "/v1/services/orders/chaos", admin, { kind: "error", durationMs: 60_000, share: 0.5, status: 500 });
    expect(res.status).toBe(201);
    const x = (await res.json()) as { id: string; endsAt: string };
    const faultsOf = (t: RoutingTable) => t.services.find((s) => s.name === "orders")?.faults;
    await waitFor(async () => (faultsOf(await cp.routing.current())?.length === 1 ? true : undefined));
    expect(faultsOf(await cp.routing.current())).toEqual([{ id: x.id, share: 0.5, abortStatus: 500, until: x.endsAt }]);
    expect((await call("DELETE", `/v1/services/search/chaos/${x.id}`, admin)).status).toBe(404);
    const stopped = await call("DELETE", `/v1/services/orders/chaos/${x.id}`, admin);
    expect(((await stopped.json()) as { state: string }).state).toBe("stopped");
    await waitFor(async () => (faultsOf(await cp.routing.current()) === undefined ? true : undefined));
  });

  it("records a control-plane injection (admins only) before the CLI stops the control plane, and checks its signal", async () => {
    expect((await call("POST", "/v1/chaos", webDeployer, { kind: "controlplane" })).status).toBe(403);
    expect((await call("POST", "/v1/chaos", viewer, { kind: "controlplane" })).status).toBe(403);
    const bad = await call("POST", "/v1/chaos", admin, { kind: "controlplane", signal: "SIGHUP" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toBe('signal: expected "SIGKILL" or "SIGTERM", got "SIGHUP"');
    const extra = await call("POST", "/v1/chaos", admin, { kind: "controlplane", durationMs: 1_000 });
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as { error: { message: string } }).error.message).toMatch(/^durationMs: not an option of a controlplane injection/);
    const before = (await store.listEvents({ kinds: ["chaos.injected"] })).length;

    const res = await call("POST", "/v1/chaos", admin, { kind: "controlplane", signal: "SIGTERM" });
    expect(res.status).toBe(202);
    // The pid the CLI will signal is this process: the control plane answering.
    expect(await res.json()).toEqual({ kind: "controlplane", pid: process.pid, signal: "SIGTERM" });
    const injected = await store.listEvents({ kinds: ["chaos.injected"] });
    expect(injected.length).toBe(before + 1);
    expect(injected[injected.length - 1]).toMatchObject({ subject: "project/shop", actor: "user:ops", details: { kind: "controlplane", pid: process.pid, signal: "SIGTERM" } });
    // Without a signal: SIGKILL, the CLI's default. Nothing was stopped here: this endpoint only records.
    expect(await (await call("POST", "/v1/chaos", admin, { kind: "controlplane" })).json()).toMatchObject({ signal: "SIGKILL" });
    const audit = await waitFor(async () => {
      const list = (await store.listEvents({ kinds: ["audit"] })).filter((e) => e.details.action === "POST /v1/chaos");
      return list.some((e) => e.details.status === 202) ? list : undefined;
    });
    expect(audit.find((e) => e.details.status === 202)?.details.after).toEqual({ kind: "controlplane", pid: process.pid, signal: "SIGTERM" });
  });

  it("marks a service that may scale to zero for activation, and wakes it when the gateway asks", async () => {
    const table = await cp.routing.current();
    expect(table.services.find((s) => s.name === "search")?.activation).toEqual({ holdTimeoutMs: 5_000 });
    expect(table.services.find((s) => s.name === "orders")?.activation).toBeUndefined();
    const res = await call("POST", "/v1/services/search/activate", viewer);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ service: "search", from: 0, to: 1 });
    await waitFor(() => (driver.list().some((r) => r.spec.service === "search" && r.state === "ready") ? true : undefined));
    const view = (await (await call("GET", "/v1/services/search/autoscale", viewer)).json()) as { events: KeelsonEvent[] };
    expect(view.events.map((e) => e.kind)).toContain("service.activated");
    expect((await call("POST", "/v1/services/nope/activate", viewer)).status).toBe(404);
  });

  it("refuses to scale an autoscaled service by hand, naming its bounds", async () => {
    const res = await call("POST", "/v1/services/search/scale", admin, { replicas: 3 });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("search is autoscaled (autoscale.min 0, max 3)");
    expect((await call("POST", "/v1/services/orders/scale", admin, { replicas: 3 })).status).toBe(202);
  });

  it("answers the store's integrity check", async () => {
    const report = (await (await call("GET", "/v1/integrity", viewer)).json()) as { ok: boolean; problems: string[]; checked: { services: number } };
    expect(report).toMatchObject({ ok: true, problems: [], checked: { services: 2 } });
  });
});
