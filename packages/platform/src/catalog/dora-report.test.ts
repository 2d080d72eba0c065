// The caching reporter: later reports read only new events, and see new events, imports and
// owner changes at once.
import { describe, expect, it } from "vitest";
import { createMemoryStore, type Store } from "../store/index.js";
import { createDoraReporter, doraReport } from "./dora-report.js";
import { importDoraChanges } from "./dora-changes.js";

async function setup(): Promise<{ store: Store; clock: { ms: number } }> {
  const clock = { ms: Date.parse("2026-03-02T09:00:00.000Z") };
  const store = createMemoryStore({ now: () => clock.ms });
  await store.applyDesiredState({
    project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date(clock.ms).toISOString() },
    upsert: [{ project: "shop", name: "orders", spec: { owner: "commerce" }, release: undefined }],
    remove: [],
    events: [],
  });
  return { store, clock };
}

async function deploy(store: Store, clock: { ms: number }, id: string, to: string, commit: string, authored: string): Promise<void> {
  const base = { rollout: id, strategy: "rolling", to, commit, commitTime: authored };
  await store.appendEvent({ project: "shop", kind: "rollout.started", actor: "user:ana", subject: "service/orders", details: base });
  clock.ms += 60_000;
  await store.appendEvent({ project: "shop", kind: "rollout.succeeded", actor: "reconciler", subject: "service/orders", details: { ...base, durationMs: 60_000 } });
}

describe("createDoraReporter", () => {
  it("reads only new events on later reports and answers what a fresh read answers", async () => {
    const { store, clock } = await setup();
    let reads = 0;
    const counted: Store = { ...store, listEvents: (q) => ((reads += 1), store.listEvents(q)) };
    const dora = createDoraReporter({ store: counted, project: "shop" });
    await deploy(store, clock, "ro-1", "r-1", "a".repeat(40), "2026-03-02T07:00:00.000Z");
    const first = await dora.report({ now: new Date(clock.ms) });
    expect(first.counts.deployments).toBe(1);
    await deploy(store, clock, "ro-2", "r-2", "b".repeat(40), "2026-03-02T08:01:00.000Z");
    const second = await dora.report({ now: new Date(clock.ms) });
    expect(second.counts.deployments).toBe(2);
    expect(second).toEqual(await doraReport({ store, project: "shop", now: new Date(clock.ms) }));
    // One read per report, each starting after the newest event seen.
    expect(reads).toBe(2);
  });

  it("sees an import once told, and a changed owner at once", async () => {
    const { store, clock } = await setup();
    const dora = createDoraReporter({ store, project: "shop" });
    await deploy(store, clock, "ro-1", "r-1", "a".repeat(40), "2026-03-02T08:00:00.000Z");
    const before = await dora.report({ now: new Date(clock.ms) });
    expect(before.deployments[0]?.changes).toBe(1);
    await importDoraChanges({
      store,
      project: "shop",
      service: "orders",
      request: { deployments: [{ id: "ro-1", commits: [{ sha: "a".repeat(40), authorTime: "2026-03-02T08:00:00.000Z" }, { sha: "c".repeat(40), authorTime: "2026-03-01T08:00:00.000Z" }] }] },
      actor: "user:ana",
      now: new Date(clock.ms),
    });
    dora.changesImported();
    expect((await dora.report({ now: new Date(clock.ms) })).deployments[0]?.changes).toBe(2);
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h2", appliedAt: new Date(clock.ms).toISOString() },
      upsert: [{ project: "shop", name: "orders", spec: { owner: "web" }, release: undefined }],
      remove: [],
      events: [],
    });
    expect((await dora.report({ now: new Date(clock.ms), team: "web" })).counts.deployments).toBe(1);
  });
});
