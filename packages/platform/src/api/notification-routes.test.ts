// The notification endpoints through the real control plane: who may list, retry and test, the
// answers to bad queries, the audit records of changes, and 404 without a notifier.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { createNotifier, saveTeams, type NotificationDelivery, type Notifier } from "../catalog/index.js";
import { createReconciler, type Reconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
teams:
  commerce: { notifications: [{ url: "http://hooks.test/services/T0/B0/secretWXYZ", format: slack }] }
notifications: { webhooks: ["http://hooks.test/down"], attempts: 1 }
services:
  orders: { owner: commerce, path: orders, start: node main.js, replicas: 0 }
`;

describe("notification endpoints", () => {
  let store: Store;
  let reconciler: Reconciler;
  let notifier: Notifier;
  let cp: ControlPlane;
  let bare: ControlPlane;
  let url: string;
  let bareUrl: string;
  let admin: string;
  let viewer: string;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };
  // The project's receiver is down; the team's Slack takes everything.
  const fetch = (async (input: string | URL | Request) => new Response(null, { status: String(input).endsWith("/down") ? 500 : 200 })) as typeof globalThis.fetch;

  const call = (method: string, path: string, token: string, base = url) => globalThis.fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-notifications-");
    cleanup = tmp.cleanup;
    store = createMemoryStore();
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: [{ project: "shop", name: "orders", spec: JSON.parse(JSON.stringify(manifest.services.orders)) as Record<string, unknown>, release: undefined }],
      remove: [],
      events: [],
    });
    await saveTeams(store, "shop", manifest, new Date().toISOString());
    reconciler = createReconciler({ store, driver: createMemoryDriver(), project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    notifier = createNotifier({ store, project: "shop", fetch });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    admin = (await security.tokens.create({ name: "ops", role: "admin", actor: "test" })).token;
    viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver: createMemoryDriver(), reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, notifier });
    url = await cp.listen("127.0.0.1", 0);
    bare = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver: createMemoryDriver(), reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    bareUrl = await bare.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await notifier?.stop({ graceMs: 0 });
    await cp?.close();
    await bare?.close();
    await cleanup();
  });

  it("sends a test to every webhook (admins only, audited), lists deliveries to viewers, and re-queues only dead ones", async () => {
    expect((await call("POST", "/v1/notifications/test", viewer)).status).toBe(403);
    const res = await call("POST", "/v1/notifications/test", admin);
    expect(res.status).toBe(202);
    const sent = ((await res.json()) as { deliveries: NotificationDelivery[] }).deliveries;
    expect(sent.map((d) => `${d.to} ${d.format} ${d.target}`).sort()).toEqual(["project json http://hooks.test/…down", "team:commerce slack http://hooks.test/…WXYZ"]);
    await notifier.idle();

    const listed = await call("GET", "/v1/notifications", viewer);
    expect(listed.status).toBe(200);
    const text = await listed.text();
    expect(text).not.toContain("secretWXYZ");
    const all = (JSON.parse(text) as { deliveries: NotificationDelivery[] }).deliveries;
    expect(all.map((d) => d.state).sort()).toEqual(["dead", "delivered"]);
    const dead = ((await (await call("GET", "/v1/notifications?state=dead&limit=10", viewer)).json()) as { deliveries: NotificationDelivery[] }).deliveries;
    expect(dead).toEqual([expect.objectContaining({ to: "project", attempts: 1, lastError: "answered 500" })]);
    const id = dead[0]?.id as string;
    expect(await (await call("GET", `/v1/notifications/${id}`, viewer)).json()).toMatchObject({ id, state: "dead" });

    expect((await call("POST", `/v1/notifications/${id}/retry`, viewer)).status).toBe(403);
    const retried = await call("POST", `/v1/notifications/${id}/retry`, admin);
    expect(retried.status).toBe(202);
    expect(await retried.json()).toMatchObject({ id, state: "pending", attempts: 0, requeued: { by: "user:ops" } });
    await notifier.idle();
    const delivered = all.find((d) => d.state === "delivered") as NotificationDelivery;
    const conflict = await call("POST", `/v1/notifications/${delivered.id}/retry`, admin);
    expect(conflict.status).toBe(409);
    expect(((await conflict.json()) as { error: { message: string } }).error.message).toMatch(/was delivered at .*; only a dead one can be retried/);
    expect((await call("POST", "/v1/notifications/ntf-none/retry", admin)).status).toBe(404);

    const audit = (await store.listEvents({ kinds: ["audit"] })).map((e) => `${String(e.details.action)} ${String(e.details.target)} ${String(e.details.status)}`);
    expect(audit).toEqual(
      expect.arrayContaining([
        "POST /v1/notifications/test /v1/notifications/test 403",
        "POST /v1/notifications/test /v1/notifications/test 202",
        `POST /v1/notifications/:id/retry notifications/${id} 403`,
        `POST /v1/notifications/:id/retry notifications/${id} 202`,
        `POST /v1/notifications/:id/retry notifications/${delivered.id} 409`,
      ]),
    );
  });

  it("refuses bad queries, naming the parameter, and answers 404 without a notifier", async () => {
    const bad = await call("GET", "/v1/notifications?state=lost", viewer);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toBe('state: expected one of pending, delivered, dead, got "lost"');
    expect((await call("GET", "/v1/notifications?limit=0", viewer)).status).toBe(400);
    expect((await call("GET", "/v1/notifications/ntf-none", viewer)).status).toBe(404);
    const none = await call("GET", "/v1/notifications", viewer, bareUrl);
    expect(none.status).toBe(404);
    expect(((await none.json()) as { error: { message: string } }).error.message).toBe("this control plane runs without notifications");
  });
});
