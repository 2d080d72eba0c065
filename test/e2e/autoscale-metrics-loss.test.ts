// End to end: the autoscaler never reads lost metrics as low load. A real `keelson up` project
// with an autoscaled service is scaled up by a bounded load; then its gateway process is killed
// (SIGKILL, by its pid): the count must stay where it is, with an `autoscale.held` event saying
// the metrics are unavailable. Once the gateway is started again, its window holds only the
// seconds since: no scale-down until the window is full, then the same quiet load scales down.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeelsonEvent, StatusReport } from "@keelson/protocol";
import { apiFetch, makeTempDir, waitFor, writeOneServiceProject } from "#test-support";
import { keelson, pidAlive } from "./cli.js";

/** The autoscaler's window: the restarted gateway covers it this long after it started. */
const WINDOW_MS = 4_000;

describe.sequential("autoscaling when metrics are lost", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let controlPlane: string;
  let gateway: string;

  async function status(): Promise<StatusReport> {
    const res = await apiFetch(dir, `${controlPlane}/v1/status`);
    expect(res.status).toBe(200);
    return (await res.json()) as StatusReport;
  }

  async function desired(): Promise<number | undefined> {
    return (await status()).services.find((s) => s.name === "api")?.replicas.desired;
  }

  /** The autoscaler's events for api, oldest first. */
  async function events(): Promise<KeelsonEvent[]> {
    const res = await apiFetch(dir, `${controlPlane}/v1/services/api/autoscale?limit=100`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { events: KeelsonEvent[] }).events.sort((a, b) => a.seq - b.seq);
  }

  async function gatewayPid(): Promise<number> {
    const info = JSON.parse(await readFile(join(dir, ".keelson", "gateway", "gateway.pid.json"), "utf8")) as { pid: number };
    return info.pid;
  }

  /** About 12.5 requests per second through the gateway, one every 80 ms, until stopped. */
  function startLoad(): { stop(): Promise<void>; answered: () => number } {
    let stopped = false;
    let answered = 0;
    const pending = new Set<Promise<void>>();
    const timer = setInterval(() => {
      if (stopped) return;
      const p = fetch(`${gateway}/api/`, { signal: AbortSignal.timeout(5_000) })
        .then(async (res) => {
          await res.arrayBuffer();
          if (res.ok) answered++;
        })
        .catch(() => undefined)
        .finally(() => pending.delete(p));
      pending.add(p);
    }, 80);
    return {
      answered: () => answered,
      async stop() {
        stopped = true;
        clearInterval(timer);
        await Promise.all([...pending]);
      },
    };
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-metrics-loss-"));
    // 12.5 req/s at 5 per replica asks for 3 replicas; no scale-down stabilization, so only the
    // missing metrics can keep the count up once the load is gone.
    const ports = await writeOneServiceProject(dir, {
      project: "metricsloss",
      service: ["autoscale: { min: 1, max: 4, target: { rps: 5 }, window: 4s, interval: 500ms, scaleDown: { stabilization: 0 } }"],
    });
    controlPlane = `http://127.0.0.1:${ports.controlPlanePort}`;
    gateway = `http://127.0.0.1:${ports.gatewayPort}`;
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 100_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
  }, 110_000);

  afterAll(async () => {
    if (dir !== undefined) await keelson(["down", dir], { timeoutMs: 60_000 });
    await cleanup?.();
  });

  it("holds the count while the gateway is gone, and scales down only once a restarted gateway's window is full", async () => {
    // (1) A bounded load scales api from 1 to 3.
    const loadStarted = Date.now();
    const load = startLoad();
    const killed = await gatewayPid();
    let count: number | undefined;
    try {
      await waitFor(async () => ((await desired()) ?? 0) >= 3, { timeoutMs: 25_000, intervalMs: 250, what: "api to be scaled to 3 by the load" });
      expect(load.answered()).toBeGreaterThan(0);
      console.log(`metrics loss: the load scaled api to ${await desired()} in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s`);

      // (2) The gateway dies while the load still runs (its window still full of it).
      expect(pidAlive(killed)).toBe(true);
      process.kill(killed, "SIGKILL");
      await waitFor(() => !pidAlive(killed), { timeoutMs: 5_000, what: `gateway pid ${killed} to exit` });
      count = await desired();
    } finally {
      await load.stop();
    }
    // Normally 3; whatever it was when the gateway died, it must be above min and stay there.
    expect(count).toBeGreaterThan(1);
    const scaledBefore = (await events()).filter((e) => e.kind === "autoscale.scaled").length;

    // For the next 12 s: no load and no gateway. The count must not fall; the autoscaler says why.
    const lostUntil = Date.now() + 12_000;
    while (Date.now() < lostUntil) {
      expect(await desired()).toBe(count);
      await new Promise((r) => setTimeout(r, 500));
    }
    const lost = await events();
    const held = lost.filter((e) => e.kind === "autoscale.held" && e.details.reason === "metrics-unavailable");
    expect(held.length).toBeGreaterThan(0);
    expect(held.at(-1)!.details).toMatchObject({ from: count, to: count });
    expect(lost.filter((e) => e.kind === "autoscale.scaled")).toHaveLength(scaledBefore);

    // (3) The gateway comes back (`keelson up` starts it again; the control plane did not). Its
    // window covers only the seconds since it started: the quiet load may not scale down yet.
    const restartedAt = Date.now();
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 60_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    const restarted = await gatewayPid();
    expect(restarted).not.toBe(killed);
    expect(pidAlive(restarted)).toBe(true);
    await waitFor(async () => ((await desired()) === 1 ? true : undefined), { timeoutMs: 20_000, intervalMs: 250, what: "api to be scaled down to 1 once the window is full" });
    const after = (await events()).filter((e) => Date.parse(e.at) >= restartedAt);
    const partial = after.filter((e) => e.kind === "autoscale.held" && e.details.reason === "metrics-partial");
    expect(partial.length, JSON.stringify(after.map((e) => [e.kind, e.details.reason, e.details.message]))).toBeGreaterThan(0);
    const down = after.find((e) => e.kind === "autoscale.scaled");
    expect(down?.details).toMatchObject({ from: count, to: 1, reason: "scale-down" });
    expect(Date.parse(down!.at) - restartedAt).toBeGreaterThanOrEqual(WINDOW_MS);
    console.log(`metrics loss: held at ${count} for 12 s without a gateway; scaled down ${((Date.parse(down!.at) - restartedAt) / 1000).toFixed(1)} s after the gateway was started again (window ${WINDOW_MS / 1000} s)`);
  }, 90_000);
});
