import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EventKind } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver, createMemoryHost, type MemoryDriver, type MemoryHost } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createRoutingPublisher, readTrafficSplit } from "../gateway/index.js";
import { createReconciler, type ApplyProgress, type DeployResult, type Reconciler } from "./reconciler.js";
import type { AnalysisProvider } from "./rollout.js";

const manifest = (services: Record<string, { replicas?: number; env?: string; port?: number; deploy?: string }>) =>
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
        ...(s.deploy ? [`    deploy: ${s.deploy}`] : []),
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
  /** Releases whose replicas crash at once (or one replica of a release: `<release>/<index>`). */
  const broken = new Set<string>();

  function make(d: MemoryDriver): Reconciler {
    return createReconciler({ store, driver: d, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:8080", skipBuilds: true, convergeIntervalMs: 50 });
  }

  beforeEach(async () => {
    ({ dir: stateDir, cleanup } = await makeTempDir("keelson-reconciler-"));
    store = createMemoryStore();
    host = createMemoryHost();
    broken.clear();
    driver = createMemoryDriver({ host, readyDelayMs: 5, behavior: (spec) => (broken.has(spec.release) || broken.has(`${spec.release}/${spec.index}`) ? { exitAfterMs: 1, exitCode: 7 } : undefined) });
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
    // Recorded ready, adopted ready: the routing table never goes without them.
    expect(driver2.list().map((r) => r.state)).toEqual(["ready", "ready"]);
    reconciler = next;
    driver = driver2;
  });

  it("gives replicas the service's memory limit, records memory-exceeded with the figures, and applies a changed limit on restart", async () => {
    const MIB = 1024 * 1024;
    const withMemory = (memory: string) =>
      parseManifest(["project: shop", "services:", "  orders:", "    owner: web", "    path: orders", "    start: node main.js", "    startTimeout: 5s", `    resources: { memory: ${memory} }`, ""].join("\n"), "/tmp/shop/keelson.yaml", {
        checkPaths: false,
      });
    await reconciler.stop();
    driver = createMemoryDriver({ host, readyDelayMs: 5, usageIntervalMs: 10 });
    reconciler = make(driver);
    await reconciler.apply(withMemory("64mb"), { actor: "test" });
    const id = driver.list()[0]?.spec.id as string;
    expect(driver.get(id)?.spec.memoryLimitBytes).toBe(64 * MIB);

    driver.setUsage(id, { cpuPercent: 5, memoryBytes: 100 * MIB });
    const recorded = await waitFor(async () => (await store.listEvents({ project: "shop", kinds: ["replica.memory-exceeded"] }))[0], { what: "a replica.memory-exceeded event" });
    expect(recorded).toMatchObject({
      subject: `replica/${id}`,
      actor: "runtime",
      details: { service: "orders", reason: "memory 100 MiB over its limit 64 MiB", memoryBytes: 100 * MIB, limitBytes: 64 * MIB },
    });
    await waitFor(() => driver.get(id)?.state === "ready" && driver.get(id)?.restarts === 1, { what: "the replica restarted and ready" });

    // Resources are not part of the release: the running replica keeps its limit until restarted.
    await reconciler.apply(withMemory("128mb"), { actor: "test" });
    expect(driver.get(id)?.spec.memoryLimitBytes).toBe(64 * MIB);
    await reconciler.restart("orders", "test");
    expect(driver.get(id)).toMatchObject({ state: "ready", restarts: 2 });
    expect(driver.get(id)?.spec.memoryLimitBytes).toBe(128 * MIB);
  });

  it("refuses a manifest for another project", async () => {
    const other = parseManifest("project: other\nservices: {}\n", "/tmp/x/keelson.yaml", { checkPaths: false });
    await expect(reconciler.apply(other, { actor: "test" })).rejects.toMatchObject({ code: "KEELSON_ERR_CONFLICT" });
  });

  const release = async (service = "orders") => (await store.getService("shop", service))!.release!;
  const weights = async (service = "orders") => (await readTrafficSplit(store, "shop", service))?.weights.map((w) => [w.release, w.weight]);

  it("rolls with maxSurge and maxUnavailable: never more than one extra replica, never fewer ready than desired", async () => {
    const deploy = "{ maxSurge: 25, maxUnavailable: 0, drain: 0 }";
    await reconciler.apply(manifest({ orders: { replicas: 4, env: "1", deploy } }), { actor: "test" });
    let most = 0;
    let fewestReady = Infinity;
    const off = driver.onEvent(() => {
      const live = running("orders").filter((r) => r.state !== "stopping");
      most = Math.max(most, live.length);
      fewestReady = Math.min(fewestReady, live.filter((r) => r.state === "ready").length);
    });
    const result = await reconciler.apply(manifest({ orders: { replicas: 4, env: "2", deploy } }), { actor: "test" });
    off();
    expect(result.failures).toEqual([]);
    expect(most).toBe(5);
    expect(fewestReady).toBeGreaterThanOrEqual(4);
    expect(running("orders").map((r) => r.release)).toEqual(Array(4).fill(await release()));
  });

  it("blue-green: starts the whole new set, switches all traffic at once, keeps the old set warm, then stops it", async () => {
    const deploy = "{ strategy: blueGreen, rollbackWindow: 300ms, drain: 0 }";
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "1", deploy } }), { actor: "test" });
    const blue = await release();
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "2", deploy } }), { actor: "test" });
    const green = await release();
    // The apply returns at the switch: all traffic on green, blue still running.
    expect(await weights()).toEqual([[green, 100], [blue, 0]]);
    expect((await reconciler.rolloutOf("orders"))?.phase).toBe("switched");
    expect(running("orders").map((r) => r.release).sort()).toEqual([blue, blue, green, green].sort());
    reconciler.start();
    await waitFor(async () => running("orders").every((r) => r.release === green) && (await weights()) === undefined, { what: "the blue set to stop after the window and the split to clear" });
    expect((await reconciler.rolloutOf("orders"))?.phase).toBe("succeeded");
    const kinds = (await store.listEvents({ project: "shop", subject: "service/orders" })).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(["rollout.started", "rollout.step", "rollout.succeeded"]));
  });

  it("rolls back at once while the old set is warm, and lists releases with their status", async () => {
    const deploy = "{ strategy: blueGreen, rollbackWindow: 5m, drain: 0 }";
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "1", deploy } }), { actor: "test" });
    const blue = await release();
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "2", deploy } }), { actor: "test" });
    const green = await release();
    const view = await reconciler.releases("orders");
    expect(view.map((r) => [r.id, r.status])).toEqual([[green, "live"], [blue, "previous"]]);
    expect(view[1]?.replicas).toBe(2);

    const t = Date.now();
    const result = await reconciler.rollback("orders", { actor: "alice", wait: false });
    expect(Date.now() - t).toBeLessThan(1000);
    // Traffic is back on blue as soon as the call returns; green drains afterwards.
    expect(result.release).toBe(blue);
    expect(await release()).toBe(blue);
    expect(await weights()).toEqual([[blue, 100], [green, 0]]);
    reconciler.start();
    await waitFor(() => running("orders").every((r) => r.release === blue), { what: "green to stop" });
    await expect(reconciler.rollback("orders", { actor: "alice", to: blue })).rejects.toMatchObject({ code: "KEELSON_ERR_CONFLICT" });
    await expect(reconciler.rollback("orders", { actor: "alice", to: "r-nope" })).rejects.toMatchObject({ code: "KEELSON_ERR_NOT_FOUND" });
    const started = await store.listEvents({ project: "shop", kinds: ["rollback.started"] });
    expect(started[0]?.actor).toBe("alice");
  });

  it("canary: walks its steps, waits for approval, refuses another deploy meanwhile and finishes on promote", async () => {
    const deploy = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }, { setWeight: 75 }] }";
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "1", deploy } }), { actor: "test" });
    const stable = await release();
    const progress: ApplyProgress[] = [];
    const result = await reconciler.apply(manifest({ orders: { replicas: 2, env: "2", deploy } }), { actor: "test", onProgress: (p) => progress.push(p) });
    expect(result.failures).toEqual([]);
    const canary = await release();
    expect(progress.some((p) => p.type === "service" && /paused at step 2/.test(p.message ?? ""))).toBe(true);
    expect(await weights()).toEqual([[canary, 50], [stable, 50]]);
    // One canary replica for half the traffic, the full stable set beside it.
    expect(running("orders").filter((r) => r.release === canary)).toHaveLength(1);
    expect(running("orders").filter((r) => r.release === stable)).toHaveLength(2);

    const busy = await reconciler.apply(manifest({ orders: { replicas: 2, env: "3", deploy } }), { actor: "test" });
    expect(busy.failures[0]).toMatchObject({ service: "orders", code: "KEELSON_ERR_CONFLICT" });
    expect(await release()).toBe(canary);

    reconciler.start();
    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "succeeded" && running("orders").every((r) => r.release === canary) && (await weights()) === undefined, { what: "the canary to finish" });
    expect(running("orders")).toHaveLength(2);
    const steps = (await store.listEvents({ project: "shop", kinds: ["rollout.step"] })).map((e) => e.details.weight);
    expect(steps).toEqual([50, 75, 100]);
  });

  /** A metrics source stand-in: per look, each version serves 100 more requests, the canary failing `canaryErrors` of them. */
  function scripted(opts: { canaryErrors?: number; fail?: boolean } = {}) {
    const looks: Array<{ canary: string; baseline: string }> = [];
    const provider: AnalysisProvider = {
      async observe(target) {
        looks.push({ canary: target.canary, baseline: target.baseline });
        const k = looks.length;
        if (opts.fail) return { at: Date.now(), error: "Prometheus at http://127.0.0.1:9: cannot connect (ECONNREFUSED)" };
        return { at: Date.now(), canary: { requests: 100 * k, errors: (opts.canaryErrors ?? 0) * k }, baseline: { requests: 100 * k, errors: 0 } };
      },
    };
    return { provider, looks };
  }
  const withAnalysis = (provider: AnalysisProvider | undefined) =>
    createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:8080", skipBuilds: true, convergeIntervalMs: 50, ...(provider ? { analysis: provider } : {}) });
  const analysisDeploy = (analysis: string) => `{ strategy: canary, drain: 0, steps: [{ setWeight: 20 }, { analysis: { interval: 20ms, duration: 150ms, metrics: [errors], ${analysis} } }, { setWeight: 50 }] }`;

  it("canary analysis: a baseline of the old release gets the canary's share; a good canary passes and is promoted", async () => {
    const { provider, looks } = scripted();
    await reconciler.stop();
    reconciler = withAnalysis(provider);
    const deploy = analysisDeploy("");
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "1", deploy } }), { actor: "test" });
    const stable = await release();
    reconciler.start();
    const result = await reconciler.apply(manifest({ orders: { replicas: 2, env: "2", deploy } }), { actor: "test" });
    expect(result.failures).toEqual([]);
    const canary = await release();
    const state = await reconciler.rolloutOf("orders");
    expect(state?.baseline).toMatch(/^b-[0-9a-f]{12}$/);
    const baseline = state?.baseline as string;
    // The analysis compared the canary with the baseline, not with the old fleet.
    expect(looks.length).toBeGreaterThan(1);
    expect(looks.every((l) => l.canary === canary && l.baseline === baseline)).toBe(true);
    const splits = (await store.listEvents({ project: "shop", kinds: ["traffic.changed"] })).map((e) => (e.details.after as { weights?: Array<{ release: string; weight: number }> } | null)?.weights?.map((w) => [w.release, w.weight]));
    expect(splits).toContainEqual([[canary, 20], [baseline, 20], [stable, 60]]);
    expect(splits).toContainEqual([[canary, 50], [baseline, 50], [stable, 0]]);
    expect(state?.analyses?.[0]).toMatchObject({ step: 1, phase: "Successful", dryRun: false });
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "succeeded" && running("orders").every((r) => r.release === canary) && (await weights()) === undefined, { what: "the canary to finish" });
    // The baseline's replicas and its release record are gone with the rollout.
    await waitFor(async () => (await store.getRelease(baseline)) === undefined, { what: "the baseline release to be removed" });
    expect((await store.listEvents({ project: "shop", kinds: ["rollout.analysis"] }))[0]?.details).toMatchObject({ phase: "Successful" });
  });

  it("canary analysis: a failing canary is rolled back at once, with the evidence in the event (what notifications are made from)", async () => {
    await reconciler.stop();
    reconciler = withAnalysis(scripted({ canaryErrors: 12 }).provider);
    const deploy = analysisDeploy("");
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "1", deploy } }), { actor: "test" });
    const stable = await release();
    reconciler.start();
    const result = await reconciler.apply(manifest({ orders: { replicas: 2, env: "2", deploy } }), { actor: "test" });
    expect(result.failures[0]).toMatchObject({ service: "orders", code: "KEELSON_ERR_ROLLOUT_FAILED", message: expect.stringMatching(/canary analysis failed: error ratio: canary 12\.00% .* vs baseline 0\.00%/) });
    expect(await release()).toBe(stable);
    const canary = (await reconciler.rolloutOf("orders"))?.to;
    // The split right after the failure: everything on the stable release, nothing on canary or baseline.
    const splits = (await store.listEvents({ project: "shop", kinds: ["traffic.changed"] })).map((e) => (e.details.after as { weights?: Array<{ release: string; weight: number; label?: string }> } | undefined)?.weights);
    const afterFailure = splits.find((w) => w?.some((x) => x.label === "failed"));
    expect(afterFailure?.map((w) => [w.release, w.weight])).toEqual([[stable, 100], [canary, 0]]);
    const failed = (await store.listEvents({ project: "shop", kinds: ["rollout.failed"] }))[0];
    const evidence = (failed?.details.analysis as { evidence: { canary: { errors: number }; checks: Array<{ name: string; status: string }> } }).evidence;
    expect(evidence.canary.errors).toBeGreaterThan(0);
    expect(evidence.checks).toContainEqual(expect.objectContaining({ name: "error ratio", status: "fail" }));
    expect(await store.listEvents({ project: "shop", kinds: ["rollout.failed"] })).toEqual([expect.objectContaining({ subject: "service/orders", details: expect.objectContaining({ rolledBackTo: stable }) })]);
    await waitFor(async () => running("orders").every((r) => r.release === stable) && (await weights()) === undefined, { what: "the canary and baseline to stop and the split to clear" });
    expect(running("orders")).toHaveLength(2);
  });

  it("canary analysis: each look's numbers per version stay with the analysis that failed (what the dashboard charts)", async () => {
    await reconciler.stop();
    const { provider, looks } = scripted({ canaryErrors: 12 });
    reconciler = withAnalysis(provider);
    const deploy = analysisDeploy("");
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "1", deploy } }), { actor: "test" });
    reconciler.start();
    await reconciler.apply(manifest({ orders: { replicas: 2, env: "2", deploy } }), { actor: "test" });
    const state = await reconciler.rolloutOf("orders");
    expect(state?.phase).toBe("rolled-back");
    const [failed] = state?.analyses ?? [];
    expect(failed?.phase).toBe("Failed");
    const samples = failed?.samples ?? [];
    // One sample per look that read numbers, in time order, the last one the verdict's evidence.
    expect(samples.length).toBe(looks.length);
    expect(samples.map((x) => x.canary.requests)).toEqual(samples.map((_, i) => 100 * (i + 1)));
    expect(samples.every((x) => x.canary.errorRatio === 0.12 && x.baseline.errorRatio === 0)).toBe(true);
    expect(samples.map((x) => x.at)).toEqual([...samples.map((x) => x.at)].sort((a, b) => a - b));
    expect(samples.at(-1)).toEqual({ at: failed?.evidence?.at, canary: failed?.evidence?.canary, baseline: failed?.evidence?.baseline });
  });

  it("canary analysis: a broken metrics source pauses the rollout (Error) instead of promoting; abort rolls it back", async () => {
    await reconciler.stop();
    reconciler = withAnalysis(scripted({ fail: true }).provider);
    const deploy = analysisDeploy("");
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "1", deploy } }), { actor: "test" });
    const stable = await release();
    reconciler.start();
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "2", deploy } }), { actor: "test" });
    const canary = await release();
    const state = await reconciler.rolloutOf("orders");
    expect(state).toMatchObject({ phase: "paused", step: 1 });
    expect(state?.message).toMatch(/analysis Error: the metrics source failed 3 times in a row: Prometheus .*ECONNREFUSED/);
    expect(await release()).toBe(canary);
    await reconciler.abort("orders", "alice");
    expect(await release()).toBe(stable);
    expect((await reconciler.rolloutOf("orders"))?.message).toBe("aborted by alice");
    await waitFor(async () => running("orders").every((r) => r.release === stable) && (await weights()) === undefined, { what: "the abort to finish" });
  });

  it("canary analysis: a metrics source that fails or freezes halfway through pauses the rollout (Error), never promotes", async () => {
    // Two good looks, then the source goes away: as failed reads, or (a store no longer fed) as
    // totals that stop rising although the canary still has its weight. The source's clock runs
    // 10 s a look (looks are 20 ms apart), so still totals can outlast what a late scrape explains.
    const halfway = (mode: "fail" | "freeze"): AnalysisProvider => {
      let k = 0;
      return {
        async observe(_target, _settings, since) {
          k++;
          const at = since + k * 10_000;
          if (k > 2 && mode === "fail") return { at, error: "gateway metrics at http://127.0.0.1:9: the scrape failed: cannot connect (ECONNREFUSED)" };
          const n = 100 * Math.min(k, 2);
          return { at, canary: { requests: n, errors: 0 }, baseline: { requests: n, errors: 0 }, source: "the built-in metric store (gateway scrapes)", scrapeIntervalMs: 10_000 };
        },
      };
    };
    // Frozen totals (200 requests each, past minRequests) used to pass once the duration was over.
    const deploy = "{ strategy: canary, drain: 0, steps: [{ setWeight: 20 }, { analysis: { interval: 20ms, duration: 2m, metrics: [errors] } }, { setWeight: 50 }] }";
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "1", deploy } }), { actor: "test" });
    const stable = await release();
    for (const [mode, message] of [
      ["fail", /analysis Error: the metrics source failed 3 times in a row: gateway metrics at .*ECONNREFUSED/],
      ["freeze", /analysis Error: the metrics stopped changing: neither version's request count rose in 30 s \(3 looks\), .*the built-in metric store \(gateway scrapes\)/],
    ] as const) {
      await reconciler.stop();
      reconciler = withAnalysis(halfway(mode));
      reconciler.start();
      await reconciler.apply(manifest({ orders: { replicas: 1, env: mode, deploy } }), { actor: "test" });
      const canary = await release();
      expect(canary).not.toBe(stable);
      const state = await reconciler.rolloutOf("orders");
      expect(state).toMatchObject({ phase: "paused", step: 1, weight: 20 });
      expect(state?.message).toMatch(message);
      expect(state?.analyses?.at(-1)?.phase).toBe("Error");
      expect((await weights())?.find(([r]) => r === canary)).toEqual([canary, 20]);
      expect((await store.listEvents({ project: "shop", kinds: ["rollout.succeeded"] })).filter((e) => e.details.to === canary)).toEqual([]);
      await reconciler.abort("orders", "alice");
      await waitFor(async () => (await weights()) === undefined && running("orders").every((r) => r.release === stable), { what: "the abort to finish" });
    }
  });

  it("canary analysis: too little traffic is Inconclusive and pauses; promote accepts it; a dry run only reports", async () => {
    const quiet: AnalysisProvider = { observe: async () => ({ at: Date.now(), canary: { requests: 3, errors: 0 }, baseline: { requests: 3, errors: 0 } }) };
    await reconciler.stop();
    reconciler = withAnalysis(quiet);
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "1", deploy: analysisDeploy("") } }), { actor: "test" });
    reconciler.start();
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "2", deploy: analysisDeploy("") } }), { actor: "test" });
    const state = await reconciler.rolloutOf("orders");
    expect(state?.phase).toBe("paused");
    expect(state?.message).toMatch(/analysis Inconclusive: too little traffic .* canary 3, baseline 3 requests \(each version needs 50\)/);
    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "succeeded", { what: "the promoted canary to finish" });

    // Dry run: a failing canary is reported, not rolled back.
    await reconciler.stop();
    reconciler = withAnalysis(scripted({ canaryErrors: 30 }).provider);
    reconciler.start();
    const dry = analysisDeploy("dryRun: true");
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "3", deploy: dry } }), { actor: "test" });
    const r3 = await release();
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "4", deploy: dry } }), { actor: "test" });
    const r4 = await release();
    expect(r4).not.toBe(r3);
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "succeeded", { what: "the dry-run canary to finish" });
    const done = await reconciler.rolloutOf("orders");
    expect(done?.analyses?.[0]).toMatchObject({ dryRun: true, phase: "Successful", wouldHave: { phase: "Failed" } });
    const reported = await store.listEvents({ project: "shop", kinds: ["rollout.analysis"], descending: true, limit: 1 });
    expect(reported[0]?.details).toMatchObject({ phase: "Failed", dryRun: true });
  });

  it("canary analysis: promote skips an analysis under way and says so in the history; releases hide the baseline", async () => {
    await reconciler.stop();
    reconciler = withAnalysis(scripted().provider);
    const slow = "{ strategy: canary, drain: 0, steps: [{ setWeight: 20 }, { analysis: { interval: 20ms, duration: 1h } }, { pause: manual }] }";
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "1", deploy: slow } }), { actor: "test" });
    reconciler.start();
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "2", deploy: slow } }), { actor: "test", waitReady: false });
    await waitFor(async () => ((await reconciler.rolloutOf("orders"))?.analysis?.run.looks ?? 0) >= 2, { what: "the analysis to look twice" });
    expect((await reconciler.releases("orders")).map((r) => r.id).some((id) => id.startsWith("b-"))).toBe(false);
    const promoted = await reconciler.promote("orders", "bob");
    expect(promoted.analyses?.[0]).toMatchObject({ step: 1, phase: "Inconclusive", reason: "promoted by bob before the analysis decided" });
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "paused", { what: "the manual pause after the analysis" });
    expect((await reconciler.rolloutOf("orders"))?.step).toBe(2);
  });

  it("canary analysis: a slow metrics source does not hold the converge loop", async () => {
    let release: () => void = () => {};
    let calls = 0;
    const slow: AnalysisProvider = {
      observe: () => {
        calls++;
        return new Promise((resolve) => {
          release = () => resolve({ at: Date.now(), canary: { requests: 100 * calls, errors: 0 }, baseline: { requests: 100 * calls, errors: 0 } });
        });
      },
    };
    await reconciler.stop();
    reconciler = withAnalysis(slow);
    const deploy = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { analysis: { interval: 20ms, duration: 1h, metrics: [errors] } }] }";
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "1", deploy }, payments: { replicas: 1 } }), { actor: "test" });
    reconciler.start();
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "2", deploy }, payments: { replicas: 1 } }), { actor: "test", waitReady: false });
    await waitFor(() => calls >= 1, { what: "the first look to start" });
    // The look hangs; meanwhile another service scales as usual.
    await reconciler.scale("payments", 3, "test");
    await waitFor(() => running("payments").filter((r) => r.state === "ready").length === 3, { what: "payments to scale while the look hangs" });
    expect(calls).toBe(1);
    expect((await reconciler.rolloutOf("orders"))?.analysis?.run.looks).toBe(0);
    release();
    await waitFor(async () => ((await reconciler.rolloutOf("orders"))?.analysis?.run.looks ?? 0) >= 1, { what: "the answer to be judged" });
  });

  it("canary: a match step sends matching requests to the canary before any weighted traffic", async () => {
    const deploy = '{ strategy: canary, drain: 0, affinity: { header: x-user-id }, steps: [{ match: { headers: { X-Beta: "1" }, cookies: { canary: { prefix: "yes" } } } }, { pause: manual }, { setWeight: 10 }] }';
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "1", deploy } }), { actor: "test" });
    const stable = await release();
    await reconciler.apply(manifest({ orders: { replicas: 1, env: "2", deploy } }), { actor: "test" });
    const canary = await release();
    const split = await readTrafficSplit(store, "shop", "orders");
    expect(split?.weights.map((w) => [w.release, w.weight])).toEqual([[canary, 0], [stable, 100]]);
    expect(split?.match).toEqual([{ release: canary, headers: { "x-beta": { exact: "1" } }, cookies: { canary: { prefix: "yes" } } }]);
    expect(split?.affinity).toEqual({ header: "x-user-id" });
  });

  /**
   * Two services, orders and payments, built by real pipelines (no build or test stages) from
   * dependency-free folders, for release groups. `deploy`, `more` (extra lines, e.g. a port) and
   * `startTimeout` (default 5s) per service; `version` writes a new main.js into both, so both get
   * a new release.
   */
  async function groupProject() {
    const project = join(stateDir, "project");
    const version = async (v: string) => {
      for (const name of ["orders", "payments"]) {
        await mkdir(join(project, name), { recursive: true });
        await writeFile(join(project, name, "main.js"), `// ${v}\n`);
      }
    };
    await version("v1");
    const text = (services: Record<"orders" | "payments", { deploy: string; more?: string[]; startTimeout?: string }>) =>
      parseManifest(
        ["project: shop", "services:", ...(["orders", "payments"] as const).flatMap((n) => [`  ${n}:`, "    owner: web", `    path: ${n}`, "    start: node main.js", `    startTimeout: ${services[n].startTimeout ?? "5s"}`, `    deploy: ${services[n].deploy}`, ...(services[n].more ?? []).map((l) => `    ${l}`)]), ""].join("\n"),
        join(project, "keelson.yaml"),
        { checkPaths: false },
      );
    await reconciler.stop();
    reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:8080", convergeIntervalMs: 50 });
    return { text, version };
  }

  const events = async (service: string, kinds: EventKind[]) => (await store.listEvents({ project: "shop", subject: `service/${service}`, kinds })).map((e): Record<string, unknown> => ({ kind: e.kind, ...e.details }));

  it("a release group goes live together and rolls back together when one member fails", async () => {
    const { text, version } = await groupProject();
    const manualCanary = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }] }";
    const services = { orders: { deploy: manualCanary, more: ["replicas: 2"] }, payments: { deploy: "{ strategy: blueGreen, drain: 0, rollbackWindow: 1m }" } };
    await reconciler.apply(text(services), { actor: "test" });
    const v1 = { orders: await release("orders"), payments: await release("payments") };
    reconciler.start();

    // Together: orders pauses at its manual step; payments' new set is ready but waits for orders to switch.
    await version("v2");
    const first = await reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false });
    expect(first.map((r) => r.outcome)).toEqual(["started", "started"]);
    const group = first[0]?.rollout?.group;
    expect(group?.members).toEqual(["orders", "payments"]);
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "paused" && (await reconciler.rolloutOf("payments"))?.gate === true, { what: "orders paused, payments at its gate" });
    expect((await reconciler.rolloutOf("payments"))?.phase).toBe("progressing");
    expect(await readTrafficSplit(store, "shop", "payments").then((sp) => sp?.weights.find((w) => w.release === v1.payments)?.weight)).toBe(100);
    // Promoting one member promotes the group: both go live.
    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "switched" && ["finishing", "succeeded"].includes((await reconciler.rolloutOf("orders"))?.phase ?? ""), { what: "both members live" });

    // A second group where orders fails after the gate, scaling up to all its replicas, while
    // payments (blue-green) is live already: payments goes back too.
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "succeeded", { what: "orders' first rollout to finish" });
    const v2 = { orders: await release("orders"), payments: await release("payments") };
    await version("v3");
    const second = await reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false });
    const v3orders = second[0]?.release as string;
    // The canary replica (index 0) is fine; the second one, started on promotion, crashes.
    broken.add(`${v3orders}/1`);
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "paused" && (await reconciler.rolloutOf("payments"))?.gate === true, { what: "orders paused, payments at its gate" });
    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await release("payments")) === v2.payments && (await reconciler.rolloutOf("payments"))?.strategy === "rollback", { what: "payments rolled back with its group" });
    expect(await release("orders")).toBe(v2.orders);
    expect(await reconciler.rolloutOf("orders")).toMatchObject({ phase: "rolled-back", message: expect.stringMatching(/exited 3 times before becoming ready/) });
    expect((await reconciler.rolloutOf("payments"))?.message).toMatch(new RegExp(`^its release group ${second[0]?.rollout?.group?.id} failed: orders: replica orders-\\w+-1 exited 3 times`));
    // The switch had happened: payments' v3 served, and its failure is recorded as such.
    expect((await events("payments", ["rollback.started"])).at(-1)).toMatchObject({ warm: true, replacedServedAt: expect.any(String) });

    // Nothing starts when one member's pipeline fails.
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "succeeded", { what: "payments' rollback to finish" });
    await rm(join(stateDir, "project", "payments"), { recursive: true });
    await writeFile(join(stateDir, "project", "orders", "main.js"), "// v4\n");
    await expect(reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false })).rejects.toThrow(/none of orders, payments was deployed: payments: /);
    expect(await release("orders")).toBe(v2.orders);
  });

  it("a rolling member of a release group starts its new set beside the old one without traffic and switches when the group goes live", async () => {
    const { text, version } = await groupProject();
    const manualCanary = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }] }";
    await reconciler.apply(text({ orders: { deploy: manualCanary }, payments: { deploy: "{ strategy: rolling, drain: 0 }", more: ["replicas: 2"] } }), { actor: "test" });
    const v1 = await release("payments");
    reconciler.start();

    await version("v2");
    // The deploy waits until orders pauses and payments is ready at the gate behind it, and says so.
    const progress: ApplyProgress[] = [];
    const [, started] = await reconciler.deployTogether(["orders", "payments"], { actor: "ci", onProgress: (p) => progress.push(p) });
    const v2 = started?.release as string;
    expect(started).toMatchObject({ outcome: "deployed", rollout: { strategy: "rolling", hold: "switch", phase: "progressing", gate: true, weight: 0 } });
    expect(progress.find((p) => p.type === "service" && p.service === "payments")).toMatchObject({
      status: "ready",
      message: `rollout ${started?.rollout?.id} is ready and waits at its release group's gate for orders, which is paused; \`keelson promote orders\` goes on`,
    });
    expect((await reconciler.rolloutOf("orders"))?.phase).toBe("paused");
    // Both sets run and are ready; all traffic stays on the old one.
    expect(running("payments").map((r) => [r.release, r.state]).sort()).toEqual([[v1, "ready"], [v1, "ready"], [v2, "ready"], [v2, "ready"]].sort());
    expect(await weights("payments")).toEqual([[v1, 100], [v2, 0]]);
    expect(await reconciler.rolloutOf("payments")).toMatchObject({ phase: "progressing", weight: 0 });
    expect((await reconciler.rolloutOf("payments"))?.servedAt).toBeUndefined();

    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "succeeded", { what: "payments to switch and finish" });
    expect(running("payments").map((r) => r.release)).toEqual([v2, v2]);
    // It first served at the switch, after the group's gate opened (orders promoted).
    const switched = (await events("payments", ["rollout.step"])).find((e) => e.action === "switch");
    expect(switched).toMatchObject({ weight: 100, group: started?.rollout?.group?.id });
    const [promoted] = await store.listEvents({ project: "shop", subject: "service/orders", kinds: ["rollout.promoted"] });
    expect(Date.parse(String(switched?.servedAt))).toBeGreaterThanOrEqual(Date.parse(promoted?.at ?? ""));
    await waitFor(async () => (await readTrafficSplit(store, "shop", "payments")) === undefined, { what: "payments' split to be cleared" });
  });

  it("a rolling member held at the gate is rolled back with its group before it took any traffic", async () => {
    const { text, version } = await groupProject();
    const manualCanary = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }] }";
    await reconciler.apply(text({ orders: { deploy: manualCanary }, payments: { deploy: "{ strategy: rolling, drain: 0 }" } }), { actor: "test" });
    const v1 = { orders: await release("orders"), payments: await release("payments") };
    reconciler.start();
    await version("v2");
    const [first] = await reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false });
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "paused" && (await reconciler.rolloutOf("payments"))?.gate === true, { what: "orders paused, payments at its gate" });
    await reconciler.abort("orders", "alice");
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "rolled-back", { what: "payments rolled back with its group" });
    const payments = await reconciler.rolloutOf("payments");
    expect(payments?.message).toBe(`rolled back with its release group ${first?.rollout?.group?.id}: orders failed (aborted by alice)`);
    expect(payments?.servedAt).toBeUndefined();
    expect(await release("payments")).toBe(v1.payments);
    expect(await release("orders")).toBe(v1.orders);
    await waitFor(() => running("payments").every((r) => r.release === v1.payments), { what: "payments' new set to stop" });
    expect((await events("payments", ["rollout.failed"])).at(-1)).toMatchObject({ why: payments?.message, rolledBackTo: v1.payments });
  });

  it("a rolling member with a fixed port starts replacing replicas only once the rest of its group is at the gate", async () => {
    const { text, version } = await groupProject();
    const manualCanary = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }] }";
    await reconciler.apply(text({ orders: { deploy: manualCanary }, payments: { deploy: "{ strategy: rolling, drain: 0 }", more: ["port: 9400"] } }), { actor: "test" });
    const v1 = await release("payments");
    reconciler.start();
    await version("v2");
    const [, started] = await reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false });
    expect(started?.rollout).toMatchObject({ hold: "start" });
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "paused", { what: "orders paused" });
    // Orders waits for a person: payments has not started its new release.
    await reconciler.converge();
    expect(running("payments").map((r) => r.release)).toEqual([v1]);
    expect(await reconciler.rolloutOf("payments")).toMatchObject({ phase: "progressing", weight: 0 });
    expect((await reconciler.rolloutOf("payments"))?.gate).toBeUndefined();

    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "succeeded" && (await reconciler.rolloutOf("orders"))?.phase === "succeeded", { what: "both members live" });
    expect(running("payments").map((r) => r.release)).toEqual([started?.release]);
    // Orders reached its gate, then payments started rolling, then orders took all traffic.
    const steps = (await store.listEvents({ project: "shop", kinds: ["rollout.step"] })).map((e) => `${e.subject} ${String(e.details.action)}`);
    const at = (x: string) => steps.indexOf(x);
    expect(at("service/orders waiting for its release group")).toBeGreaterThanOrEqual(0);
    expect(at("service/payments rolling: its release group is at its gate")).toBeGreaterThan(at("service/orders waiting for its release group"));
    expect(at("service/orders promoted to all traffic")).toBeGreaterThan(at("service/payments rolling: its release group is at its gate"));
  });

  it("keelson deploy returns when a fixed-port member waits, not yet started, behind a paused member", { timeout: 30_000 }, async () => {
    const { text, version } = await groupProject();
    const manualCanary = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }] }";
    await reconciler.apply(text({ orders: { deploy: manualCanary }, payments: { deploy: "{ strategy: rolling, drain: 0 }", more: ["port: 9400"] } }), { actor: "test" });
    const v1 = await release("payments");
    reconciler.start();
    await version("v2");
    const progress: ApplyProgress[] = [];
    // Payments waits before its gate until orders is promoted, and nothing times a deploy's wait
    // out: it hung here until someone promoted orders. Bounded, to fail rather than hang.
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), 15_000)));
    const results = await Promise.race([reconciler.deployTogether(["orders", "payments"], { actor: "ci", onProgress: (p) => progress.push(p) }), hung]);
    clearTimeout(timer);
    expect(results).not.toBe("hung");
    const [orders, payments] = results as DeployResult[];
    expect(orders).toMatchObject({ outcome: "deployed", rollout: { phase: "paused" } });
    expect(payments).toMatchObject({ outcome: "deployed", rollout: { strategy: "rolling", hold: "start", phase: "progressing", weight: 0 } });
    expect(payments?.rollout?.gate).toBeUndefined();
    expect(progress.find((p) => p.type === "service" && p.service === "payments")).toMatchObject({
      status: "ready",
      message: `rollout ${payments?.rollout?.id} waits for its release group before it starts ${payments?.release} (a fixed port runs one release at a time), behind orders, which is paused; \`keelson promote orders\` goes on`,
    });
    expect(running("payments").map((r) => r.release)).toEqual([v1]);

    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "succeeded" && (await reconciler.rolloutOf("orders"))?.phase === "succeeded", { what: "both members live" });
    expect(running("payments").map((r) => r.release)).toEqual([payments?.release]);
  });

  it("a held member's replica that restarts while it waits at the gate gets startTimeout from its restart, not from the rollout's start", { timeout: 30_000 }, async () => {
    // A replica's second and later starts take 300 ms to become ready, or never do.
    const neverReady = new Set<string>();
    const crashLoop = new Set<string>();
    driver = createMemoryDriver({
      host,
      readyDelayMs: 5,
      behavior: (spec, attempt) => (attempt === 1 ? undefined : crashLoop.has(spec.id) ? { neverReady: true, exitAfterMs: 20, exitCode: 3 } : neverReady.has(spec.id) ? { neverReady: true } : { readyDelayMs: 300 }),
    });
    const { text, version } = await groupProject();
    const manualCanary = "{ strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }] }";
    const payments = (deploy: string) => ({ deploy, more: ["replicas: 2"], startTimeout: "1s" });
    await reconciler.apply(text({ orders: { deploy: manualCanary }, payments: payments("{ strategy: rolling, drain: 0 }") }), { actor: "test" });
    reconciler.start();
    const atGate = async () => {
      await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "paused" && (await reconciler.rolloutOf("payments"))?.gate === true, { what: "orders paused, payments at its gate" });
      // Waiting at the gate for longer than payments' startTimeout (1 s), as behind a long analysis.
      await new Promise((r) => setTimeout(r, 1_300));
      const to = (await reconciler.rolloutOf("payments"))?.to;
      const replica = driver.list().find((r) => r.spec.service === "payments" && r.spec.release === to);
      expect(replica?.state).toBe("ready");
      return replica!.spec.id;
    };

    // A held rolling member (hold: switch): its preview replica crashes and comes back 0.4 s later.
    await version("v2");
    await reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false });
    const restarted = await atGate();
    driver.crash(restarted);
    await waitFor(() => driver.list().some((r) => r.spec.id === restarted && r.restarts >= 1 && r.state === "ready"), { what: "the crashed replica to be ready again" });
    expect(await reconciler.rolloutOf("payments")).toMatchObject({ strategy: "rolling", hold: "switch", phase: "progressing", gate: true });
    await reconciler.promote("orders", "bob");
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "succeeded" && (await reconciler.rolloutOf("orders"))?.phase === "succeeded", { what: "both members live" });
    expect((await events("payments", ["rollout.failed"])).length).toBe(0);

    // A blue-green member: a preview replica whose restart never becomes ready fails it 1 s after
    // the crash (not at once), and the group rolls back.
    await reconciler.apply(text({ orders: { deploy: manualCanary }, payments: payments("{ strategy: blueGreen, drain: 0 }") }), { actor: "test" });
    await version("v3");
    await reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false });
    const stuck = await atGate();
    neverReady.add(stuck);
    const crashedAt = Date.now();
    driver.crash(stuck);
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "rolled-back", { what: "payments to fail" });
    const [failed] = await store.listEvents({ project: "shop", subject: "service/payments", kinds: ["rollout.failed"] });
    expect(failed?.details.why).toBe("not ready within 1 s (services.payments.startTimeout)");
    expect(Date.parse(failed?.at ?? "")).toBeGreaterThanOrEqual(crashedAt + 1_000);
    await waitFor(async () => (await reconciler.rolloutOf("orders"))?.phase === "rolled-back", { what: "orders rolled back with its group" });

    // A replica that was ready, then exits at every start (each exit starts its readiness clock
    // over, so only the crash-loop check can see it): the (blue-green) member fails after three exits.
    await version("v4");
    await reconciler.deployTogether(["orders", "payments"], { actor: "ci", wait: false });
    const looping = await atGate();
    crashLoop.add(looping);
    driver.crash(looping);
    await waitFor(async () => (await reconciler.rolloutOf("payments"))?.phase === "rolled-back", { what: "payments to fail on the crash loop" });
    const loopFailures = await store.listEvents({ project: "shop", subject: "service/payments", kinds: ["rollout.failed"] });
    expect(loopFailures.map((e) => e.details.why)).toContainEqual(expect.stringMatching(new RegExp(`^replica ${looping} exited 3 times before becoming ready \\(last exit code 3\\)`)));
  });
});


describe("reconciler: services with tls: true", () => {
  const tlsManifest = (tls: boolean) =>
    parseManifest(
      ["project: shop", "security: { mtls: true }", "services:", ...["orders", "web"].flatMap((name) => [`  ${name}:`, "    owner: web", `    path: ${name}`, "    start: node main.js", "    startTimeout: 5s", ...(name === "orders" ? [`    tls: ${tls}`] : [])]), ""].join("\n"),
      "/tmp/shop/keelson.yaml",
      { checkPaths: false },
    );
  let stateDir: string;
  let cleanup: () => Promise<void>;
  let reconciler: Reconciler | undefined;
  beforeEach(async () => {
    ({ dir: stateDir, cleanup } = await makeTempDir("keelson-reconciler-tls-"));
  });
  afterEach(async () => {
    await reconciler?.stop();
    await cleanup();
  });

  async function run(options: { probeTls: boolean; tlsDir: boolean }) {
    const store = createMemoryStore();
    const driver = createMemoryDriver({ host: createMemoryHost(), readyDelayMs: 5 });
    reconciler = createReconciler({
      store,
      driver,
      project: "shop",
      stateDir,
      gatewayUrl: "https://127.0.0.1:8082",
      skipBuilds: true,
      convergeIntervalMs: 50,
      replicaEnv: (service) => Promise.resolve<Record<string, string>>(options.tlsDir ? { KEELSON_TLS_DIR: join(stateDir, "identity", service) } : {}),
      ...(options.probeTls ? { probeTls: { dir: join(stateDir, "identity", "keelson-controlplane") } } : {}),
    });
    const publisher = createRoutingPublisher({ store, driver, project: "shop" });
    const spec = (service: string) => driver.list().find((r) => r.spec.service === service)!.spec;
    const urls = async () => Object.fromEntries((await publisher.refresh()).services.map((s) => [s.name, s.endpoints.map((e) => e.url.replace(/:\d+$/, ""))]));
    return { store, driver, spec, urls };
  }

  it("tells the replicas to serve TLS, probes them with the control plane's certificate, and publishes https endpoints", async () => {
    const { spec, urls } = await run({ probeTls: true, tlsDir: true });
    expect((await reconciler!.apply(tlsManifest(true), { actor: "test" })).failures).toEqual([]);
    expect(spec("orders").env.KEELSON_TLS_SERVE).toBe("1");
    expect(spec("orders").tls).toEqual({ clientDir: join(stateDir, "identity", "keelson-controlplane") });
    expect(spec("web").env.KEELSON_TLS_SERVE).toBeUndefined();
    expect(spec("web").tls).toBeUndefined();
    expect(await urls()).toEqual({ orders: ["https://127.0.0.1"], web: ["http://127.0.0.1"] });
  });

  it("turning tls off makes a new release whose replicas serve plain HTTP", async () => {
    const { store, driver, spec, urls } = await run({ probeTls: true, tlsDir: true });
    await reconciler!.apply(tlsManifest(true), { actor: "test" });
    const before = (await store.getService("shop", "orders"))!.release;
    expect((await reconciler!.apply(tlsManifest(false), { actor: "test" })).failures).toEqual([]);
    expect((await store.getService("shop", "orders"))!.release).not.toBe(before);
    await waitFor(() => (driver.list().every((r) => r.spec.tls === undefined) ? true : undefined), { what: "only plain replicas" });
    expect(spec("orders").env.KEELSON_TLS_SERVE).toBeUndefined();
    expect(await urls()).toEqual({ orders: ["http://127.0.0.1"], web: ["http://127.0.0.1"] });
  });

  it("without certificates (mTLS off) the replicas serve plain HTTP", async () => {
    const { spec, urls } = await run({ probeTls: false, tlsDir: false });
    await reconciler!.apply(tlsManifest(true), { actor: "test" });
    expect(spec("orders").env.KEELSON_TLS_SERVE).toBeUndefined();
    expect(spec("orders").tls).toBeUndefined();
    expect(await urls()).toEqual({ orders: ["http://127.0.0.1"], web: ["http://127.0.0.1"] });
  });
});

