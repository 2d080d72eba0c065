import { ActivationSchema, DEFAULT_SERVICE_POLICY, RoutingTableSchema, type FlagSet, type RoutingTable } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import { parseManifest } from "../manifest/index.js";
import { createMemoryStore } from "../store/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { activationOf, createRoutingPublisher } from "./routing-publisher.js";
import { writeTrafficSplit } from "./traffic-splits.js";

const yaml = `project: shop
services:
  orders:
    owner: web
    path: orders
    start: node main.js
    routes:
      - path: /api/orders
        rateLimit: { rps: 5 }
        fallback: { body: { orders: [] } }
      - path: /api/checkout
        flag:
          key: checkout-experiment
          context: { targetingKey: { header: x-user-id } }
          variants: { treatment: { service: payments } }
    resilience: { timeout: 2s, loadBalancer: round-robin }
  payments:
    owner: web
    path: payments
    start: node main.js
`;

const flagSet = (treatment: number): FlagSet => ({
  flags: {
    "checkout-experiment": { state: "ENABLED", variants: { control: false, treatment: true }, defaultVariant: "control", targeting: { fractional: [["control", 100 - treatment], ["treatment", treatment]] } },
    unrelated: { state: "ENABLED", variants: { on: true }, defaultVariant: "on" },
  },
});

async function setup(flags?: () => Promise<{ revision: number; set: FlagSet }>, ready?: Promise<unknown>) {
  const store = createMemoryStore();
  const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
  await store.applyDesiredState({
    project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
    upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: "r-aaaaaaaaaaaa" })),
    remove: [],
    events: [],
  });
  for (const id of ["r-aaaaaaaaaaaa", "r-bbbbbbbbbbbb"]) {
    await store.putRelease({ id, project: "shop", service: "orders", sourceHash: id, configHash: id, gitCommit: undefined, createdAt: new Date().toISOString(), details: {} });
  }
  const publisher = createRoutingPublisher({ store, driver: createMemoryDriver(), project: "shop", ...(flags ? { flags } : {}), ...(ready ? { ready } : {}) });
  return { store, publisher };
}

describe("routing publisher", () => {
  it("on an instance that follows, serves the table the leader stored, telling subscribers only of newer ones", async () => {
    const { store } = await setup();
    const announced: number[] = [];
    const leader = createRoutingPublisher({ store, driver: createMemoryDriver(), project: "shop", following: () => false, announce: async (t) => void announced.push(t.version) });
    const follower = createRoutingPublisher({ store, driver: createMemoryDriver(), project: "shop", following: () => true });
    // Nothing stored yet: a follower has nothing to serve (the gateway tries another instance).
    await expect(follower.current()).rejects.toMatchObject({ code: "KEELSON_ERR_NO_LEADER" });
    const built = await leader.refresh();
    expect(announced).toEqual([built.version]);
    const seen: number[] = [];
    follower.subscribe((t) => seen.push(t.version));
    expect(await follower.refresh()).toEqual(built);
    expect(await follower.refresh()).toEqual(built);
    expect(seen).toEqual([built.version]);
    // The follower never builds: a version it serves is always one the leader assigned.
    expect(await store.getSetting("routing.version")).toBe(String(built.version));
  });

  it("builds no table before `ready` settles (a restarted control plane re-adopting its replicas)", async () => {
    let open!: () => void;
    const ready = new Promise<void>((r) => (open = r));
    const { store, publisher } = await setup(undefined, ready);
    let got: RoutingTable | undefined;
    void publisher.current().then((t) => (got = t));
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toBeUndefined();
    expect(await store.getSetting("routing.version")).toBeUndefined();
    open();
    await new Promise((r) => setTimeout(r, 10));
    expect(got?.version).toBe(1);
  });

  it("puts each service's resolved policy and each route's limits and fallback on the table", async () => {
    const { publisher } = await setup();
    const table = await publisher.current();
    expect(RoutingTableSchema.safeParse(table).success).toBe(true);
    const orders = table.services.find((s) => s.name === "orders")!;
    expect(orders.policy).toMatchObject({ timeoutMs: 2000, perTryTimeoutMs: 2000, loadBalancer: "round-robin" });
    expect(table.services.find((s) => s.name === "payments")!.policy).toEqual(DEFAULT_SERVICE_POLICY);
    expect(table.routes).toEqual([
      expect.objectContaining({ service: "orders", pathPrefix: "/api/checkout", flag: expect.objectContaining({ key: "checkout-experiment" }) }),
      expect.objectContaining({
        service: "orders",
        pathPrefix: "/api/orders",
        rateLimit: { rps: 5, burst: 5 },
        fallback: { status: 200, contentType: "application/json", body: '{"orders":[]}' },
      }),
    ]);
  });

  it("publishes a new version when a traffic split changes, and not when nothing did", async () => {
    const { store, publisher } = await setup();
    const seen: RoutingTable[] = [];
    publisher.subscribe((t) => seen.push(t));
    const first = await publisher.current();
    expect((await publisher.refresh()).version).toBe(first.version);
    const split = { weights: [{ release: "r-aaaaaaaaaaaa", weight: 80 }, { release: "r-bbbbbbbbbbbb", weight: 20, label: "canary" }], sticky: true };
    await writeTrafficSplit({ store, project: "shop", service: "orders", split, actor: "t" });
    const next = await publisher.refresh();
    expect(next.version).toBe(first.version + 1);
    expect(next.services.find((s) => s.name === "orders")!.split).toEqual(split);
    expect(seen.map((t) => t.version)).toEqual([first.version, next.version]);
  });

  it("carries the flags routes name and publishes again when one of them changes, not when another flag does", async () => {
    let current = { revision: 1, set: flagSet(50) };
    const { publisher } = await setup(async () => current);
    const first = await publisher.current();
    expect(first.flags).toEqual({ revision: 1, set: { flags: { "checkout-experiment": current.set.flags["checkout-experiment"] } } });
    current = { revision: 2, set: { flags: { ...current.set.flags, unrelated: { state: "DISABLED", variants: { on: true }, defaultVariant: "on" } } } };
    expect((await publisher.refresh()).version).toBe(first.version);
    current = { revision: 3, set: flagSet(10) };
    const next = await publisher.refresh();
    expect(next.version).toBe(first.version + 1);
    expect(next.flags?.revision).toBe(3);
    expect(next.flags?.set.flags["checkout-experiment"]).toEqual(current.set.flags["checkout-experiment"]);
  });
});

describe("activationOf", () => {
  it("carries scaleToZero's hold timeout and activation threshold, leaving the threshold out at its default", () => {
    expect(activationOf(undefined)).toEqual({ holdTimeoutMs: 30_000 });
    expect(activationOf({ holdTimeout: 5_000, activation: 1 }, 20_000)).toEqual({ holdTimeoutMs: 5_000 });
    const three = activationOf({ activation: 3 });
    expect(three).toEqual({ holdTimeoutMs: 30_000, threshold: 3, windowMs: 90_000 });
    expect(ActivationSchema.parse(three)).toEqual(three);
  });

  it("counts arrivals over the autoscale window, or over threshold hold timeouts when longer, so a client retrying after each 503 adds up", () => {
    // Short holds: the autoscale window (default 10 s) is longer than 3 x 2 s.
    expect(activationOf({ holdTimeout: 2_000, activation: 3 })).toMatchObject({ windowMs: 10_000 });
    expect(activationOf({ holdTimeout: 2_000, activation: 3 }, 45_000)).toMatchObject({ windowMs: 45_000 });
    // A serial client's third request comes two hold timeouts (and two pauses) after its first.
    const { windowMs } = activationOf({ holdTimeout: 30_000, activation: 3 }, 10_000);
    expect(windowMs).toBe(90_000);
    expect(windowMs).toBeGreaterThan(2 * (30_000 + 5_000));
  });
});
