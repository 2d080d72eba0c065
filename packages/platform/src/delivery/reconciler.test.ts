import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver, createMemoryHost, type MemoryDriver, type MemoryHost } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createReconciler, type ApplyProgress, type Reconciler } from "./reconciler.js";

const manifest = (services: Record<string, { replicas?: number; env?: string; port?: number }>) =>
  parseManifest(
    [
      "project: shop",
      "services:",
      ...Object.entries(services).flatMap(([name, s]) => [
        `  ${name}:`,
        "    owner: web",
        `    path: ${name}`,
        "    start: node main.js",
        `    replicas: ${s.replicas ?? 1}`,
        "    startTimeout: 5s",
        ...(s.port ? [`    port: ${s.port}`] : []),
        ...(s.env ? [`    env: { VERSION: "${s.env}" }`] : []),
      ]),
      "",
    ].join("\n"),
    "/tmp/shop/keelson.yaml",
    { checkPaths: false },
  );

describe("reconciler (memory store and driver)", () => {
  let store: Store;
  let host: MemoryHost;
  let driver: MemoryDriver;
  let reconciler: Reconciler;
  let stateDir: string;
  let cleanup: () => Promise<void>;
  /** Releases whose replicas crash at once. */
  const broken = new Set<string>();

  function make(d: MemoryDriver): Reconciler {
    return createReconciler({ store, driver: d, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:8080", skipBuilds: true, convergeIntervalMs: 50 });
  }

  beforeEach(async () => {
    ({ dir: stateDir, cleanup } = await makeTempDir("keelson-reconciler-"));
    store = createMemoryStore();
    host = createMemoryHost();
    broken.clear();
    driver = createMemoryDriver({ host, readyDelayMs: 5, behavior: (spec) => (broken.has(spec.release) ? { exitAfterMs: 1, exitCode: 7 } : undefined) });
    reconciler = make(driver);
  });
  afterEach(async () => {
    await reconciler.stop();
    await cleanup();
  });

  const running = (service?: string) =>
    driver
      .list()
      .filter((r) => service === undefined || r.spec.service === service)
      .map((r) => ({ id: r.spec.id, release: r.spec.release, state: r.state }))
      .sort((a, b) => a.id.localeCompare(b.id));

  it("creates every service, waits until ready, records events, and a second apply changes nothing", async () => {
    const progress: ApplyProgress[] = [];
    const result = await reconciler.apply(manifest({ orders: { replicas: 2 }, payments: {} }), { actor: "test", onProgress: (p) => progress.push(p) });
    expect(result.failures).toEqual([]);
    expect(result.plan.changes.map((c) => `${c.action} ${c.service}`)).toEqual(["create orders", "create payments"]);
    expect(running().map((r) => r.state)).toEqual(["ready", "ready", "ready"]);
    expect(progress.filter((p) => p.type === "service").map((p) => (p as { service: string }).service).sort()).toEqual(["orders", "payments"]);
    const records = await store.listReplicas("shop");
    expect(records).toHaveLength(3);
    const kinds = (await store.listEvents({ project: "shop" })).map((e) => e.kind);
    expect(kinds).toContain("service.created");
    expect(kinds).toContain("release.created");
    expect(kinds).toContain("manifest.applied");

    const before = running();
    const again = await reconciler.apply(manifest({ orders: { replicas: 2 }, payments: {} }), { actor: "test" });
    expect(again.plan.changes).toEqual([]);
    expect(running()).toEqual(before);
  });

  it("rolls a config change out to a new release and stops the old replicas", async () => {
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "1" } }), { actor: "test" });
    const old = (await store.getService("shop", "orders"))!.release!;
    const result = await reconciler.apply(manifest({ orders: { replicas: 2, env: "2" } }), { actor: "test" });
    expect(result.failures).toEqual([]);
    const next = (await store.getService("shop", "orders"))!.release!;
    expect(next).not.toBe(old);
    expect(running("orders").map((r) => [r.release, r.state])).toEqual([
      [next, "ready"],
      [next, "ready"],
    ]);
    expect(result.plan.changes[0]?.fields.map((f) => f.path)).toEqual(["env.VERSION"]);
  });

  it("rolls back automatically when the new release crash-loops, keeping the old replicas serving", async () => {
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "good" } }), { actor: "test" });
    const good = (await store.getService("shop", "orders"))!.release!;
    const before = running("orders");
    // The next release's replicas exit at once.
    const { releaseId, configHash } = await import("./release-id.js");
    const bad = manifest({ orders: { replicas: 2, env: "bad" } });
    broken.add(releaseId("none", configHash(bad.manifest.services.orders!)));

    const progress: ApplyProgress[] = [];
    const result = await reconciler.apply(bad, { actor: "test", onProgress: (p) => progress.push(p) });
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0]?.message).toMatch(/exited 3 times before becoming ready \(last exit code 7\)/);
    expect(progress.some((p) => p.type === "service" && p.status === "rolled-back")).toBe(true);
    expect((await store.getService("shop", "orders"))!.release).toBe(good);
    await waitFor(() => running("orders").every((r) => r.release === good) && running("orders").length === 2, { what: "only the good release to run" });
    expect(running("orders")).toEqual(before);
  });

  it("scales up and down, and down() stops everything until the next apply", async () => {
    await reconciler.apply(manifest({ orders: {} }), { actor: "test" });
    reconciler.start();
    await reconciler.scale("orders", 3, "test");
    await waitFor(() => running("orders").filter((r) => r.state === "ready").length === 3, { what: "3 ready" });
    await reconciler.scale("orders", 1, "test");
    await waitFor(() => running("orders").length === 1, { what: "1 replica" });
    expect(running("orders")[0]?.id).toMatch(/-0$/);
    await expect(reconciler.scale("nope", 1, "test")).rejects.toMatchObject({ code: "KEELSON_ERR_NOT_FOUND" });
    await expect(reconciler.scale("orders", -1, "test")).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });

    await reconciler.down("test");
    expect(running()).toEqual([]);
    await new Promise((r) => setTimeout(r, 200)); // four loop periods: nothing may come back
    expect(running()).toEqual([]);
    await reconciler.apply(manifest({ orders: {} }), { actor: "test" });
    expect(running("orders").map((r) => r.state)).toEqual(["ready"]);
  });

  it("a new reconciler re-adopts running replicas without restarting them", async () => {
    await reconciler.apply(manifest({ orders: { replicas: 2 } }), { actor: "test" });
    const before = driver.list().map((r) => [r.spec.id, r.pid]);
    await reconciler.stop();
    await driver.detach();

    const driver2 = createMemoryDriver({ host, readyDelayMs: 5 });
    const next = make(driver2);
    const { adopted, lost } = await next.resume();
    expect(adopted.sort()).toEqual(before.map(([id]) => id).sort());
    expect(lost).toEqual([]);
    expect(driver2.list().map((r) => [r.spec.id, r.pid])).toEqual(expect.arrayContaining(before));
    expect(driver2.list().every((r) => r.restarts === 0)).toBe(true);
    reconciler = next;
    driver = driver2;
  });

  it("refuses a manifest for another project", async () => {
    const other = parseManifest("project: other\nservices: {}\n", "/tmp/x/keelson.yaml", { checkPaths: false });
    await expect(reconciler.apply(other, { actor: "test" })).rejects.toMatchObject({ code: "KEELSON_ERR_CONFLICT" });
  });
});
