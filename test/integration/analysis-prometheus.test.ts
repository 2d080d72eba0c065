// Canary analysis against a real Prometheus (the Debian package): a loopback /metrics endpoint
// exposes the gateway's request counter and latency histogram for two releases of "payments"
// plus a custom gauge; Prometheus scrapes it every second, and `observe` + `judge` read it through
// createPrometheusMetricsSource. A failing canary (50% errors, queue depth 42) fails the run, an
// equal canary passes after the duration, a dead metrics source makes the run an Error, totals
// that freeze (Prometheus no longer scraping) make it an Error once still for 30 s, and a
// malformed custom PromQL query comes back with Prometheus's own parse error.
import { once } from "node:events";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTempDir, requireComponent, waitFor } from "#test-support";
import { instant, onPath, startPrometheus, type RunningPrometheus } from "../support/prometheus.js";
import { DEFAULT_ANALYSIS, judge, observe, startAnalysis } from "../../packages/platform/src/delivery/index.js";
import type { AnalysisObservation, AnalysisRun, AnalysisSettings, AnalysisTarget } from "../../packages/platform/src/delivery/index.js";
import { createPrometheusMetricsSource } from "../../packages/platform/src/telemetry/index.js";
import type { MetricsSource } from "../../packages/platform/src/telemetry/index.js";


const available = requireComponent("Prometheus", onPath("prometheus"), "install the Debian package prometheus");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- A fake gateway's /metrics: counters the test advances every 500 ms ----

/** Latency bucket bounds (seconds) and how each tick's requests of one version spread over them. */
const BOUNDS = [0.01, 0.05, 0.1, 0.5, 1] as const;

interface VersionTraffic {
  version: string;
  /** Requests and 5xx added per tick. */
  perTick: { requests: number; errors: number };
  /** Of each tick's requests, how many fall in each bucket of BOUNDS (the rest above the last). */
  latency: number[];
  /** The custom gauge `payments_queue_depth` of this version, if any. */
  queueDepth?: number;
  ok: number;
  errors: number;
  /** Cumulative counts per bucket of BOUNDS, then +Inf. */
  buckets: number[];
  sum: number;
}

function traffic(version: string, perTick: { requests: number; errors: number }, queueDepth?: number): VersionTraffic {
  return {
    version,
    perTick,
    latency: [8, 8, 3, 1, 0],
    ...(queueDepth === undefined ? {} : { queueDepth }),
    ok: 0,
    errors: 0,
    buckets: BOUNDS.map(() => 0).concat(0),
    sum: 0,
  };
}

function tick(v: VersionTraffic): void {
  v.ok += v.perTick.requests - v.perTick.errors;
  v.errors += v.perTick.errors;
  let below = 0;
  for (let i = 0; i < BOUNDS.length; i++) {
    below += v.latency[i] ?? 0;
    v.buckets[i] = (v.buckets[i] ?? 0) + below;
    v.sum += (v.latency[i] ?? 0) * (BOUNDS[i] as number) * 0.8;
  }
  v.buckets[BOUNDS.length] = (v.buckets[BOUNDS.length] ?? 0) + v.perTick.requests;
}

/** Prometheus text as the gateway writes it (a 5xx series only once a version has had one). */
function exposition(versions: VersionTraffic[]): string {
  const lines: string[] = [];
  lines.push("# HELP keelson_gateway_requests_total Requests the gateway finished.", "# TYPE keelson_gateway_requests_total counter");
  for (const v of versions) {
    const l = `service="payments",version="${v.version}",route="/payments",replica="${v.version}-1"`;
    lines.push(`keelson_gateway_requests_total{${l},code_class="2xx"} ${v.ok}`);
    if (v.perTick.errors > 0) lines.push(`keelson_gateway_requests_total{${l},code_class="5xx"} ${v.errors}`);
  }
  lines.push("# HELP keelson_gateway_request_duration_seconds Time to finish a request.", "# TYPE keelson_gateway_request_duration_seconds histogram");
  for (const v of versions) {
    const l = `service="payments",version="${v.version}",route="/payments"`;
    BOUNDS.forEach((le, i) => lines.push(`keelson_gateway_request_duration_seconds_bucket{${l},le="${le}"} ${v.buckets[i]}`));
    lines.push(`keelson_gateway_request_duration_seconds_bucket{${l},le="+Inf"} ${v.buckets[BOUNDS.length]}`);
    lines.push(`keelson_gateway_request_duration_seconds_sum{${l}} ${v.sum}`);
    lines.push(`keelson_gateway_request_duration_seconds_count{${l}} ${v.buckets[BOUNDS.length]}`);
  }
  lines.push("# HELP payments_queue_depth Charges waiting in the payments queue.", "# TYPE payments_queue_depth gauge");
  for (const v of versions) if (v.queueDepth !== undefined) lines.push(`payments_queue_depth{service="payments",version="${v.version}"} ${v.queueDepth}`);
  return `${lines.join("\n")}\n`;
}

// ---- Prometheus on loopback, stopped by pid ----

/**
 * Looks every `intervalMs` (at most `maxLooks` times) until the run leaves Running; every run
 * and observation along the way.
 */
async function analyse(
  source: MetricsSource,
  target: AnalysisTarget,
  settings: AnalysisSettings,
  since: number,
  maxLooks: number,
): Promise<{ run: AnalysisRun; runs: AnalysisRun[]; observations: AnalysisObservation[] }> {
  let run = startAnalysis(since);
  const runs: AnalysisRun[] = [];
  const observations: AnalysisObservation[] = [];
  for (let i = 0; i < maxLooks && run.phase === "Running"; i++) {
    if (i > 0) await sleep(settings.intervalMs);
    const obs = await observe(source, target, settings, since, Date.now());
    observations.push(obs);
    run = judge(run, obs, settings);
    runs.push(run);
  }
  return { run, runs, observations };
}

const QUEUE = { name: "queue", query: 'max(payments_queue_depth{service="{{service}}",version="{{canary}}"})', max: 10, failureLimit: 2 };

describe.skipIf(!available)("canary analysis against a real Prometheus", () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  let prometheus: RunningPrometheus;
  let source: MetricsSource;
  /** When the counters started moving (after Prometheus had scraped them at zero). */
  let countersStartedAt: number;
  // Bad: the canary answers half of its requests with a 5xx and its queue is deep.
  const badCanary = traffic("r-canary", { requests: 20, errors: 10 }, 42);
  const badBaseline = traffic("b-baseline", { requests: 20, errors: 0 });
  // Good: the canary is the baseline (the same 1 in 20 errors), its queue shallow.
  const goodCanary = traffic("g-canary", { requests: 20, errors: 1 }, 3);
  const goodBaseline = traffic("g-baseline", { requests: 20, errors: 1 });
  const versions = [badCanary, badBaseline, goodCanary, goodBaseline];
  /** The fake gateway's /metrics answers 503: Prometheus can no longer scrape it (the last test). */
  let scrapeDown = false;

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-analysis-prom-");
    cleanups.push(tmp.cleanup);
    const server: Server = createServer((req, res) => {
      req.resume();
      if (req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      if (scrapeDown) {
        res.writeHead(503).end("down");
        return;
      }
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(exposition(versions));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
    const addr = server.address();
    const target = `127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;

    prometheus = await startPrometheus(tmp.dir, { "fake-gateway": [target] });
    cleanups.push(() => prometheus.stop());
    source = createPrometheusMetricsSource({ url: prometheus.url });
    // A first scrape at zero, so every series' start is known to Prometheus; then traffic flows.
    await waitFor(async () => (await instant(prometheus.url, 'count(keelson_gateway_requests_total{service="payments"})'))[0] === 7, {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: "Prometheus to scrape the zero counters",
    });
    countersStartedAt = Date.now();
    const timer = setInterval(() => versions.forEach(tick), 500);
    cleanups.push(async () => clearInterval(timer));
  });

  afterAll(async () => {
    while (cleanups.length > 0) await cleanups.pop()?.();
  });

  it("fails a canary with 50% errors and a queue deeper than its custom metric allows", async () => {
    await waitFor(async () => ((await instant(prometheus.url, 'count_over_time(keelson_gateway_requests_total{version="r-canary",code_class="5xx"}[1m])'))[0] ?? 0) >= 5, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: "five samples of the canary's errors in Prometheus",
    });
    const target = { service: "payments", canary: "r-canary", baseline: "b-baseline" };
    const settings: AnalysisSettings = { ...DEFAULT_ANALYSIS, intervalMs: 1000, durationMs: 60_000, custom: [QUEUE] };
    const { run, runs, observations } = await analyse(source, target, settings, countersStartedAt, 5);

    expect(observations.map((o) => o.error)).toEqual(observations.map(() => undefined));
    expect(run.phase, run.reason).toBe("Failed");
    expect(run.reason).toMatch(/^error ratio: canary \d+\.\d\d% \([\d.]+\/[\d.]+\) vs baseline 0\.00% \(0\/[\d.]+\)|queue: 42 /);
    // The numbers came from Prometheus: increase() extrapolates, so they need not be whole.
    const evidence = run.evidence!;
    expect(evidence.canary.errors).toBeGreaterThan(0);
    expect(evidence.canary.requests).toBeGreaterThan(evidence.canary.errors);
    expect(evidence.canary.errorRatio).toBeGreaterThan(0.45);
    expect(evidence.canary.errorRatio).toBeLessThan(0.55);
    expect(evidence.baseline.errors).toBe(0);
    expect(evidence.baseline.errorRatio).toBe(0);
    expect(evidence.baseline.requests).toBeGreaterThan(40);
    expect(Math.abs(evidence.canary.requests - evidence.baseline.requests) / evidence.baseline.requests).toBeLessThan(0.15);
    // Same latency for both: the histogram reached the analysis and found nothing wrong.
    expect(evidence.canary.p50).toBeGreaterThan(0);
    expect(evidence.baseline.p99).toBeGreaterThan(0);
    const check = (name: string) => evidence.checks.find((c) => c.name === name);
    expect(check("error ratio")?.status).toBe("fail");
    expect(check("latency")?.status).toBe("watching");
    // The custom metric, read with the canary's id filled in.
    expect(observations.at(-1)?.custom).toEqual({ queue: 42 });
    expect(check("queue")?.detail).toMatch(/^42 \(must be <= 10; out of bounds [12] of 2 looks in a row\)$/);
    expect(runs.length).toBeLessThanOrEqual(2);

    // The custom metric on its own fails the run on its second look out of bounds.
    const customOnly: AnalysisSettings = { ...settings, errors: false, latency: false };
    const alone = await analyse(source, target, customOnly, countersStartedAt, 4);
    expect(alone.runs.map((r) => r.phase)).toEqual(["Running", "Failed"]);
    expect(alone.run.reason).toBe("queue: 42 (must be <= 10; out of bounds 2 of 2 looks in a row)");
    // Without the request checks, no counts were asked for.
    expect(alone.observations[0]).not.toHaveProperty("canary");
  });

  it("passes a canary equal to its baseline once the duration is over", async () => {
    const target = { service: "payments", canary: "g-canary", baseline: "g-baseline" };
    const settings: AnalysisSettings = { ...DEFAULT_ANALYSIS, intervalMs: 1000, durationMs: 4000, minRequests: 20, custom: [QUEUE] };
    // As a rollout does: the run starts now and reads only what came after.
    const startedAt = Date.now();
    const { run, runs, observations } = await analyse(source, target, settings, startedAt, 10);

    expect(observations.map((o) => o.error)).toEqual(observations.map(() => undefined));
    expect(run.phase, run.reason).toBe("Successful");
    expect(run.reason).toMatch(/^no check failed in [4-9] s: canary \d+\.\d\d% errors/);
    // Running on every look before the duration was over.
    expect(runs.slice(0, -1).every((r) => r.phase === "Running")).toBe(true);
    expect(runs.length).toBeGreaterThanOrEqual(4);
    const evidence = run.evidence!;
    expect(evidence.elapsedMs).toBeGreaterThanOrEqual(4000);
    expect(evidence.canary.requests).toBeGreaterThanOrEqual(20);
    expect(evidence.baseline.requests).toBeGreaterThanOrEqual(20);
    expect(evidence.canary.errors).toBeGreaterThan(0);
    expect(evidence.baseline.errors).toBeGreaterThan(0);
    expect(evidence.checks.filter((c) => c.status === "fail")).toEqual([]);
    expect(evidence.checks.find((c) => c.name === "queue")?.detail).toMatch(/^3 \(must be <= 10; out of bounds 0 of 2/);
  });

  it("returns Prometheus's parse error for a malformed custom query, which ends the analysis as Error at once", async () => {
    const target = { service: "payments", canary: "r-canary", baseline: "b-baseline" };
    const broken = { name: "queue", query: 'max(payments_queue_depth{version="{{canary}}"}', max: 10, failureLimit: 2 };
    const settings: AnalysisSettings = { ...DEFAULT_ANALYSIS, intervalMs: 1000, durationMs: 60_000, custom: [broken] };
    const obs = await observe(source, target, settings, countersStartedAt, Date.now());
    expect(obs.error).toBeDefined();
    // The query as sent (ids filled in) and Prometheus's own words.
    expect(obs.error).toContain('max(payments_queue_depth{version=\\"r-canary\\"}');
    expect(obs.error).toMatch(/rejected it: bad_data: .*parse error/);
    expect(obs).not.toHaveProperty("canary");
    expect(obs.fatal).toBe(true);
    const run = judge(startAnalysis(countersStartedAt), obs, settings);
    expect(run.phase).toBe("Error");
    expect(run.reason).toMatch(/^the analysis cannot be evaluated: .*parse error/);
  });

  // Last: it leaves the fake gateway unscrapable.
  it("ends in Error, not Successful, when Prometheus stops getting the gateway's numbers mid-analysis (increase() freezes)", { timeout: 90_000 }, async () => {
    const target = { service: "payments", canary: "g-canary", baseline: "g-baseline" };
    const settings: AnalysisSettings = { ...DEFAULT_ANALYSIS, intervalMs: 1000, durationMs: 8000, minRequests: 20 };
    // This Prometheus scrapes every second (test/support/prometheus.ts), and the source is told so.
    const told = createPrometheusMetricsSource({ url: prometheus.url, scrapeIntervalMs: 1000 });
    const startedAt = Date.now();
    let run = startAnalysis(startedAt);
    const totals: number[] = [];
    const runs: AnalysisRun[] = [];
    for (let i = 0; i < 60 && run.phase === "Running"; i++) {
      if (i > 0) await sleep(settings.intervalMs);
      if (Date.now() - startedAt >= 4000) scrapeDown = true;
      const obs = await observe(told, target, settings, startedAt, Date.now());
      expect(obs.error).toBeUndefined();
      totals.push((obs.canary?.requests ?? 0) + (obs.baseline?.requests ?? 0));
      runs.push((run = judge(run, obs, settings)));
    }
    // Prometheus answered all along, with totals that rose and then stood still.
    expect(Math.max(...totals)).toBeGreaterThan(40);
    expect(totals.slice(-3).every((t) => t === totals.at(-1))).toBe(true);
    expect(run.phase, run.reason).toBe("Error");
    // Still for max(3 looks, 30 s, 2.5 scrape intervals) = 30 s; Running (never Successful, though
    // the 8 s duration was long over) and saying why until then.
    expect(run.reason).toMatch(new RegExp(`^the metrics stopped changing: neither version's request count rose in 3\\d s \\(\\d+ looks\\), .*; the numbers come from Prometheus at ${prometheus.url.replaceAll(".", "\\.")}: is it stuck`));
    expect(runs.slice(0, -1).every((r) => r.phase === "Running")).toBe(true);
    expect(runs.at(-2)?.reason).toMatch(/^waiting for the metrics to move again: /);
  });
});

describe("canary analysis against an unreachable Prometheus", () => {
  it("makes the run an Error after three failed looks in a row", async () => {
    // A port nothing listens on: connections are refused at once.
    const port = await freePort();
    const dead = createPrometheusMetricsSource({ url: `http://127.0.0.1:${port}`, timeoutMs: 2000 });
    const target = { service: "payments", canary: "r-canary", baseline: "b-baseline" };
    const settings: AnalysisSettings = { ...DEFAULT_ANALYSIS, intervalMs: 100, durationMs: 60_000, custom: [QUEUE] };
    const { run, runs, observations } = await analyse(dead, target, settings, Date.now() - 10_000, 5);

    expect(observations).toHaveLength(3);
    for (const o of observations) {
      expect(o.error).toMatch(new RegExp(`^Prometheus at http://127\\.0\\.0\\.1:${port}: cannot connect \\(ECONNREFUSED\\)$`));
      expect(o).not.toHaveProperty("canary");
    }
    expect(runs.map((r) => r.phase)).toEqual(["Running", "Running", "Error"]);
    expect(runs[1]?.reason).toMatch(/^the metrics source failed \(2 of 3 allowed in a row\): /);
    expect(run.reason).toMatch(/^the metrics source failed 3 times in a row: Prometheus at .*cannot connect/);
  });
});
