// The chaos suite: the example shop, run by the real `keelson` binary, under steady open-loop
// load while `keelson chaos` and the tests break things on purpose. Every phase is bounded in
// time, talks only to 127.0.0.1, and reports its figures (printed at the end, and written as
// JSON to $KEELSON_CHAOS_REPORT when set, which docs/reliability.md is made from).
//  (a) a random replica killed every second for 60 s: no idempotent request fails
//  (b) the control plane SIGKILLed mid-deploy (new replicas take 5 s to start, and the event
//      log shows the rollout ended only after the restart) and restarted: the rollout ends on one
//      release that the store and the gateway agree on, no request fails, the store passes its
//      integrity check, no replica process is orphaned
//  (c) one service fully down (every replica hung): calls to it fail fast once its circuit is
//      open, the storefront serves its fallback, every other service's success rate holds
//  (d) a 5x load spike on the autoscaled service (whose replica starts in under 1 s by itself): a
//      new replica serves requests within 10 s and p99 latency comes back under the SLO
//  (e) a release that crash-loops at start: restarts back off, the control plane stays calm, the
//      rollout rolls back and the old release serves throughout
//  (f) `keelson chaos latency` as a user runs it: the delay shows, Ctrl-C ends it
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeelsonEvent, RoutingTable, StatusReport } from "@keelson/protocol";
import type { StatsSnapshot } from "../../packages/platform/src/gateway/index.js";
import { apiFetch, freePort, makeTempDir, waitFor } from "#test-support";
import { BIN, keelson } from "./cli.js";
import { failed, quantile, startLoad, summarize, type LoadTarget, type Sample } from "./load.js";
import { writeShopCopy } from "./shop-copy.js";

const report: Record<string, unknown> = {};

describe.sequential("chaos: the example shop keeps serving through faults", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;
  /** The gateway's admin listener (/routes, /stats). */
  let admin: string;
  let cpUrl: string;
  let orderId: string;
  let targets: LoadTarget[];

  async function status(): Promise<StatusReport> {
    const r = await keelson(["status", dir, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as StatusReport;
  }

  async function api<T>(path: string): Promise<T> {
    const res = await apiFetch(dir, `${cpUrl}${path}`);
    expect(res.status, path).toBe(200);
    return (await res.json()) as T;
  }

  async function events(kinds: string[], after: number): Promise<KeelsonEvent[]> {
    return (await api<{ events: KeelsonEvent[] }>(`/v1/events?kind=${kinds.join(",")}&after=${after}&limit=1000`)).events;
  }

  async function gatewayAdmin<T>(path: string): Promise<T> {
    const res = await fetch(`${admin}${path}`);
    expect(res.status, path).toBe(200);
    return (await res.json()) as T;
  }

  /** Ms from a replica's process start to its first passed readiness check, by the event log after `after`. */
  async function startToReadyMs(replica: string, after: number): Promise<number> {
    const [started, ready] = await waitFor(
      async () => {
        const life = (await events(["replica.started", "replica.ready"], after)).filter((e) => e.subject === `replica/${replica}`);
        const start = life.find((e) => e.kind === "replica.started");
        const up = start && life.find((e) => e.kind === "replica.ready" && e.seq > start.seq);
        return start && up ? [start, up] : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `replica.started and replica.ready of ${replica}` },
    );
    return Date.parse(ready.at) - Date.parse(started.at);
  }

  async function lastSeq(): Promise<number> {
    return (await api<{ events: KeelsonEvent[] }>("/v1/events?order=desc&limit=1")).events[0]?.seq ?? 0;
  }

  async function editManifest(edit: (doc: ReturnType<typeof parseDocument>) => void): Promise<void> {
    const file = join(dir, "keelson.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    edit(doc);
    await writeFile(file, doc.toString());
  }

  /** Replica processes of this test's project (found by their data folder), by pid. */
  async function replicaProcesses(): Promise<number[]> {
    const marker = `KEELSON_DATA_DIR=${join(dir, ".keelson", "data")}`;
    const pids: number[] = [];
    for (const name of await readdir("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const env = await readFile(`/proc/${name}/environ`, "utf8");
        if (env.split("\0").some((v) => v.startsWith(marker))) pids.push(Number(name));
      } catch {
        // Gone, or not ours to read.
      }
    }
    return pids;
  }

  /** Pids of replicas' process groups as status knows them (each replica is a shell or node process and its children). */
  async function knownGroups(): Promise<Set<number>> {
    return new Set((await status()).services.flatMap((s) => s.instances.map((i) => i.pid)).filter((p): p is number => p !== undefined));
  }

  async function pgidOf(pid: number): Promise<number | undefined> {
    try {
      const text = await readFile(`/proc/${pid}/stat`, "utf8");
      return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[2]);
    } catch {
      return undefined;
    }
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-chaos-"));
    const ports = { controlPlane: await freePort(), gateway: await freePort(), admin: await freePort(), mesh: await freePort() };
    gateway = `http://127.0.0.1:${ports.gateway}`;
    admin = `http://127.0.0.1:${ports.admin}`;
    await writeShopCopy(dir, ports);
    await editManifest((doc) => {
      // Two replicas of everything that serves idempotent reads, so a replica can die without an outage.
      doc.setIn(["services", "inventory", "replicas"], 2);
      doc.setIn(["services", "notifications", "replicas"], 2);
      // A small model pool, so five times the load is more than one replica can take.
      doc.setIn(["services", "recommendations", "env", "MODEL_SLOTS"], 2);
      doc.setIn(["services", "recommendations", "env", "MODEL_LATENCY_MS"], 25);
      // Aim at 75% of the pool (as the shop's 3 of 4 slots), and let replicas go after 20 s of low load.
      doc.setIn(["services", "recommendations", "autoscale", "target"], doc.createNode({ inflight: 1.5 }));
      doc.setIn(["services", "recommendations", "autoscale", "scaleDown"], doc.createNode({ stabilization: "20s" }));
    });
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 300_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    cpUrl = (await status()).controlPlane.url;
    const catalog = (await (await fetch(`${gateway}/api/catalog`)).json()) as { products: Array<{ sku: string; stock: number }> };
    const sku = catalog.products[0]?.sku as string;
    const order = await fetch(`${gateway}/checkout`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ items: [{ sku: catalog.products.find((p) => p.stock > 1)?.sku, qty: 1 }], card: "4242424242424242", email: "ada@example.com" }),
    });
    expect(order.status).toBe(201);
    orderId = ((await order.json()) as { id: string }).id;
    targets = [
      { label: "storefront /", path: "/", weight: 3, keepBody: true },
      { label: "storefront /api/catalog", path: "/api/catalog", weight: 2 },
      { label: "storefront /orders/:id", path: `/orders/${orderId}`, weight: 1 },
      { label: "orders", path: `/api/orders/${orderId}`, weight: 2 },
      { label: "inventory", path: "/api/inventory", weight: 2 },
      { label: "notifications", path: "/api/notifications", weight: 2 },
      { label: "recommendations", path: `/api/recommendations?sku=${encodeURIComponent(sku)}`, weight: 1 },
    ];
  }, 360_000);

  afterAll(async () => {
    await keelson(["down", dir], { timeoutMs: 60_000 });
    await cleanup();
    const text = JSON.stringify({ at: new Date().toISOString(), ...report }, null, 2);
    console.log(`chaos figures:\n${text}`);
    if (process.env.KEELSON_CHAOS_REPORT) await writeFile(process.env.KEELSON_CHAOS_REPORT, text);
  });

  it("(a) a random replica killed every second for 60 s: no idempotent request fails", async () => {
    const before = await lastSeq();
    const load = startLoad({ base: gateway, targets, rps: 40, maxMs: 75_000 });
    const r = await keelson(["chaos", "kill", "--all", "-C", dir, "--interval", "1s", "--duration", "60s", "--json"], { timeoutMs: 90_000 });
    const samples = await load.stop();
    expect(r.code, r.stderr).toBe(0);
    const experiment = JSON.parse(r.stdout) as { injections: number; skipped: number; state: string };
    const kills = (await events(["chaos.injected"], before)).filter((e) => e.details.kind === "kill");
    const bad = samples.filter(failed);
    report.a = { seconds: 60, kills: experiment.injections, skippedRounds: experiment.skipped, requests: samples.length, failed: bad.length, p99Ms: Math.round(quantile(samples.map((s) => s.latencyMs), 0.99)), byTarget: summarize(samples) };
    expect(experiment.state).toBe("finished");
    expect(experiment.injections).toBeGreaterThanOrEqual(40);
    expect(kills.length).toBe(experiment.injections);
    expect(samples.length).toBeGreaterThan(2000);
    expect(bad.map((s) => `${s.target} ${s.status} ${s.error ?? ""}`)).toEqual([]);
    // Everything came back.
    await waitFor(async () => ((await status()).services.every((s) => s.replicas.ready >= s.replicas.desired) ? true : undefined), { timeoutMs: 30_000, what: "every replica ready again" });
  }, 150_000);

  it("(b) the control plane SIGKILLed mid-deploy and restarted: the deploy ends consistently, nothing fails, the store is whole", async () => {
    const before = await lastSeq();
    const oldRelease = (await status()).services.find((s) => s.name === "notifications")?.release;
    const load = startLoad({ base: gateway, targets, rps: 30, maxMs: 120_000 });
    await editManifest((doc) => {
      doc.setIn(["services", "notifications", "env", "MAIL_FROM"], "orders+v2@shop.example");
      // Each replica of the new release takes over 5 s to become ready, so the rolling deploy of
      // two replicas (one at a time) lasts over 10 s, longer than the kill below needs even on a
      // crowded machine (where starting the CLI alone took 11 s once): the control plane dies
      // with the rollout under way, and the event log checks that it did.
      doc.setIn(["services", "notifications", "start"], "sleep 5 && exec node dist/main.js");
    });
    // `keelson up` drives the deploy; it loses its control plane half-way and fails, as a client would.
    const upProcess = spawn(process.execPath, [BIN, "up", dir, "--detach"], { stdio: "ignore", env: { ...process.env, NO_COLOR: "1" } });
    const upExit = new Promise<number | null>((r) => upProcess.once("exit", (code) => r(code)));
    const started = await waitFor(async () => (await events(["rollout.started"], before)).find((e) => e.subject === "service/notifications"), { timeoutMs: 120_000, what: "the notifications rollout to start" });
    const chaos = await keelson(["chaos", "controlplane", "-C", dir, "--signal", "KILL", "--down", "1s", "--json"], { timeoutMs: 60_000 });
    expect(chaos.code, chaos.stderr).toBe(0);
    const outage = JSON.parse(chaos.stdout) as { pid: number; newPid: number; downMs: number; integrity: { ok: boolean; problems: string[] } };
    expect(outage.integrity.problems).toEqual([]);
    await upExit;
    // The restarted control plane carries the rollout on from the store, to its end.
    const rolloutId = started.details.rollout as string;
    const endKinds = ["rollout.succeeded", "rollout.failed", "rollback.started", "rollback.succeeded"];
    const end = await waitFor(
      async () => (await events(endKinds, before)).find((e) => e.subject === "service/notifications" && e.details.rollout === rolloutId && (e.kind === "rollout.succeeded" || e.kind === "rollout.failed")),
      { timeoutMs: 90_000, what: "the interrupted rollout to end" },
    );
    const s = await waitFor(async () => {
      const st = await status();
      const n = st.services.find((x) => x.name === "notifications");
      return n && n.instances.length === n.replicas.desired && n.instances.every((i) => i.state === "ready" && i.release === n.release) ? st : undefined;
    }, { timeoutMs: 60_000, what: "notifications to settle on one release" });
    const notifications = s.services.find((x) => x.name === "notifications");
    const release = notifications?.release;
    // The gateway agrees with the store: it routes to, and has lately served, that release only.
    await waitFor(async () => {
      const table = await gatewayAdmin<RoutingTable>("/routes");
      const endpoints = table.services.find((x) => x.name === "notifications")?.endpoints ?? [];
      const stats = await gatewayAdmin<StatsSnapshot>("/stats?window=2");
      const served = stats.series.filter((x) => x.service === "notifications" && x.requests > 0);
      return endpoints.length === notifications?.replicas.desired && endpoints.every((e) => e.release === release) && served.length > 0 && served.every((x) => x.version === release) ? true : undefined;
    }, { timeoutMs: 20_000, intervalMs: 250, what: `the gateway to route and serve notifications from ${release} only` });
    const samples = await load.stop();
    const integrity = await api<{ ok: boolean; problems: string[] }>("/v1/integrity");
    // No replica process outlived its record: every replica process belongs to a replica status knows.
    const groups = await knownGroups();
    const orphans: number[] = [];
    for (const pid of await replicaProcesses()) {
      const pgid = await pgidOf(pid);
      if (pgid !== undefined && !groups.has(pgid)) orphans.push(pid);
    }
    // The event log tells when things happened: the injection, the restarted control plane, the rollout's end.
    const log = await events(["chaos.injected", "controlplane.started", "replica.ready", ...endKinds], before);
    const injected = log.filter((e) => e.kind === "chaos.injected" && e.details.kind === "controlplane");
    expect(injected.map((e) => e.details)).toEqual([{ kind: "controlplane", pid: outage.pid, signal: "SIGKILL" }]);
    const kill = injected[0] as KeelsonEvent;
    const restart = log.find((e) => e.kind === "controlplane.started" && e.details.pid === outage.newPid);
    expect(restart, "the restarted control plane's controlplane.started event").toBeDefined();
    const ends = log.filter((e) => e.subject === "service/notifications" && endKinds.includes(e.kind));
    const view = await api<{ rollout: { id: string; phase: string } | null }>("/v1/services/notifications/rollout");
    report.b = {
      controlPlaneDownMs: outage.downMs,
      killedAfterRolloutStartMs: Date.parse(kill.at) - Date.parse(started.at),
      newReplicasReadyAtKill: log.filter((e) => e.kind === "replica.ready" && e.details.service === "notifications" && e.details.release === started.details.to && e.seq < kill.seq).length,
      rolloutEndedAfterRestartMs: Date.parse(end.at) - Date.parse(restart!.at),
      rollout: view.rollout?.phase,
      release: release === oldRelease ? "old" : release === started.details.to ? "new" : release,
      requests: samples.length,
      failed: samples.filter(failed).length,
      integrity: integrity.ok,
      orphans: orphans.length,
    };
    // Mid-deploy: the rollout had started before the kill, nothing ended it before the kill or
    // while the control plane was down, and it ended under the restarted one.
    expect(started.seq).toBeLessThan(kill.seq);
    expect(kill.seq).toBeLessThan(restart!.seq);
    expect(ends.filter((e) => e.seq < restart!.seq).map((e) => `${e.seq} ${e.kind}`)).toEqual([]);
    expect(end.seq).toBeGreaterThan(restart!.seq);
    // Consistent: resumed to the new release, or rolled back to the old one, and the store says
    // which. ("failed" leaves a service with no release to go back to; this one has one, so
    // that would not be a consistent end.)
    expect(view.rollout?.id).toBe(rolloutId);
    expect(["succeeded", "rolled-back"]).toContain(view.rollout?.phase);
    expect(end.kind).toBe(view.rollout?.phase === "succeeded" ? "rollout.succeeded" : "rollout.failed");
    expect(release).toBe(view.rollout?.phase === "succeeded" ? started.details.to : oldRelease);
    expect(samples.filter(failed).map((x) => `${x.target} ${x.status} ${x.error ?? ""}`)).toEqual([]);
    expect(integrity.problems).toEqual([]);
    expect(orphans).toEqual([]);
  }, 300_000);

  it("(c) one service fully down: calls to it fail fast with the circuit open, the storefront serves its fallback, the others hold", async () => {
    const baseline = startLoad({ base: gateway, targets, rps: 40, maxMs: 15_000 });
    await new Promise((r) => setTimeout(r, 10_000));
    const before = summarize(await baseline.stop());
    // More direct calls to recommendations, so its breaker has enough requests to judge.
    const withRecs = targets.map((t) => (t.label === "recommendations" ? { ...t, weight: 4, keepBody: true } : t));
    const load = startLoad({ base: gateway, targets: withRecs, rps: 40, maxMs: 45_000 });
    // Hang every replica of recommendations, and hang again any the runtime restarts, for 25 s.
    const seqBefore = await lastSeq();
    const startedAt = load.elapsed();
    const r = await keelson(["chaos", "hang", "recommendations", "-C", dir, "--interval", "500ms", "--duration", "25s", "--allow-last", "--json"], { timeoutMs: 60_000 });
    const endedAt = load.elapsed();
    await new Promise((res) => setTimeout(res, 1_000));
    const samples = await load.stop();
    expect(r.code, r.stderr).toBe(0);
    const hung = (JSON.parse(r.stdout) as { injections: number }).injections;
    const hangs = (await events(["chaos.injected"], seqBefore)).filter((e) => e.details.kind === "hang");
    const recs = samples.filter((s) => s.target === "recommendations" && s.at >= startedAt && s.at < endedAt);
    const circuitOpen = (s: Sample) => s.status === 503 && (s.body ?? "").includes("KEELSON_ERR_CIRCUIT_OPEN");
    const opened = recs.find(circuitOpen);
    expect(opened, "the circuit of recommendations to open").toBeDefined();
    const afterOpen = recs.filter((s) => s.at >= opened!.at);
    const fast = afterOpen.filter(circuitOpen);
    const pages = samples.filter((s) => s.target === "storefront /" && s.at >= opened!.at && s.at < endedAt);
    const during = summarize(samples.filter((s) => s.at >= startedAt && s.at < endedAt));
    report.c = {
      downSeconds: 25,
      replicasHung: hung,
      circuitOpenAfterMs: Math.round(opened!.at - startedAt),
      recommendationsAfterOpen: {
        requests: afterOpen.length,
        circuitOpen: fast.length,
        p50Ms: Math.round(quantile(afterOpen.map((s) => s.latencyMs), 0.5)),
        circuitOpenP99Ms: Math.round(quantile(fast.map((s) => s.latencyMs), 0.99)),
      },
      storefrontPageAfterOpen: {
        requests: pages.length,
        ok: pages.filter((s) => s.status === 200).length,
        withoutRecommendations: pages.filter((s) => s.body !== undefined && !s.body.includes("Often bought together")).length,
        p99Ms: Math.round(quantile(pages.map((s) => s.latencyMs), 0.99)),
      },
      successBefore: Object.fromEntries(Object.entries(before).map(([k, v]) => [k, v.success])),
      successDuring: Object.fromEntries(Object.entries(during).map(([k, v]) => [k, v.success])),
    };
    expect(hung).toBeGreaterThanOrEqual(1);
    // Every replica hung is an event naming it and its service.
    expect(hangs.length).toBe(hung);
    expect(hangs.every((e) => e.details.service === "recommendations" && e.subject.startsWith("replica/recommendations-"))).toBe(true);
    expect(opened!.at - startedAt).toBeLessThan(15_000);
    // Fail fast: most calls after the circuit opened got the breaker's answer at once (the rest
    // are the half-open probes, which wait for the timeout).
    expect(fast.length / afterOpen.length).toBeGreaterThan(0.8);
    expect(quantile(fast.map((s) => s.latencyMs), 0.5)).toBeLessThan(50);
    // The fallback: the shop page is served, without the block.
    expect(pages.length).toBeGreaterThan(20);
    expect(pages.every((s) => s.status === 200)).toBe(true);
    expect(pages.filter((s) => s.body?.includes("Often bought together")).length).toBeLessThan(pages.length * 0.1);
    // Every other service answers as before: all of it.
    for (const [target, v] of Object.entries(during)) {
      if (target === "recommendations") continue;
      expect(v.success, target).toBe(before[target]?.success);
      expect(v.success, target).toBe(1);
    }
    await waitFor(async () => ((await status()).services.find((s) => s.name === "recommendations")?.replicas.ready ?? 0) >= 1 || undefined, { timeoutMs: 60_000, what: "recommendations to recover" });
  }, 180_000);

  it("(d) a 5x load spike on recommendations: a new replica serves within 10 s and p99 comes back under the SLO", async () => {
    const path = targets.find((t) => t.label === "recommendations")?.path as string;
    const one = [{ label: "recommendations", path, weight: 1 }];
    // Back at one replica, and only that one (no replica of the scale-down still stopping).
    const alone = await waitFor(
      async () => {
        const s = (await status()).services.find((x) => x.name === "recommendations");
        return s?.replicas.desired === 1 && s.instances.length === 1 && s.instances[0]?.state === "ready" ? s.instances[0].id : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: "recommendations back at one ready replica" },
    );
    // The reaction target is for a service that starts in under a second. Restarted
    // before any load, its one replica shows how long the service takes to start by itself.
    const restartedAfter = await lastSeq();
    const restart = await keelson(["restart", "recommendations", "-C", dir]);
    expect(restart.code, restart.stderr).toBe(0);
    const aloneStartToReadyMs = await startToReadyMs(alone, restartedAfter);
    const before = await lastSeq();
    const load = startLoad({ base: gateway, targets: one, rps: 30, maxMs: 70_000 });
    await new Promise((r) => setTimeout(r, 8_000));
    const running = new Set((await status()).services.find((x) => x.name === "recommendations")?.instances.map((i) => i.id));
    const spikeAt = load.elapsed();
    const spikeWall = Date.now();
    load.setRate(150);
    // Reaction ends when the gateway has a successful answer from a replica started for the
    // spike (its live window counts attempts and errors per replica), not when one is merely ready.
    const first = await waitFor(
      async () => {
        const stats = await gatewayAdmin<StatsSnapshot>("/stats?window=2");
        const fresh = stats.series.find((x) => x.service === "recommendations" && !running.has(x.replica) && !x.replica.startsWith("fault:") && x.requests > x.errors);
        return fresh ? { replica: fresh.replica, wall: Date.now(), at: load.elapsed() } : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 200, what: "a new recommendations replica serving" },
    );
    await new Promise((r) => setTimeout(r, Math.max(0, 40_000 - (Date.now() - spikeWall))));
    const samples = await load.stop();
    const scaled = await events(["autoscale.scaled"], before);
    // Started during the spike, beside one to two more on two cores busy with 150 requests/s,
    // the new replica starts slower than alone: reported, not bounded (0.8-1.7 s on a quiet
    // machine, 4.4 s on a crowded one).
    const spikeStartToReadyMs = await startToReadyMs(first.replica, before);
    // A failed request counts as infinitely slow: a window meets the SLO only if its 99th
    // percentile answer was a success under 250 ms.
    const windows: Array<{ from: number; p99: number; failed: number }> = [];
    for (let from = spikeAt; from + 2_000 <= spikeAt + 40_000; from += 2_000) {
      const w = samples.filter((s) => s.at >= from && s.at < from + 2_000);
      if (w.length > 0) windows.push({ from: Math.round(from - spikeAt), p99: Math.round(quantile(w.map((s) => (failed(s) ? Infinity : s.latencyMs)), 0.99)), failed: w.filter(failed).length });
    }
    const slo = 250;
    // Back under the SLO: the first of three windows in a row (6 s) under it, with the last three
    // windows of the phase under it as well. A slow window in between (the shared cores busy
    // elsewhere for a few seconds) is reported, not failed; any failed request from the recovery
    // on fails the test, also in such a window.
    const under = (i: number) => windows.slice(i, i + 3).length === 3 && windows.slice(i, i + 3).every((x) => x.p99 <= slo);
    const recoveredAt = windows.findIndex((_, i) => under(i));
    const recovered = recoveredAt >= 0 && under(windows.length - 3) ? windows[recoveredAt] : undefined;
    const final = (await status()).services.find((x) => x.name === "recommendations");
    report.d = {
      rps: { steady: 30, spike: 150 },
      reactionMs: first.wall - spikeWall,
      startToReadyAloneMs: aloneStartToReadyMs,
      newReplicaStartToReadyMs: spikeStartToReadyMs,
      failedBeforeNewReplicaServed: samples.filter((x) => failed(x) && x.at < first.at).length,
      replicasAfter: final?.replicas.desired,
      decisions: scaled.map((e) => ({ at: e.at, from: e.details.from, to: e.details.to })),
      p99BeforeMs: Math.round(quantile(samples.filter((s) => s.at < spikeAt).map((s) => s.latencyMs), 0.99)),
      p99By2sWindowMs: windows.map((w) => ({ ...w, p99: Number.isFinite(w.p99) ? w.p99 : "over 1% failed" })),
      backUnderSloAfterMs: recovered?.from,
      windowsOverSloAfterRecovery: recovered ? windows.filter((w) => w.from > recovered.from && w.p99 > slo).length : undefined,
      failedBeforeRecovery: samples.filter((x) => failed(x) && x.at < spikeAt + (recovered?.from ?? Infinity)).length,
      failedAfterRecovery: samples.filter((x) => failed(x) && x.at >= spikeAt + (recovered?.from ?? Infinity)).length,
    };
    expect(scaled.length).toBeGreaterThan(0);
    expect(first.wall - spikeWall).toBeLessThan(10_000);
    expect(aloneStartToReadyMs).toBeLessThan(1_000);
    expect(recovered, JSON.stringify(windows)).toBeDefined();
    expect(recovered!.from).toBeLessThan(30_000);
    expect(samples.filter((x) => failed(x) && x.at >= spikeAt + recovered!.from).length).toBe(0);
  }, 180_000);

  it("(e) a release that crash-loops at start: restarts back off, no CPU storm, the old release serves throughout", async () => {
    const before = await lastSeq();
    const oldRelease = (await status()).services.find((s) => s.name === "notifications")?.release;
    const cpPid = (await status()).controlPlane.pid;
    const cpu0 = await cpuTicks(cpPid);
    const t0 = Date.now();
    const load = startLoad({ base: gateway, targets, rps: 30, maxMs: 120_000 });
    // OUTBOX_LIST_LIMIT 0 is refused at start: every replica of this release exits at once
    // (started without (b)'s 5 s delay, as the shop starts it).
    await editManifest((doc) => {
      doc.setIn(["services", "notifications", "env", "OUTBOX_LIST_LIMIT"], "0");
      doc.setIn(["services", "notifications", "start"], "node dist/main.js");
    });
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 180_000 });
    const samples = await load.stop();
    const cpu = ((await cpuTicks(cpPid)) - cpu0) / 100 / ((Date.now() - t0) / 1000);
    const exits = (await events(["replica.exited"], before)).filter((e) => e.details.service === "notifications");
    const gaps = exits.slice(1).map((e, i) => Date.parse(e.at) - Date.parse(exits[i]!.at));
    // The runtime's own account of its backoff: "exit code 1; restarting in 150 ms".
    const delaysOf = (list: KeelsonEvent[]) => list.map((e) => Number(/restarting in (\d+) ms/.exec(String(e.details.reason))?.[1])).filter((n) => Number.isFinite(n));
    const delays = delaysOf(exits);
    const byReplica = [...new Set(exits.map((e) => e.subject))].map((subject) => delaysOf(exits.filter((e) => e.subject === subject)));
    const after = (await status()).services.find((s) => s.name === "notifications");
    const rolledBack = (await events(["rollback.started", "rollout.failed"], before)).filter((e) => e.subject === "service/notifications");
    report.e = {
      upExitCode: up.code,
      exits: exits.length,
      gapsBetweenExitsMs: gaps,
      restartDelaysMs: delays,
      controlPlaneCpuPercent: Math.round(cpu * 100),
      rolledBack: rolledBack.length > 0,
      servingRelease: after?.release === oldRelease ? "old" : "new",
      requests: samples.length,
      failed: samples.filter(failed).length,
    };
    expect(up.code).not.toBe(0);
    expect(rolledBack.length).toBeGreaterThan(0);
    expect(after?.release).toBe(oldRelease);
    expect(samples.filter(failed).map((x) => `${x.target} ${x.status} ${x.error ?? ""}`)).toEqual([]);
    // Backoff: the delays between crashes grow, and there are few of them.
    expect(exits.length).toBeGreaterThan(1);
    expect(exits.length).toBeLessThan(30);
    expect(Math.max(...byReplica.map((d) => d.length))).toBeGreaterThan(1);
    for (const d of byReplica) for (let i = 1; i < d.length; i++) expect(d[i]).toBeGreaterThan(d[i - 1] as number);
    expect(cpu).toBeLessThan(0.5);
  }, 240_000);

  it("(f) keelson chaos latency: clients see the delay while it runs, and Ctrl-C stops it and takes it out", async () => {
    const path = targets.find((t) => t.label === "recommendations")?.path as string;
    const before = await lastSeq();
    const timed = async () => {
      const t0 = performance.now();
      const res = await fetch(`${gateway}${path}`);
      await res.arrayBuffer();
      return { status: res.status, ms: performance.now() - t0, fault: res.headers.get("x-keelson-fault") };
    };
    const child = spawn(process.execPath, [BIN, "chaos", "latency", "recommendations", "--delay", "300ms", "--duration", "60s", "-C", dir], { env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await waitFor(() => (out.includes("Ctrl-C stops the experiment") ? true : undefined), { timeoutMs: 20_000, what: `the experiment to start; output so far:\n${out}` });
    // The gateway follows the routing table within moments.
    const slow = await waitFor(async () => {
      const r = await timed();
      return r.ms >= 300 ? r : undefined;
    }, { timeoutMs: 10_000, what: "the injected delay" });
    expect(slow.status).toBe(200);
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(out).toMatch(/stopped by user:/);
    const list = JSON.parse((await keelson(["chaos", "list", "-C", dir, "--json"])).stdout) as Array<{ kind: string; state: string }>;
    expect(list.find((x) => x.kind === "latency")?.state).toBe("stopped");
    const fast = await waitFor(async () => {
      const r = await timed();
      return r.ms < 250 ? r : undefined;
    }, { timeoutMs: 10_000, what: "the delay to be gone" });
    // The event log has the injection with its delay and share, and who stopped it.
    const log = await events(["chaos.injected", "chaos.stopped"], before);
    const injected = log.filter((e) => e.kind === "chaos.injected");
    expect(injected.map((e) => ({ subject: e.subject, kind: e.details.kind, delayMs: e.details.delayMs, share: e.details.share }))).toEqual([{ subject: "service/recommendations", kind: "latency", delayMs: 300, share: 1 }]);
    const stopped = log.filter((e) => e.kind === "chaos.stopped");
    expect(stopped.map((e) => ({ experiment: e.details.experiment, state: e.details.state }))).toEqual([{ experiment: injected[0]?.details.experiment, state: "stopped" }]);
    expect(stopped[0]?.actor).toMatch(/^user:/);
    report.f = { injectedDelayMs: 300, observedMs: Math.round(slow.ms), afterStopMs: Math.round(fast.ms), stoppedBy: stopped[0]?.actor };
  }, 60_000);
});

/** utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux). */
async function cpuTicks(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

export type { Sample };
