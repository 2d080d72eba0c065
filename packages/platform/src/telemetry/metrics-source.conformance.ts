// The MetricsSource contract as a vitest suite that every implementation runs unchanged: the
// built-in store (metrics-source.test.ts) and a real Prometheus (test/integration). Both are fed
// the same 40 minutes of gateway scrapes and must give the same answers at the same instant.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { GATEWAY_REQUESTS, GATEWAY_REQUESTS_IN_FLIGHT, GATEWAY_REQUEST_DURATION } from "./metric-store.js";
import type { MetricsSource } from "./metrics-source.js";

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

    it("rejects bad selectors alike, naming the field", async () => {
      await rejects(source.errorRatio({ service: "", window: "5m" }), /^service: expected a service name/);
      await rejects(source.requestRate({ service: "orders", window: "soon" }), /^window: expected a duration/);
      await rejects(source.latencyQuantile({ service: "orders", q: 99, window: "5m" }), /^q: expected a quantile between 0 and 1, got 99/);
      await rejects(source.slowRatio({ service: "orders", thresholdSeconds: 0, window: "5m" }), /^thresholdSeconds: expected a positive number/);
    });
  });
}
