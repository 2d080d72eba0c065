// The chaos controller against the memory driver and a memory store: kills and hangs hit ready
// replicas (never a service's last one unless allowed), every injection is an event, faults
// are published with their end time, and stopping undoes what the experiment did.
import { afterEach, describe, expect, it } from "vitest";
import { rejection, waitFor } from "#test-support";
import { createMemoryStore } from "../store/index.js";
import type { Store } from "../store/index.js";
import { createChaosController, parseChaosRequest } from "./chaos-controller.js";
import type { ChaosController } from "./chaos-controller.js";
import { createMemoryDriver } from "./memory-driver.js";
import type { MemoryDriver } from "./memory-driver.js";
import type { ReplicaSpec } from "./runtime-driver.js";

function spec(service: string, index: number, release = "r-1"): ReplicaSpec {
  return {
    id: `${service}-${release}-${index}`,
    project: "shop",
    service,
    release,
    index,
    cwd: "/nowhere",
    command: "memory",
    env: {},
    port: 30_000 + index + (service === "orders" ? 0 : 100),
    readiness: undefined,
    liveness: undefined,
    stopTimeoutMs: 500,
    startTimeoutMs: 5_000,
    logDir: "/nowhere/logs",
  };
}

describe("chaos controller", () => {
  let driver: MemoryDriver;
  let store: Store;
  let chaos: ChaosController;

  async function setup(replicas: Array<[string, number]>): Promise<void> {
    driver = createMemoryDriver({ restartPolicy: { initialDelayMs: 50, multiplier: 2, maxDelayMs: 1_000, resetAfterMs: 10_000 } });
    store = createMemoryStore();
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/x/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: [...new Set(replicas.map(([s]) => s))].map((name) => ({ project: "shop", name, spec: { replicas: 1 }, release: undefined })),
      remove: [],
      events: [],
    });
    for (const [service, count] of replicas) for (let i = 0; i < count; i++) await driver.start(spec(service, i));
    await waitFor(() => (driver.list().every((r) => r.state === "ready") ? true : undefined));
    chaos = createChaosController({ store, project: "shop", driver, services: async () => ["orders", "payments"], random: () => 0 });
  }

  afterEach(async () => {
    await chaos.close();
    await Promise.all(driver.list().map((r) => driver.stop(r.spec.id)));
  });

  it("kills a ready replica at once and at every interval, records each as an event, and the runtime restarts it", async () => {
    await setup([["orders", 2]]);
    const x = await chaos.start({ kind: "kill", service: "orders", durationMs: 2_000, intervalMs: 200 }, "user:ops");
    expect(x.injections).toBe(1);
    const victim = x.recent[0]?.replica as string;
    await waitFor(() => (driver.get(victim)?.restarts ?? 0) >= 1 || undefined);
    await waitFor(() => (x.injections >= 3 ? true : undefined));
    const injected = await store.listEvents({ kinds: ["chaos.injected"] });
    expect(injected.length).toBe(x.injections);
    expect(injected[0]).toMatchObject({ actor: "user:ops", subject: `replica/${victim}`, details: { experiment: x.id, kind: "kill", service: "orders" } });
    expect((await store.listEvents({ kinds: ["chaos.started"] }))[0]?.details).toMatchObject({ kind: "kill", service: "orders", durationMs: 2_000 });
  });

  it("never takes a service's last ready replica unless allowed, and counts the skipped rounds", async () => {
    await setup([["orders", 1], ["payments", 1]]);
    const spared = await chaos.start({ kind: "kill", durationMs: 1_000, intervalMs: 100 }, "user:ops");
    expect(spared.injections).toBe(0);
    expect(spared.skipped).toBe(1);
    expect(driver.list().every((r) => r.restarts === 0)).toBe(true);
    await chaos.stop(spared.id, "user:ops");
    const allowed = await chaos.start({ kind: "kill", service: "payments", durationMs: 1_000, intervalMs: 10_000, allowLast: true }, "user:ops");
    expect(allowed.injections).toBe(1);
    expect(allowed.recent[0]?.service).toBe("payments");
  });

  it("hangs replicas until the experiment stops, then resumes them", async () => {
    await setup([["orders", 3]]);
    const x = await chaos.start({ kind: "hang", service: "orders", durationMs: 60_000, intervalMs: 60_000 }, "user:ops");
    const hung = x.recent[0]?.replica as string;
    expect(driver.get(hung)?.paused).toBe(true);
    const stopped = await chaos.stop(x.id, "user:ops");
    expect(stopped).toMatchObject({ state: "stopped", stoppedBy: "user:ops", injections: 1 });
    expect(driver.get(hung)?.paused).toBe(false);
    expect((await store.listEvents({ kinds: ["chaos.stopped"] }))[0]?.details).toMatchObject({ experiment: x.id, state: "stopped", injections: 1 });
  });

  it("hangs a hung replica again once the runtime has restarted it", async () => {
    await setup([["orders", 1]]);
    const x = await chaos.start({ kind: "hang", service: "orders", durationMs: 10_000, intervalMs: 100, allowLast: true }, "user:ops");
    const id = x.recent[0]?.replica as string;
    expect(driver.get(id)?.paused).toBe(true);
    // Its liveness probe failing would do this.
    await driver.restart(id);
    await waitFor(() => (driver.get(id)?.state === "ready" ? true : undefined));
    await waitFor(() => (x.injections >= 2 && driver.get(id)?.paused === true ? true : undefined));
    expect(x.recent.map((i) => i.replica)).toEqual([id, id]);
  });

  it("publishes latency and error faults with their end time while they run, and tells subscribers", async () => {
    await setup([["orders", 1]]);
    let changes = 0;
    chaos.subscribe(() => changes++);
    const x = await chaos.start({ kind: "error", service: "orders", version: "canary", durationMs: 300, share: 0.25, status: 500 }, "user:ops");
    expect(chaos.faults("orders")).toEqual([{ id: x.id, version: "canary", share: 0.25, abortStatus: 500, until: x.endsAt }]);
    expect(chaos.faults("payments")).toEqual([]);
    expect(changes).toBe(1);
    await waitFor(() => (chaos.get(x.id)?.state === "finished" ? true : undefined));
    expect(chaos.faults("orders")).toEqual([]);
    expect(changes).toBe(2);
  });

  it("refuses an unknown service, and more than ten experiments at once", async () => {
    await setup([["orders", 2]]);
    expect((await rejection(chaos.start({ kind: "kill", service: "ghost", durationMs: 1_000, intervalMs: 1_000 }, "user:ops"), "KEELSON_ERR_NOT_FOUND")).message).toContain('"ghost"');
    for (let i = 0; i < 10; i++) await chaos.start({ kind: "latency", service: "orders", durationMs: 60_000, share: 0.1, delayMs: 10 }, "user:ops");
    await rejection(chaos.start({ kind: "latency", service: "orders", durationMs: 60_000, share: 0.1, delayMs: 10 }, "user:ops"), "KEELSON_ERR_CONFLICT");
    await rejection(chaos.stop("chaos-nope", "user:ops"), "KEELSON_ERR_NOT_FOUND");
  });
});

describe("parseChaosRequest", () => {
  it("fills defaults and names the bad field", () => {
    expect(parseChaosRequest({ kind: "kill", durationMs: 60_000 })).toEqual({ kind: "kill", durationMs: 60_000, intervalMs: 10_000 });
    expect(parseChaosRequest({ kind: "error", service: "orders", durationMs: 1_000 })).toEqual({ kind: "error", service: "orders", durationMs: 1_000, share: 1, status: 503 });
    const message = (body: Record<string, unknown>) => {
      try {
        parseChaosRequest(body);
        return "accepted";
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(message({ kind: "explode", durationMs: 1 })).toMatch(/^kind: expected kill, hang, latency, error/);
    expect(message({ kind: "kill" })).toMatch(/^durationMs: expected an integer from 1 to 3600000/);
    expect(message({ kind: "kill", durationMs: 7_200_000 })).toMatch(/^durationMs:/);
    expect(message({ kind: "kill", durationMs: 1_000, intervalMs: 5 })).toMatch(/^intervalMs: expected an integer from 100/);
    expect(message({ kind: "latency", service: "orders", durationMs: 1_000 })).toMatch(/^delayMs:/);
    expect(message({ kind: "latency", durationMs: 1_000, delayMs: 5 })).toMatch(/^service:/);
    expect(message({ kind: "error", service: "orders", durationMs: 1_000, share: 1.5 })).toMatch(/^share:/);
    expect(message({ kind: "error", service: "orders", durationMs: 1_000, status: 200 })).toMatch(/^status: expected an integer from 400 to 599/);
    expect(message({ kind: "kill", durationMs: 1_000, delayMs: 5 })).toMatch(/^delayMs: not an option of a kill experiment/);
  });
});
