// MemoryStore runs the Store contract, plus what the conformance suite cannot check
// without a clock of its own.
import { describe, expect, it } from "vitest";
import { createMemoryStore } from "./memory-store.js";
import { describeStoreConformance } from "./store.conformance.js";

describeStoreConformance("memory", async () => ({ store: createMemoryStore(), cleanup: async () => {} }));

describe("createMemoryStore", () => {
  it("stamps events and service changes with the injected clock, and moves updatedAt only on a change", async () => {
    let now = Date.parse("2025-06-01T08:00:00.000Z");
    const store = createMemoryStore({ now: () => now });
    const project = { name: "shop", manifestPath: "/srv/shop/keelson.yaml", manifestHash: "h", appliedAt: "2025-06-01T07:00:00.000Z" };
    const orders = { project: "shop", name: "orders", spec: { port: 8080 }, release: undefined };

    await store.applyDesiredState({ project, upsert: [orders], remove: [], events: [] });
    now += 60_000;
    await store.applyDesiredState({ project, upsert: [orders], remove: [], events: [] });
    expect((await store.getService("shop", "orders"))?.updatedAt).toBe("2025-06-01T08:00:00.000Z");

    await store.setServiceRelease("shop", "orders", "r-1");
    expect((await store.getService("shop", "orders"))?.updatedAt).toBe("2025-06-01T08:01:00.000Z");

    now += 60_000;
    const appended = await store.appendEvent({ project: "shop", kind: "controlplane.started", actor: "controlplane", subject: "project/shop" });
    expect(appended.at).toBe("2025-06-01T08:02:00.000Z");
  });

  it("keeps each store's data to itself", async () => {
    const a = createMemoryStore();
    const b = createMemoryStore();
    await a.setSetting("routing.version", "3");
    await a.appendEvent({ project: "shop", kind: "controlplane.started", actor: "cli", subject: "project/shop" });
    expect(await b.getSetting("routing.version")).toBeUndefined();
    expect(await b.listEvents()).toEqual([]);
    expect(a.kind).toBe("memory");
  });
});
