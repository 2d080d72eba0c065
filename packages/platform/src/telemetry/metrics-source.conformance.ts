// The MetricsSource contract as a vitest suite that every implementation runs unchanged: the
// built-in store (metrics-source.test.ts) and a real Prometheus (test/integration). Both are fed
// the same 40 minutes of gateway scrapes and must give the same answers at the same instant.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { GATEWAY_REQUESTS, GATEWAY_REQUESTS_IN_FLIGHT, GATEWAY_REQUEST_DURATION } from "./metric-store.js";
import type { Bucket } from "./histogram-buckets.js";
import type { MetricsSource, RequestCounts } from "./metrics-source.js";

/** One scrape of one gateway: exposition text and when it was taken. */
export interface ConformanceScrape {
  instance: string;
  at: number;
  text: string;
}

export interface MetricsSourceHarness {
  /** Makes a source that holds exactly these scrapes; called once per suite. */
  load(scrapes: readonly ConformanceScrape[]): Promise<{ source: MetricsSource; cleanup: () => Promise<void> }>;
}

const STEP = 10_000;
const STEPS = 240;

/**
 * The scenario: scrapes every 10 s for 40 minutes (steps 0..240) of two gateways.
 *  - orders v1 on orders-1 (4.5/s 2xx, 0.5/s 5xx) and orders-2 (3.5/s, 1.5/s): 20% errors;
 *  - orders v2 on orders-3: 4/s 2xx, plus 4/s 5xx from minute 20;
 *  - payments (second gateway, restarted at minute 25): 2/s, never a 5xx series;
 *  - users: 1/s until minute 30, then series present but idle.
 * Histograms for orders v1 (10/s: 50% ≤ 50 ms, 80% ≤ 100 ms, 95% ≤ 250 ms, all ≤ 500 ms) and
 * v2 (4/s: half ≤ 250 ms, half ≤ 500 ms); in-flight gauges 3, 5 and 2 on orders' replicas.
 */
export function conformanceScrapes(start: number): ConformanceScrape[] {
  const out: ConformanceScrape[] = [];
  const R = GATEWAY_REQUESTS;
  const D = GATEWAY_REQUEST_DURATION;
  for (let i = 0; i <= STEPS; i++) {
    const at = start + i * STEP;
    const orders = (replica: string, version: string, ok: number, bad: number) => [
      `${R}{service="orders",version="${version}",replica="${replica}",code_class="2xx"} ${ok}`,
      `${R}{service="orders",version="${version}",replica="${replica}",code_class="5xx"} ${bad}`,
    ];
    const hist = (version: string, buckets: Array<[string, number]>) => {
      const total = buckets[buckets.length - 1]?.[1] ?? 0;
      return [
        ...buckets.map(([le, c]) => `${D}_bucket{service="orders",version="${version}",le="${le}"} ${c}`),
        `${D}_sum{service="orders",version="${version}"} ${(total * 0.08).toFixed(3)}`,
        `${D}_count{service="orders",version="${version}"} ${total}`,
      ];
    };
    const usersTotal = 50 + 10 * Math.min(i, 180);
    out.push({
      instance: "gw-1",
      at,
      text: [
        `# TYPE ${R} counter`,
        ...orders("orders-1", "v1", 1000 + 45 * i, 100 + 5 * i),
        ...orders("orders-2", "v1", 2000 + 35 * i, 200 + 15 * i),
        ...orders("orders-3", "v2", 3000 + 40 * i, 300 + 40 * Math.max(0, i - 120)),
        `${R}{service="users",version="v1",replica="users-1",code_class="2xx"} ${usersTotal}`,
        `# TYPE ${D} histogram`,
        ...hist("v1", [["0.05", 500 + 50 * i], ["0.1", 800 + 80 * i], ["0.25", 950 + 95 * i], ["0.5", 1000 + 100 * i], ["+Inf", 1000 + 100 * i]]),
        ...hist("v2", [["0.05", 0], ["0.1", 0], ["0.25", 200 + 20 * i], ["0.5", 400 + 40 * i], ["+Inf", 400 + 40 * i]]),
        `# TYPE ${GATEWAY_REQUESTS_IN_FLIGHT} gauge`,
        `${GATEWAY_REQUESTS_IN_FLIGHT}{service="orders",version="v1",replica="orders-1"} 3`,
        `${GATEWAY_REQUESTS_IN_FLIGHT}{service="orders",version="v1",replica="orders-2"} 5`,
        `${GATEWAY_REQUESTS_IN_FLIGHT}{service="orders",version="v2",replica="orders-3"} 2`,
        "",
      ].join("\n"),
    });
    // The second gateway restarts at step 150: its counter starts over.
    const payments = i < 150 ? 500 + 20 * i : 20 * (i - 149);
    out.push({ instance: "gw-2", at, text: `# TYPE ${R} counter\n${R}{service="payments",version="v1",replica="payments-1",code_class="2xx"} ${payments}\n` });
  }
  return out;
}

/** Relative tolerance: Prometheus extrapolates rates to the window's edges, the store counts steps. */
function expectClose(actual: number | undefined, expected: number, relative = 0.02): void {
  expect(actual, `expected about ${expected}`).toBeTypeOf("number");
  expect(Math.abs((actual as number) - expected), `${actual} is not within ${relative * 100}% of ${expected}`).toBeLessThanOrEqual(Math.abs(expected) * relative + 1e-9);
}

/**
 * Counts over a window that is not always whole steps. The built-in store answers exact integers
 * over the 10 s steps covering the window (`steps`, each scrape's increase counted whole, the
 * step holding the window's start included); Prometheus extrapolates the samples inside the
 * window to its edges (`window`: the scenario's traffic is steady, so that is exact up to
 * tolerance).
 */
function expectCounts(source: MetricsSource, actual: RequestCounts | undefined, o: { steps: RequestCounts; window: RequestCounts }): void {
  if (source.kind === "builtin") {
    expect(actual).toEqual(o.steps);
    return;
  }
  expectClose(actual?.requests, o.window.requests);
  expectClose(actual?.errors, o.window.errors);
}

/** Buckets as `expectCounts` reads counts: `[le, count]` pairs, +Inf last. */
function expectBuckets(source: MetricsSource, actual: Bucket[] | undefined, o: { steps: Array<[number, number]>; window: Array<[number, number]> }): void {
  const expected = source.kind === "builtin" ? o.steps : o.window;
  expect(actual?.map((b) => b.le)).toEqual(expected.map(([le]) => le));
  if (source.kind === "builtin") expect(actual?.map((b) => b.count)).toEqual(expected.map(([, c]) => c));
  else for (const [i, [, c]] of expected.entries()) expectClose(actual?.[i]?.count, c);
}

async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeelsonError);
  expect((err as KeelsonError).code).toBe("KEELSON_ERR_INVALID_INPUT");
  expect((err as KeelsonError).message).toMatch(pattern);
}

/**
 * Runs the contract against one implementation. `start` is when the scenario's first scrape is
 * taken (a Prometheus harness needs it recent); every question is asked at the last scrape.
 */
export function describeMetricsSourceConformance(name: string, harness: MetricsSourceHarness, options: { start: number }): void {
  describe(`MetricsSource conformance: ${name}`, () => {
    const start = Math.floor(options.start / STEP) * STEP;
    const END = start + STEPS * STEP;
    let source: MetricsSource;
    let cleanup: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      ({ source, cleanup } = await harness.load(conformanceScrapes(start)));
    });
    afterAll(async () => {
      await cleanup?.();
    });

    it("gives the share of 5xx per service, version and replica", async () => {
      expectClose(await source.errorRatio({ service: "orders", version: "v1", window: "5m", at: END }), 0.2);
      expectClose(await source.errorRatio({ service: "orders", version: "v1", replica: "orders-2", window: "5m", at: END }), 0.3);
      expectClose(await source.errorRatio({ service: "orders", version: "v2", window: "5m", at: END }), 0.5);
      // Errors began 20 minutes before the end: a third of the last 30 minutes had none.
      expectClose(await source.errorRatio({ service: "orders", version: "v2", window: "30m", at: END }), 0.4);
      expectClose(await source.errorRatio({ service: "orders", window: "5m", at: END }), 6 / 18);
      // Before the errors began.
      expectClose(await source.errorRatio({ service: "orders", version: "v2", window: "5m", at: start + 15 * 60_000 }), 0, 0);
    });

    it("answers 0 for a service without any 5xx series and undefined without requests", async () => {
      expect(await source.errorRatio({ service: "payments", window: "5m", at: END })).toBe(0);
      expect(await source.errorRatio({ service: "users", window: "5m", at: END })).toBeUndefined();
      expect(await source.errorRatio({ service: "nobody", window: "5m", at: END })).toBeUndefined();
      expect(await source.errorRatio({ service: "orders", version: "v9", window: "5m", at: END })).toBeUndefined();
    });

    it("gives request rates, across a counter reset and for an idle service", async () => {
      expectClose(await source.requestRate({ service: "orders", window: "5m", at: END }), 18);
      expectClose(await source.requestRate({ service: "orders", version: "v1", replica: "orders-2", window: "1m", at: END }), 5);
      expectClose(await source.requestRate({ service: "payments", window: "30m", at: END }), 2);
      expect(await source.requestRate({ service: "users", window: "5m", at: END })).toBe(0);
      expect(await source.requestRate({ service: "nobody", window: "5m", at: END })).toBeUndefined();
    });

    it("gives latency quantiles from histogram buckets, interpolated inside a bucket", async () => {
      expectClose(await source.latencyQuantile({ service: "orders", version: "v1", q: 0.5, window: "5m", at: END }), 0.05);
      expectClose(await source.latencyQuantile({ service: "orders", version: "v1", q: 0.9, window: "5m", at: END }), 0.2);
      expectClose(await source.latencyQuantile({ service: "orders", version: "v1", q: 0.99, window: "5m", at: END }), 0.45);
      // Both versions: 50, 80, 115, 140, 140 per 10 s; the median lies in (50 ms, 100 ms].
      expectClose(await source.latencyQuantile({ service: "orders", q: 0.5, window: "5m", at: END }), 0.05 + 0.05 * (20 / 30));
      expect(await source.latencyQuantile({ service: "payments", q: 0.5, window: "5m", at: END })).toBeUndefined();
    });

    it("gives the share of requests slower than a threshold", async () => {
      expectClose(await source.slowRatio({ service: "orders", version: "v1", thresholdSeconds: 0.1, window: "5m", at: END }), 0.2);
      expectClose(await source.slowRatio({ service: "orders", thresholdSeconds: 0.175, window: "5m", at: END }), 1 - 97.5 / 140);
      expectClose(await source.slowRatio({ service: "orders", version: "v2", thresholdSeconds: 0.5, window: "5m", at: END }), 0, 0);
      expect(await source.slowRatio({ service: "payments", thresholdSeconds: 0.1, window: "5m", at: END })).toBeUndefined();
    });

    it("gives requests in flight summed over replicas", async () => {
      expectClose(await source.inflight({ service: "orders", window: "1m", at: END }), 10);
      expectClose(await source.inflight({ service: "orders", replica: "orders-2", window: "1m", at: END }), 5);
      expectClose(await source.inflight({ service: "orders", version: "v2", window: "1m", at: END }), 2);
      expect(await source.inflight({ service: "payments", window: "1m", at: END })).toBeUndefined();
    });

    // Per 10 s: orders v1 100 requests (20 5xx), of which orders-2 50 (15); v2 40, 80 (40 5xx) from minute 20.
    it("counts requests and 5xx over a window, summed over replicas", async () => {
      // 5 minutes: Prometheus 30 steps of traffic; the store 31, the step holding the start included.
      expectCounts(source, await source.counts({ service: "orders", version: "v1", window: "5m", at: END }), {
        steps: { requests: 3100, errors: 620 },
        window: { requests: 3000, errors: 600 },
      });
      // Across a counter reset (payments' gateway restarted at minute 25), with no 5xx series at all.
      expectCounts(source, await source.counts({ service: "payments", window: "30m", at: END }), {
        steps: { requests: 3620, errors: 0 },
        window: { requests: 3600, errors: 0 },
      });
      // Before v2's errors began: its 5xx series exists but did not move.
      expectCounts(source, await source.counts({ service: "orders", version: "v2", window: "1m", at: start + 15 * 60_000 }), {
        steps: { requests: 280, errors: 0 },
        window: { requests: 240, errors: 0 },
      });
    });

    it("counts everything since a window's start when the window is not whole steps", async () => {
      // 95 s: Prometheus 9.5 steps of traffic; the store 11 whole steps (not 10, the nearest).
      expectCounts(source, await source.counts({ service: "orders", window: 95_000, at: END }), {
        steps: { requests: 1980, errors: 660 },
        window: { requests: 1710, errors: 570 },
      });
      // `at` between two scrapes, 94 s back: the store takes the steps holding `at` and the start
      // (10 steps, where the nearest whole number would be 9 and miss traffic since the start).
      expectCounts(source, await source.counts({ service: "orders", version: "v1", replica: "orders-2", window: 94_000, at: END - 4_000 }), {
        steps: { requests: 500, errors: 150 },
        window: { requests: 470, errors: 141 },
      });
      // Shorter than the scrape interval: the store counts the step holding `at` (the newest
      // scrape) and the one before; Prometheus's increase() needs two samples inside the window.
      const short = await source.counts({ service: "orders", version: "v1", window: 7_000, at: END });
      if (source.kind === "builtin") expect(short).toEqual({ requests: 200, errors: 40 });
      else expect(short).toBeUndefined();
    });

    it("counts 0 for idle series and nothing for a selection without series", async () => {
      expect(await source.counts({ service: "users", window: "5m", at: END })).toEqual({ requests: 0, errors: 0 });
      expect(await source.counts({ service: "nobody", window: "5m", at: END })).toBeUndefined();
      expect(await source.counts({ service: "orders", version: "v9", window: 95_000, at: END })).toBeUndefined();
      // Before the scenario began.
      expect(await source.counts({ service: "orders", window: "1m", at: start - 5 * 60_000 })).toBeUndefined();
    });

    // Per 10 s, cumulative up to 50, 100, 250, 500 ms and +Inf: v1 50, 80, 95, 100, 100; v2 0, 0, 20, 40, 40.
    it("gives the latency histogram's cumulative buckets over a window, ascending with +Inf last", async () => {
      const les = [0.05, 0.1, 0.25, 0.5, Infinity];
      const times = (k: number, per: number[]) => les.map((le, i) => [le, k * (per[i] as number)] as [number, number]);
      expectBuckets(source, await source.latencyBuckets({ service: "orders", version: "v1", window: "5m", at: END }), {
        steps: times(31, [50, 80, 95, 100, 100]),
        window: times(30, [50, 80, 95, 100, 100]),
      });
      // Both versions, over a window that is not whole steps.
      expectBuckets(source, await source.latencyBuckets({ service: "orders", window: 95_000, at: END }), {
        steps: times(11, [50, 80, 115, 140, 140]),
        window: times(9.5, [50, 80, 115, 140, 140]),
      });
      expect(await source.latencyBuckets({ service: "payments", window: "5m", at: END })).toBeUndefined();
      expect(await source.latencyBuckets({ service: "orders", version: "v9", window: "5m", at: END })).toBeUndefined();
    });

    it("answers a custom PromQL query with one number, or says why not", async () => {
      await rejects(source.query("  "), /^query: expected a PromQL expression/);
      const total = `sum(increase(${GATEWAY_REQUESTS}{service="orders",version="v1"}[5m]))`;
      if (source.kind === "builtin") {
        await rejects(source.query(total, { at: END }), /telemetry\.prometheus\.url in keelson\.yaml/);
        return;
      }
      expectClose(await source.query(total, { at: END }), 3000);
      expect(await source.query("scalar(vector(2.5)) * 2", { at: END })).toBe(5);
      expect(await source.query(`sum(${GATEWAY_REQUESTS}{service="nobody"})`, { at: END })).toBeUndefined();
      await rejects(source.query(`${GATEWAY_REQUESTS}{service="orders"}`, { at: END }), /^query "keelson_gateway_requests_total\{service=\\"orders\\"\}": expected one number, got 6 series/);
      await rejects(source.query(`${GATEWAY_REQUESTS}{service="payments"}[1m]`, { at: END }), /expected one number, got a range vector/);
      // Prometheus's own words on a malformed query.
      await rejects(source.query("sum(rate(", { at: END }), /^query "sum\(rate\(": Prometheus at .* rejected it: bad_data: .*parse error/);
    });

    it("rejects bad selectors alike, naming the field", async () => {
      await rejects(source.errorRatio({ service: "", window: "5m" }), /^service: expected a service name/);
      await rejects(source.requestRate({ service: "orders", window: "soon" }), /^window: expected a duration/);
      await rejects(source.latencyQuantile({ service: "orders", q: 99, window: "5m" }), /^q: expected a quantile between 0 and 1, got 99/);
      await rejects(source.slowRatio({ service: "orders", thresholdSeconds: 0, window: "5m" }), /^thresholdSeconds: expected a positive number/);
      await rejects(source.counts({ service: "orders", window: 0 }), /^window: expected a duration/);
      await rejects(source.latencyBuckets({ service: "orders", version: "", window: "5m" }), /^version: expected a non-empty string/);
    });
  });
}
