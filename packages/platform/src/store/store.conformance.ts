// The Store contract as a vitest suite that every implementation runs unchanged (SQLite,
// memory, and later PostgreSQL). It only goes through the Store interface, gives every
// test a fresh store, and compares store-assigned times to a window, never exactly.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import type { ErrorCode, EventKind, KeelsonEvent } from "@keelson/protocol";
import type { DesiredStateChange, DocumentQuery, DocumentRecord, EventInput, ProjectRecord, ReleaseRecord, ReplicaRecord, Store } from "./store.js";

/** Makes a fresh, empty store; `cleanup` runs after the test has closed it. */
export type MakeStore = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

// Times the tests pass in are in toISOString() form: every implementation hands those
// back unchanged (a timestamptz column included), so records compare with toEqual.
const T1 = "2025-01-01T10:00:00.000Z";
const T2 = "2025-01-01T11:00:00.000Z";
const T3 = "2025-01-01T12:00:00.000Z";
const T4 = "2025-01-01T13:00:00.000Z";

// Store-assigned times: UTC ISO-8601; the fraction may be longer than milliseconds.
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
// Slack for clocks with another precision (or rounding) than Date.now.
const CLOCK_SLACK_MS = 1000;

function expectTimeWithin(value: string | undefined, from: number, to: number): void {
  expect(value).toMatch(ISO_UTC);
  const ms = Date.parse(value ?? "");
  expect(ms).toBeGreaterThanOrEqual(from - CLOCK_SLACK_MS);
  expect(ms).toBeLessThanOrEqual(to + CLOCK_SLACK_MS);
}

async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<KeelsonError> {
  const outcome = await promise.then(
    () => new Error("expected a rejection, but the call succeeded"),
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(KeelsonError);
  expect((outcome as KeelsonError).code).toBe(code);
  return outcome as KeelsonError;
}

function project(overrides: Partial<ProjectRecord> = {}): ProjectRecord {
  return { name: "shop", manifestPath: "/srv/shop/keelson.yaml", manifestHash: "sha256:aaa", appliedAt: T1, ...overrides };
}

type Upsert = DesiredStateChange["upsert"][number];

function service(name: string, spec: Record<string, unknown>, release?: string, projectName = "shop"): Upsert {
  return { project: projectName, name, spec, release };
}

function change(parts: Partial<DesiredStateChange> = {}): DesiredStateChange {
  return { project: project(), upsert: [], remove: [], events: [], ...parts };
}

function event(kind: EventKind, subject: string, overrides: Partial<EventInput> = {}): EventInput {
  return { project: "shop", kind, actor: "cli", subject, ...overrides };
}

function release(id: string, overrides: Partial<ReleaseRecord> = {}): ReleaseRecord {
  return {
    id,
    project: "shop",
    service: "orders",
    sourceHash: `src-${id}`,
    configHash: `cfg-${id}`,
    gitCommit: undefined,
    createdAt: T1,
    details: { buildCommand: "npm run build", durationMs: 1200 },
    ...overrides,
  };
}

function replica(id: string, overrides: Partial<ReplicaRecord> = {}): ReplicaRecord {
  return {
    id,
    project: "shop",
    service: "orders",
    release: "r-1",
    index: 0,
    state: "ready",
    pid: 4242,
    pidStartTime: 987654,
    port: 41000,
    restarts: 0,
    startedAt: T1,
    updatedAt: T2,
    details: { logFile: `/tmp/${id}.log` },
    ...overrides,
  };
}

const ORDERS = { path: "services/orders", port: 8080, replicas: 2, env: { A: "1", B: "2" } };
const PAYMENTS = { path: "services/payments", port: 8081, replicas: 1 };

/** Everything a failed write must leave as it was. */
async function snapshot(store: Store): Promise<unknown> {
  return {
    projects: await store.listProjects(),
    shop: await store.listServices("shop"),
    other: await store.listServices("other"),
    replicas: await store.listReplicas("shop"),
    events: await store.listEvents(),
  };
}

function seqs(events: KeelsonEvent[]): number[] {
  return events.map((e) => e.seq);
}

/**
 * Runs the Store contract against one implementation.
 *
 * @example
 * describeStoreConformance("memory", async () => ({ store: createMemoryStore(), cleanup: async () => {} }));
 */
export function describeStoreConformance(name: string, makeStore: MakeStore): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });

    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    describe("projects", () => {
      it("has no projects until a desired state is applied", async () => {
        expect(await store.getProject("shop")).toBeUndefined();
        expect(await store.listProjects()).toEqual([]);
      });

      it("stores the project of an applied change and replaces it on the next apply", async () => {
        await store.applyDesiredState(change());
        expect(await store.getProject("shop")).toEqual(project());
        await store.applyDesiredState(change({ project: project({ manifestHash: "sha256:bbb", appliedAt: T2 }) }));
        expect(await store.getProject("shop")).toEqual(project({ manifestHash: "sha256:bbb", appliedAt: T2 }));
        expect(await store.listProjects()).toHaveLength(1);
      });

      it("lists projects by name", async () => {
        for (const name of ["zoo", "alpha", "mid"]) await store.applyDesiredState(change({ project: project({ name }) }));
        expect((await store.listProjects()).map((p) => p.name)).toEqual(["alpha", "mid", "zoo"]);
      });

      it("normalizes appliedAt to UTC and rejects a time that is not ISO-8601 with an offset", async () => {
        await store.applyDesiredState(change({ project: project({ appliedAt: "2025-03-01T12:00:00+02:00" }) }));
        expect((await store.getProject("shop"))?.appliedAt).toBe("2025-03-01T10:00:00.000Z");
        await rejection(store.applyDesiredState(change({ project: project({ appliedAt: "yesterday" }) })), "KEELSON_ERR_INVALID_INPUT");
        const noOffset = await rejection(
          store.applyDesiredState(change({ project: project({ appliedAt: "2025-03-01T12:00:00" }) })),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(noOffset.message).toContain("project.appliedAt");
        await rejection(store.applyDesiredState(change({ project: project({ appliedAt: "2025-02-30T12:00:00Z" }) })), "KEELSON_ERR_INVALID_INPUT");
        expect((await store.getProject("shop"))?.appliedAt).toBe("2025-03-01T10:00:00.000Z");
      });
    });

    describe("applyDesiredState and services", () => {
      it("creates a service at generation 1 with no release and a fresh updatedAt", async () => {
        const before = Date.now();
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        const after = Date.now();
        const orders = await store.getService("shop", "orders");
        expect(orders).toMatchObject({ project: "shop", name: "orders", spec: ORDERS, generation: 1, release: undefined });
        expectTimeWithin(orders?.updatedAt, before, after);
      });

      it("keeps the generation and updatedAt when the spec is equal up to key order", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        const first = await store.getService("shop", "orders");
        const reordered = { env: { B: "2", A: "1" }, replicas: 2, port: 8080, path: "services/orders" };
        await store.applyDesiredState(change({ upsert: [service("orders", reordered)] }));
        const second = await store.getService("shop", "orders");
        expect(second?.generation).toBe(1);
        expect(second?.updatedAt).toBe(first?.updatedAt);
        expect(second?.spec).toEqual(ORDERS);
      });

      it("treats a property set to undefined like an absent one", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", { ...ORDERS, owner: undefined })] }));
        const stored = await store.getService("shop", "orders");
        expect(Object.keys(stored?.spec ?? {})).not.toContain("owner");
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        expect((await store.getService("shop", "orders"))?.generation).toBe(1);
      });

      it("adds one to the generation on every spec change, also when a change reverts an earlier one", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        await store.applyDesiredState(change({ upsert: [service("orders", { ...ORDERS, port: 9090 })] }));
        expect((await store.getService("shop", "orders"))?.generation).toBe(2);
        await store.applyDesiredState(change({ upsert: [service("orders", { ...ORDERS, port: 9090, env: { A: "1", B: "3" } })] }));
        expect((await store.getService("shop", "orders"))?.generation).toBe(3);
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        const reverted = await store.getService("shop", "orders");
        expect(reverted?.generation).toBe(4);
        expect(reverted?.spec).toEqual(ORDERS);
      });

      it("keeps the stored release when an upsert leaves release undefined", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS, "r-1")] }));
        await store.applyDesiredState(change({ upsert: [service("orders", { ...ORDERS, port: 9090 })] }));
        expect(await store.getService("shop", "orders")).toMatchObject({ release: "r-1", generation: 2 });
      });

      it("sets the release from an upsert without changing the generation", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS, "r-1")] }));
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS, "r-2")] }));
        expect(await store.getService("shop", "orders")).toMatchObject({ release: "r-2", generation: 1 });
      });

      it("removes a service with its replicas and keeps other services, releases and events", async () => {
        await store.applyDesiredState(
          change({ upsert: [service("orders", ORDERS, "r-1"), service("payments", PAYMENTS)], events: [event("manifest.applied", "project/shop")] }),
        );
        await store.putRelease(release("r-1"));
        await store.upsertReplica(replica("orders-0"));
        await store.upsertReplica(replica("orders-1", { index: 1 }));
        await store.upsertReplica(replica("payments-0", { service: "payments" }));

        await store.applyDesiredState(change({ remove: ["orders"], events: [event("service.removed", "service/orders")] }));

        expect(await store.getService("shop", "orders")).toBeUndefined();
        expect((await store.listServices("shop")).map((s) => s.name)).toEqual(["payments"]);
        expect((await store.listReplicas("shop")).map((r) => r.id)).toEqual(["payments-0"]);
        expect(await store.listReplicas("shop", "orders")).toEqual([]);
        expect((await store.getRelease("r-1"))?.id).toBe("r-1");
        expect((await store.listEvents()).map((e) => e.kind)).toEqual(["manifest.applied", "service.removed"]);
      });

      it("creates a removed service afresh at generation 1 when it comes back", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS, "r-1")] }));
        await store.applyDesiredState(change({ upsert: [service("orders", { ...ORDERS, port: 9090 })] }));
        await store.applyDesiredState(change({ remove: ["orders"] }));
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        expect(await store.getService("shop", "orders")).toMatchObject({ generation: 1, release: undefined });
      });

      it("scopes upserts and removals to the change's project", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        await store.applyDesiredState(
          change({ project: project({ name: "other" }), upsert: [service("orders", PAYMENTS, undefined, "other")] }),
        );
        await store.upsertReplica(replica("other-orders-0", { project: "other" }));

        await store.applyDesiredState(change({ remove: ["orders"] }));

        expect(await store.getService("shop", "orders")).toBeUndefined();
        expect(await store.getService("other", "orders")).toMatchObject({ spec: PAYMENTS, generation: 1 });
        expect((await store.listReplicas("other")).map((r) => r.id)).toEqual(["other-orders-0"]);
      });

      it("ignores a removed name that does not exist but still records the change", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        const services = await store.listServices("shop");
        await store.applyDesiredState(change({ remove: ["ghost"], events: [event("manifest.applied", "project/shop")] }));
        expect(await store.listServices("shop")).toEqual(services);
        expect((await store.listEvents()).map((e) => e.kind)).toEqual(["manifest.applied"]);
      });

      it("lists services by name and answers undefined or [] for unknown ones", async () => {
        await store.applyDesiredState(change({ upsert: [service("payments", PAYMENTS), service("cart", {}), service("orders", ORDERS)] }));
        expect((await store.listServices("shop")).map((s) => s.name)).toEqual(["cart", "orders", "payments"]);
        expect(await store.getService("shop", "ghost")).toBeUndefined();
        expect(await store.getService("ghost", "orders")).toBeUndefined();
        expect(await store.listServices("ghost")).toEqual([]);
      });

      it("appends the change's events in the order given", async () => {
        await store.applyDesiredState(
          change({
            upsert: [service("orders", ORDERS)],
            events: [
              event("service.created", "service/orders", { details: { fields: ["port"] } }),
              event("manifest.applied", "project/shop", { actor: "user:ada" }),
            ],
          }),
        );
        const events = await store.listEvents();
        expect(events.map((e) => [e.kind, e.subject, e.actor])).toEqual([
          ["service.created", "service/orders", "cli"],
          ["manifest.applied", "project/shop", "user:ada"],
        ]);
        expect(events[0]?.details).toEqual({ fields: ["port"] });
        expect(events[1]!.seq).toBeGreaterThan(events[0]!.seq);
      });

      it("hands out copies: changing a returned record or the applied input leaves the store as it was", async () => {
        const spec = { ...ORDERS, env: { A: "1", B: "2" } };
        await store.applyDesiredState(change({ upsert: [service("orders", spec)] }));
        spec.env.A = "changed by caller";
        const first = await store.getService("shop", "orders");
        (first!.spec.env as Record<string, string>).A = "changed by reader";
        first!.generation = 99;
        const again = await store.getService("shop", "orders");
        expect(again?.spec).toEqual(ORDERS);
        expect(again?.generation).toBe(1);
      });

      it("rejects a change naming a service twice, under another project, or in both upsert and remove, writing nothing", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        const before = await snapshot(store);
        const twice = await rejection(
          store.applyDesiredState(change({ upsert: [service("orders", ORDERS), service("orders", PAYMENTS)] })),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(twice.message).toContain("orders");
        await rejection(
          store.applyDesiredState(change({ upsert: [service("payments", PAYMENTS, undefined, "other")], events: [event("manifest.applied", "project/shop")] })),
          "KEELSON_ERR_INVALID_INPUT",
        );
        await rejection(
          store.applyDesiredState(change({ upsert: [service("orders", { ...ORDERS, port: 1 })], remove: ["orders"] })),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(await snapshot(store)).toEqual(before);
      });
    });

    describe("setServiceRelease", () => {
      it("points the service at a release, keeps the generation and appends the event", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS, "r-1")] }));
        await store.setServiceRelease("shop", "orders", "r-2", event("service.changed", "service/orders", { details: { release: "r-2" } }));
        expect(await store.getService("shop", "orders")).toMatchObject({ release: "r-2", generation: 1, spec: ORDERS });
        const events = await store.listEvents();
        expect(events.map((e) => [e.kind, e.details])).toEqual([["service.changed", { release: "r-2" }]]);
      });

      it("works without an event and appends none", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        await store.setServiceRelease("shop", "orders", "r-7");
        expect((await store.getService("shop", "orders"))?.release).toBe("r-7");
        expect(await store.listEvents()).toEqual([]);
      });

      it("rejects an unknown service with KEELSON_ERR_NOT_FOUND and appends no event", async () => {
        await store.applyDesiredState(change());
        const err = await rejection(
          store.setServiceRelease("shop", "ghost", "r-1", event("service.changed", "service/ghost")),
          "KEELSON_ERR_NOT_FOUND",
        );
        expect(err.message).toContain("ghost");
        expect(await store.listEvents()).toEqual([]);
      });
    });

    describe("setServiceReplicas", () => {
      it("sets spec.replicas, adds one to the generation and appends the event", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS, "r-1")] }));
        await store.setServiceReplicas("shop", "orders", 5, event("service.scaled", "service/orders", { details: { from: 2, to: 5 } }));
        expect(await store.getService("shop", "orders")).toMatchObject({ spec: { ...ORDERS, replicas: 5 }, generation: 2, release: "r-1" });
        expect((await store.listEvents()).map((e) => [e.kind, e.details])).toEqual([["service.scaled", { from: 2, to: 5 }]]);
      });

      it("adds replicas to a spec that had none, and keeps the generation when the count is unchanged", async () => {
        await store.applyDesiredState(change({ upsert: [service("cart", { port: 8082 })] }));
        await store.setServiceReplicas("shop", "cart", 3);
        expect(await store.getService("shop", "cart")).toMatchObject({ spec: { port: 8082, replicas: 3 }, generation: 2 });
        await store.setServiceReplicas("shop", "cart", 3, event("service.scaled", "service/cart"));
        expect((await store.getService("shop", "cart"))?.generation).toBe(2);
        expect(await store.listEvents()).toHaveLength(1);
      });

      it("rejects a negative or fractional count and an unknown service, changing nothing", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        const before = await snapshot(store);
        await rejection(store.setServiceReplicas("shop", "orders", -1), "KEELSON_ERR_INVALID_INPUT");
        await rejection(store.setServiceReplicas("shop", "orders", 1.5), "KEELSON_ERR_INVALID_INPUT");
        await rejection(store.setServiceReplicas("shop", "ghost", 1, event("service.scaled", "service/ghost")), "KEELSON_ERR_NOT_FOUND");
        expect(await snapshot(store)).toEqual(before);
      });
    });

    describe("releases", () => {
      it("stores a release before its project was ever applied (builds come first) and returns it as given", async () => {
        await store.putRelease(release("r-1"));
        await store.putRelease(release("r-2", { gitCommit: "0123abc", createdAt: T2 }));
        expect(await store.getRelease("r-1")).toEqual(release("r-1"));
        expect(await store.getRelease("r-2")).toEqual(release("r-2", { gitCommit: "0123abc", createdAt: T2 }));
        expect(await store.getRelease("r-ghost")).toBeUndefined();
      });

      it("deletes a release by id and ignores an unknown id", async () => {
        await store.putRelease(release("r-1"));
        await store.putRelease(release("r-2", { createdAt: T2 }));
        await store.deleteRelease("r-1");
        await store.deleteRelease("r-ghost");
        expect(await store.getRelease("r-1")).toBeUndefined();
        expect((await store.listReleases("shop", "orders")).map((r) => r.id)).toEqual(["r-2"]);
      });

      it("ignores a second put of the same id", async () => {
        await store.putRelease(release("r-1", { details: { build: 1 } }));
        await store.putRelease(release("r-1", { details: { build: 2 }, createdAt: T2, sourceHash: "other" }));
        expect(await store.getRelease("r-1")).toEqual(release("r-1", { details: { build: 1 } }));
        expect(await store.listReleases("shop", "orders")).toHaveLength(1);
      });

      it("lists one service's releases newest first, the later stored first when createdAt ties", async () => {
        await store.putRelease(release("r-new", { createdAt: T3 }));
        await store.putRelease(release("r-old", { createdAt: T1 }));
        await store.putRelease(release("r-mid", { createdAt: T2 }));
        await store.putRelease(release("r-payments", { service: "payments", createdAt: T4 }));
        await store.putRelease(release("r-elsewhere", { project: "other", createdAt: T4 }));
        expect((await store.listReleases("shop", "orders")).map((r) => r.id)).toEqual(["r-new", "r-mid", "r-old"]);

        await store.putRelease(release("r-tie-a", { createdAt: T4 }));
        await store.putRelease(release("r-tie-b", { createdAt: T4 }));
        expect((await store.listReleases("shop", "orders")).map((r) => r.id)).toEqual(["r-tie-b", "r-tie-a", "r-new", "r-mid", "r-old"]);
        expect(await store.listReleases("shop", "ghost")).toEqual([]);
      });

      it("normalizes createdAt to UTC and rejects details that JSON cannot hold", async () => {
        await store.putRelease(release("r-1", { createdAt: "2025-01-01T05:00:00-05:00" }));
        expect((await store.getRelease("r-1"))?.createdAt).toBe("2025-01-01T10:00:00.000Z");
        const err = await rejection(store.putRelease(release("r-2", { details: { size: 10n } })), "KEELSON_ERR_INVALID_INPUT");
        expect(err.message).toContain("release.details");
        expect(await store.getRelease("r-2")).toBeUndefined();
      });
    });

    describe("replicas", () => {
      beforeEach(async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS), service("payments", PAYMENTS)] }));
      });

      it("stores replicas and lists them by service, then index; or one service's only", async () => {
        await store.upsertReplica(replica("payments-0", { service: "payments" }));
        await store.upsertReplica(replica("orders-1", { index: 1 }));
        await store.upsertReplica(replica("orders-0"));
        expect(await store.listReplicas("shop")).toEqual([
          replica("orders-0"),
          replica("orders-1", { index: 1 }),
          replica("payments-0", { service: "payments" }),
        ]);
        expect((await store.listReplicas("shop", "orders")).map((r) => r.id)).toEqual(["orders-0", "orders-1"]);
        expect(await store.listReplicas("other")).toEqual([]);
      });

      it("replaces the replica stored under the same id", async () => {
        await store.upsertReplica(replica("orders-0", { state: "starting", restarts: 0 }));
        await store.upsertReplica(replica("orders-0", { state: "backoff", restarts: 3, details: { lastExit: 1 } }));
        expect(await store.listReplicas("shop")).toEqual([replica("orders-0", { state: "backoff", restarts: 3, details: { lastExit: 1 } })]);
      });

      it("round-trips an unknown pid, pidStartTime and startedAt as undefined", async () => {
        const unstarted = replica("orders-0", { state: "starting", pid: undefined, pidStartTime: undefined, startedAt: undefined, port: 0 });
        await store.upsertReplica(unstarted);
        expect(await store.listReplicas("shop")).toEqual([unstarted]);
      });

      it("deletes one replica by id; deleting an unknown id changes nothing", async () => {
        await store.upsertReplica(replica("orders-0"));
        await store.upsertReplica(replica("orders-1", { index: 1 }));
        await store.deleteReplica("orders-0");
        await store.deleteReplica("ghost");
        expect((await store.listReplicas("shop")).map((r) => r.id)).toEqual(["orders-1"]);
      });

      it("rejects a replica of an unknown project and one with a fractional port", async () => {
        await rejection(store.upsertReplica(replica("x-0", { project: "ghost" })), "KEELSON_ERR_NOT_FOUND");
        const err = await rejection(store.upsertReplica(replica("orders-0", { port: 80.5 })), "KEELSON_ERR_INVALID_INPUT");
        expect(err.message).toContain("replica.port");
        expect(await store.listReplicas("shop")).toEqual([]);
        expect(await store.listReplicas("ghost")).toEqual([]);
      });
    });

    describe("events", () => {
      it("appends an event with a seq, a fresh time and {} details by default", async () => {
        const before = Date.now();
        const appended = await store.appendEvent(event("controlplane.started", "project/shop", { actor: "controlplane" }));
        const after = Date.now();
        expect(appended).toMatchObject({ project: "shop", kind: "controlplane.started", actor: "controlplane", subject: "project/shop", details: {} });
        expect(Number.isSafeInteger(appended.seq)).toBe(true);
        expectTimeWithin(appended.at, before, after);
        expect(await store.listEvents()).toEqual([appended]);
      });

      it("round-trips nested details", async () => {
        const details = { release: "r-1", fields: ["port", "env.A"], nested: { ok: true, n: 1.5, none: null } };
        const appended = await store.appendEvent(event("build.succeeded", "service/orders", { details }));
        expect(appended.details).toEqual(details);
        expect((await store.listEvents())[0]?.details).toEqual(details);
      });

      it("hands out strictly increasing seqs across every kind of write", async () => {
        const a = await store.appendEvent(event("controlplane.started", "project/shop"));
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)], events: [event("service.created", "service/orders"), event("manifest.applied", "project/shop")] }));
        await store.setServiceRelease("shop", "orders", "r-1", event("service.changed", "service/orders"));
        await store.setServiceReplicas("shop", "orders", 3, event("service.scaled", "service/orders"));
        const b = await store.appendEvent(event("controlplane.stopped", "project/shop"));
        const listed = seqs(await store.listEvents());
        expect(listed).toHaveLength(6);
        expect(listed[0]).toBe(a.seq);
        expect(listed[5]).toBe(b.seq);
        for (let i = 1; i < listed.length; i++) expect(listed[i]!).toBeGreaterThan(listed[i - 1]!);
      });

      it("gives concurrent appends distinct seqs", async () => {
        const appended = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.appendEvent(event("replica.ready", `replica/orders-${i}`))),
        );
        expect(new Set(seqs(appended)).size).toBe(20);
        const listed = await store.listEvents();
        expect(seqs(listed)).toEqual(seqs(appended).sort((x, y) => x - y));
      });

      it("rejects details that JSON cannot hold and appends nothing", async () => {
        const loop: Record<string, unknown> = {};
        loop.self = loop;
        await rejection(store.appendEvent(event("build.failed", "service/orders", { details: { size: 1n } })), "KEELSON_ERR_INVALID_INPUT");
        const err = await rejection(store.appendEvent(event("build.failed", "service/orders", { details: loop })), "KEELSON_ERR_INVALID_INPUT");
        expect(err.message).toContain("event.details");
        expect(await store.listEvents()).toEqual([]);
      });

      describe("listEvents filters", () => {
        let e: KeelsonEvent[];

        beforeEach(async () => {
          e = [];
          const inputs: EventInput[] = [
            event("service.created", "service/orders"),
            event("service.created", "service/orders-v2"),
            event("replica.started", "replica/orders-0"),
            event("service.created", "service/orders", { project: "other" }),
            event("replica.ready", "replica/orders-1"),
            event("replica.ready", "Replica/orders-2"),
            event("replica.started", "replica/orders%_x"),
            event("replica.started", "replica/ordersX"),
          ];
          for (const input of inputs) e.push(await store.appendEvent(input));
        });

        const pick = (...indexes: number[]): number[] => indexes.map((i) => e[i]!.seq);

        it("lists everything oldest first without a query", async () => {
          expect(seqs(await store.listEvents())).toEqual(pick(0, 1, 2, 3, 4, 5, 6, 7));
          expect(seqs(await store.listEvents({}))).toEqual(pick(0, 1, 2, 3, 4, 5, 6, 7));
        });

        it("filters by project", async () => {
          expect(seqs(await store.listEvents({ project: "shop" }))).toEqual(pick(0, 1, 2, 4, 5, 6, 7));
          expect(seqs(await store.listEvents({ project: "other" }))).toEqual(pick(3));
          expect(await store.listEvents({ project: "ghost" })).toEqual([]);
        });

        it("returns only events after afterSeq", async () => {
          expect(seqs(await store.listEvents({ afterSeq: e[2]!.seq }))).toEqual(pick(3, 4, 5, 6, 7));
          expect(seqs(await store.listEvents({ afterSeq: 0 }))).toEqual(pick(0, 1, 2, 3, 4, 5, 6, 7));
          expect(await store.listEvents({ afterSeq: e[7]!.seq })).toEqual([]);
        });

        it("filters by any of the given kinds, and by none for an empty list", async () => {
          expect(seqs(await store.listEvents({ kinds: ["replica.ready"] }))).toEqual(pick(4, 5));
          expect(seqs(await store.listEvents({ kinds: ["service.created", "replica.ready"] }))).toEqual(pick(0, 1, 3, 4, 5));
          expect(await store.listEvents({ kinds: [] })).toEqual([]);
        });

        it("filters by exact subject", async () => {
          expect(seqs(await store.listEvents({ subject: "service/orders" }))).toEqual(pick(0, 3));
          expect(await store.listEvents({ subject: "service/order" })).toEqual([]);
        });

        it("filters by subject prefix, case-sensitively and with no wildcard characters", async () => {
          expect(seqs(await store.listEvents({ subjectPrefix: "replica/orders-" }))).toEqual(pick(2, 4));
          expect(seqs(await store.listEvents({ subjectPrefix: "replica/orders%" }))).toEqual(pick(6));
          expect(await store.listEvents({ subjectPrefix: "replica/orders_" })).toEqual([]);
          expect(seqs(await store.listEvents({ subjectPrefix: "Replica/" }))).toEqual(pick(5));
          expect(seqs(await store.listEvents({ subjectPrefix: "" }))).toEqual(pick(0, 1, 2, 3, 4, 5, 6, 7));
        });

        it("lists newest first when descending, and limit keeps the first n of that order", async () => {
          expect(seqs(await store.listEvents({ descending: true }))).toEqual(pick(7, 6, 5, 4, 3, 2, 1, 0));
          expect(seqs(await store.listEvents({ descending: true, limit: 2 }))).toEqual(pick(7, 6));
          expect(seqs(await store.listEvents({ limit: 3 }))).toEqual(pick(0, 1, 2));
          expect(await store.listEvents({ limit: 0 })).toEqual([]);
        });

        it("pages through the log with afterSeq and limit", async () => {
          const pages: number[][] = [];
          let after = 0;
          for (;;) {
            const page = await store.listEvents({ afterSeq: after, limit: 3 });
            if (page.length === 0) break;
            pages.push(seqs(page));
            after = page.at(-1)!.seq;
          }
          expect(pages).toEqual([pick(0, 1, 2), pick(3, 4, 5), pick(6, 7)]);
        });

        it("combines every filter", async () => {
          const found = await store.listEvents({
            project: "shop",
            kinds: ["replica.started"],
            subjectPrefix: "replica/",
            afterSeq: e[0]!.seq,
            descending: true,
            limit: 2,
          });
          expect(seqs(found)).toEqual(pick(7, 6));
        });

        it("rejects a negative or fractional limit", async () => {
          await rejection(store.listEvents({ limit: -1 }), "KEELSON_ERR_INVALID_INPUT");
          const err = await rejection(store.listEvents({ limit: 1.5 }), "KEELSON_ERR_INVALID_INPUT");
          expect(err.message).toContain("limit");
        });
      });
    });

    describe("settings", () => {
      it("answers undefined for an unknown key, then the latest value set", async () => {
        expect(await store.getSetting("routing.version")).toBeUndefined();
        await store.setSetting("routing.version", "1");
        await store.setSetting("routing.version", "2");
        await store.setSetting("empty", "");
        expect(await store.getSetting("routing.version")).toBe("2");
        expect(await store.getSetting("empty")).toBe("");
        expect(await store.getSetting("Routing.Version")).toBeUndefined();
      });
    });

    describe("documents", () => {
      const doc = (id: string, at: string, tag = "", body: Record<string, unknown> = { id }, over: Partial<DocumentRecord> = {}): DocumentRecord => ({ collection: "notification", project: "shop", id, tag, at, body, ...over });

      it("stores documents, replaces one under the same id, and lists them by time then id", async () => {
        await store.putDocuments([doc("b", T2, "pending"), doc("a", T2, "pending"), doc("c", T1, "dead", { nested: { n: [1, 2] } })]);
        await store.putDocuments([doc("a", T3, "delivered", { attempts: 2 })]);
        const all = await store.listDocuments({ collection: "notification", project: "shop" });
        expect(all.map((d) => d.id)).toEqual(["c", "b", "a"]);
        expect(all[0]).toEqual(doc("c", T1, "dead", { nested: { n: [1, 2] } }));
        expect(all[2]).toEqual(doc("a", T3, "delivered", { attempts: 2 }));
        expect((await store.listDocuments({ collection: "notification", project: "shop", descending: true, limit: 2 })).map((d) => d.id)).toEqual(["a", "b"]);
      });

      it("filters by tag, ids, time range, collection and project", async () => {
        await store.putDocuments([
          doc("a", T1, "pending"),
          doc("b", T2, "dead"),
          doc("c", T3, "pending"),
          doc("a", T1, "pending", {}, { collection: "team" }),
          doc("a", T1, "pending", {}, { project: "other" }),
        ]);
        const ids = async (q: Partial<DocumentQuery>) => (await store.listDocuments({ collection: "notification", project: "shop", ...q })).map((d) => d.id);
        expect(await ids({ tag: "pending" })).toEqual(["a", "c"]);
        expect(await ids({ ids: ["c", "a", "zz"] })).toEqual(["a", "c"]);
        expect(await ids({ ids: [] })).toEqual([]);
        expect(await ids({ since: T2 })).toEqual(["b", "c"]);
        expect(await ids({ until: T2 })).toEqual(["a"]);
        expect(await ids({ since: T2, until: T3, tag: "dead" })).toEqual(["b"]);
        expect((await store.listDocuments({ collection: "team", project: "shop" })).map((d) => d.id)).toEqual(["a"]);
        expect((await store.listDocuments({ collection: "notification", project: "nope" }))).toEqual([]);
      });

      it("deletes by id, counting what it removed", async () => {
        await store.putDocuments([doc("a", T1), doc("b", T2)]);
        expect(await store.deleteDocuments("notification", "shop", ["a", "zz"])).toBe(1);
        expect(await store.deleteDocuments("notification", "shop", [])).toBe(0);
        expect((await store.listDocuments({ collection: "notification", project: "shop" })).map((d) => d.id)).toEqual(["b"]);
      });

      it("hands out copies", async () => {
        const input = doc("a", T1, "", { list: [1] });
        await store.putDocuments([input]);
        (input.body.list as number[]).push(2);
        const [out] = await store.listDocuments({ collection: "notification", project: "shop" });
        (out?.body.list as number[]).push(3);
        expect((await store.listDocuments({ collection: "notification", project: "shop" }))[0]?.body).toEqual({ list: [1] });
      });

      it("rejects a bad document naming the field, writing none of the batch", async () => {
        const bad = async (d: DocumentRecord, field: string) => {
          const err = await rejection(store.putDocuments([doc("ok", T1), d]), "KEELSON_ERR_INVALID_INPUT");
          expect(err.message).toContain(field);
        };
        await bad(doc("x", "yesterday"), "documents[1].at");
        await bad(doc("", T1), "documents[1].id");
        await bad(doc("x", T1, "", {}, { collection: "Bad Name" }), "documents[1].collection");
        await bad(doc("x", T1, "", [] as unknown as Record<string, unknown>), "documents[1].body");
        await bad(doc("ok", T2), "appears twice");
        expect(await store.listDocuments({ collection: "notification", project: "shop" })).toEqual([]);
        await rejection(store.listDocuments({ collection: "notification", project: "shop", since: "soon" }), "KEELSON_ERR_INVALID_INPUT");
      });
    });

    describe("atomicity", () => {
      // A change that touches everything: project, a changed, a new and a removed service, events.
      const everything = (events: EventInput[], orders: Record<string, unknown> = { ...ORDERS, port: 9999 }): DesiredStateChange =>
        change({
          project: project({ manifestHash: "sha256:new", appliedAt: T3 }),
          upsert: [service("orders", orders, "r-2"), service("cart", { port: 8083 })],
          remove: ["payments"],
          events,
        });

      beforeEach(async () => {
        await store.applyDesiredState(
          change({ upsert: [service("orders", ORDERS, "r-1"), service("payments", PAYMENTS)], events: [event("manifest.applied", "project/shop")] }),
        );
        await store.upsertReplica(replica("payments-0", { service: "payments" }));
      });

      it("writes nothing when an event's details hold a BigInt", async () => {
        const before = await snapshot(store);
        const err = await rejection(
          store.applyDesiredState(everything([event("service.changed", "service/orders"), event("manifest.applied", "project/shop", { details: { bytes: 10n } })])),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(err.message).toContain("events[1].details");
        expect(await snapshot(store)).toEqual(before);
      });

      it("writes nothing when an event's details are circular", async () => {
        const loop: Record<string, unknown> = { name: "loop" };
        loop.again = { loop };
        const before = await snapshot(store);
        await rejection(
          store.applyDesiredState(everything([event("service.changed", "service/orders"), event("manifest.applied", "project/shop", { details: loop })])),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(await snapshot(store)).toEqual(before);
      });

      it("writes nothing when a service's spec holds a BigInt", async () => {
        const before = await snapshot(store);
        const err = await rejection(
          store.applyDesiredState(everything([event("manifest.applied", "project/shop")], { ...ORDERS, memory: 512n })),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(err.message).toContain("upsert[0].spec");
        expect(await snapshot(store)).toEqual(before);
      });

      it("applies the same change in full once it can be stored", async () => {
        await store.applyDesiredState(everything([event("manifest.applied", "project/shop", { details: { bytes: 10 } })]));
        expect((await store.getProject("shop"))?.manifestHash).toBe("sha256:new");
        expect((await store.listServices("shop")).map((s) => [s.name, s.generation, s.release])).toEqual([
          ["cart", 1, undefined],
          ["orders", 2, "r-2"],
        ]);
        expect(await store.listReplicas("shop")).toEqual([]);
        expect((await store.listEvents()).map((e) => e.kind)).toEqual(["manifest.applied", "manifest.applied"]);
      });

      it("leaves the release as it was when setServiceRelease's event cannot be stored", async () => {
        const before = await snapshot(store);
        await rejection(
          store.setServiceRelease("shop", "orders", "r-9", event("service.changed", "service/orders", { details: { n: 1n } })),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(await snapshot(store)).toEqual(before);
      });

      it("leaves the replica count as it was when setServiceReplicas's event cannot be stored", async () => {
        const before = await snapshot(store);
        await rejection(
          store.setServiceReplicas("shop", "orders", 7, event("service.scaled", "service/orders", { details: { n: 1n } })),
          "KEELSON_ERR_INVALID_INPUT",
        );
        expect(await snapshot(store)).toEqual(before);
      });
    });

    describe("checkIntegrity", () => {
      it("finds a consistent store whole and counts what it looked at", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        await store.putRelease(release("r-1"));
        await store.setServiceRelease("shop", "orders", "r-1");
        await store.upsertReplica(replica("orders-0"));
        await store.appendEvent(event("controlplane.started", "project/shop"));
        const report = await store.checkIntegrity();
        expect(report.problems).toEqual([]);
        expect(report.ok).toBe(true);
        expect(report.checked).toMatchObject({ projects: 1, services: 1, releases: 1, replicas: 1 });
        expect(report.checked.events).toBeGreaterThanOrEqual(1);
      });

      it("names a replica whose release is not stored", async () => {
        await store.applyDesiredState(change({ upsert: [service("orders", ORDERS)] }));
        await store.upsertReplica(replica("orders-0", { release: "r-gone" }));
        const report = await store.checkIntegrity();
        expect(report.ok).toBe(false);
        expect(report.problems).toEqual(["replica orders-0 runs release r-gone, which is not stored"]);
      });
    });

    describe("close", () => {
      it("rejects calls after close with KEELSON_ERR_STORE, and a second close is harmless", async () => {
        await store.setSetting("k", "v");
        await store.close();
        await store.close();
        await rejection(store.getSetting("k"), "KEELSON_ERR_STORE");
        await rejection(store.appendEvent(event("controlplane.stopped", "project/shop")), "KEELSON_ERR_STORE");
        await rejection(store.listServices("shop"), "KEELSON_ERR_STORE");
      });
    });
  });
}
