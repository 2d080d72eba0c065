// The built-in metric store: increases and resets, grouping and filters, error ratios and
// histogram quantiles, its two resolutions, bounded memory and errors that name what is unknown.
import { describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { createMetricStore, durationMs, GATEWAY_REQUESTS, GATEWAY_REQUEST_DURATION, GATEWAY_REQUESTS_IN_FLIGHT } from "./metric-store.js";
import type { MetricStore, VectorSample } from "./metric-store.js";

const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;

type Labels = Record<string, string>;

/** Exposition text of the gateway's request counter. */
function requests(rows: Array<[Labels, number]>): string {
  return [`# TYPE ${GATEWAY_REQUESTS} counter`, ...rows.map(([l, v]) => `${GATEWAY_REQUESTS}{${labelText(l)}} ${v}`)].join("\n");
}

/** Exposition text of the duration histogram: cumulative counts per bound. */
function durations(rows: Array<[Labels, Array<[string, number]>]>): string {
  const lines = [`# TYPE ${GATEWAY_REQUEST_DURATION} histogram`];
  for (const [l, buckets] of rows) {
    for (const [le, count] of buckets) lines.push(`${GATEWAY_REQUEST_DURATION}_bucket{${labelText({ ...l, le })}} ${count}`);
    const total = buckets[buckets.length - 1]?.[1] ?? 0;
    lines.push(`${GATEWAY_REQUEST_DURATION}_sum{${labelText(l)}} ${total * 0.05}`, `${GATEWAY_REQUEST_DURATION}_count{${labelText(l)}} ${total}`);
  }
  return lines.join("\n");
}

function labelText(l: Labels): string {
  return Object.entries(l)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
}

/** Scrapes `count` times, every `every` ms from `start`, the text `at(i)` gives. */
function scrape(store: MetricStore, opts: { start: number; every: number; count: number; instance?: string }, text: (i: number) => string): number {
  let t = opts.start;
  for (let i = 0; i < opts.count; i++) {
    t = opts.start + i * opts.every;
    store.ingest(text(i), { instance: opts.instance ?? "gw-1", at: t });
  }
  return t;
}

function values(v: VectorSample[], key?: string): Record<string, number> {
  return Object.fromEntries(v.map((s) => [key === undefined ? "" : (s.labels[key] ?? ""), Math.round(s.value * 1e9) / 1e9]));
}

function invalid(fn: () => unknown): KeelsonError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_INVALID_INPUT");
    return err as KeelsonError;
  }
  throw new Error("expected KEELSON_ERR_INVALID_INPUT");
}

describe("createMetricStore: counters", () => {
  it("answers rate and increase from scraped counters, grouped and filtered by label", () => {
    let now = T0;
    const store = createMetricStore({ now: () => now });
    const end = scrape(store, { start: T0 + 3 * S, every: 10 * S, count: 61 }, (i) =>
      requests([
        [{ service: "orders", code_class: "2xx" }, 1000 + 50 * i],
        [{ service: "orders", code_class: "5xx" }, 10 * i],
        [{ service: "users", code_class: "2xx" }, 20 * i],
      ]),
    );
    now = end + 2 * S;
    expect(values(store.rate(GATEWAY_REQUESTS, { window: "1m", by: ["service"] }), "service")).toEqual({ orders: 6, users: 2 });
    expect(values(store.rate(GATEWAY_REQUESTS, { window: 5 * MIN, where: { code_class: "5xx" } }))).toEqual({ "": 1 });
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "10m", by: ["code_class"], where: { service: "orders" } }), "code_class")).toEqual({ "2xx": 3000, "5xx": 600 });
    // The same question at an earlier time, with the orders counters only 30 s old then.
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "1m", at: T0 + 33 * S, where: { service: "orders" } }))).toEqual({ "": 180 });
  });

  it("counts a counter that went down as reset, the way Prometheus's increase() does", () => {
    const store = createMetricStore({ now: () => T0 + 100 * S });
    const series = [100, 150, 20, 70, 70];
    scrape(store, { start: T0 + 50 * S, every: 10 * S, count: series.length }, (i) => requests([[{ service: "a", code_class: "2xx" }, series[i] as number]]));
    // 50 + 20 (counted from zero after the reset) + 50 + 0.
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "1m" }))).toEqual({ "": 120 });
  });

  it("counts a new series of a target it already scraped from zero, but not on a target's first scrape", () => {
    const store = createMetricStore({ now: () => T0 + 60 * S });
    store.ingest(requests([[{ service: "a", code_class: "2xx" }, 500]]), { instance: "gw-1", at: T0 + 10 * S });
    // The first 5xx appears between scrapes: all three happened since the last one.
    store.ingest(requests([[{ service: "a", code_class: "2xx" }, 510], [{ service: "a", code_class: "5xx" }, 3]]), { instance: "gw-1", at: T0 + 20 * S });
    // A second gateway seen for the first time: its totals predate anything we know.
    store.ingest(requests([[{ service: "a", code_class: "2xx" }, 9000]]), { instance: "gw-2", at: T0 + 20 * S });
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "1m", by: ["code_class"] }), "code_class")).toEqual({ "2xx": 10, "5xx": 3 });
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "1m", by: ["instance"] }), "instance")).toEqual({ "gw-1": 13, "gw-2": 0 });
  });

  it("ignores samples older than the series' newest, and uses a sample's own timestamp", () => {
    const store = createMetricStore({ now: () => T0 + 60 * S });
    store.ingest(requests([[{ service: "a", code_class: "2xx" }, 10]]), { instance: "gw", at: T0 });
    const late = store.ingest(`# TYPE ${GATEWAY_REQUESTS} counter\n${GATEWAY_REQUESTS}{service="a",code_class="2xx"} 30 ${T0 + 40 * S}\n`, { instance: "gw", at: T0 + 20 * S });
    const old = store.ingest(requests([[{ service: "a", code_class: "2xx" }, 25]]), { instance: "gw", at: T0 + 30 * S });
    expect([late.samples, old.samples, old.ignored]).toEqual([1, 0, 1]);
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "30s", at: T0 + 45 * S }))).toEqual({ "": 20 });
  });

  it("ends a window at the newest scrape, so a step not yet scraped does not read as no traffic", () => {
    let now = T0;
    const store = createMetricStore({ now: () => now });
    // Scrapes at :05, :15, …; asked at :53 the step from :50 has not been scraped yet.
    const end = scrape(store, { start: T0 + 5 * S, every: 10 * S, count: 30 }, (i) => requests([[{ service: "a", code_class: "2xx" }, 100 * i]]));
    now = end + 8 * S;
    expect(values(store.rate(GATEWAY_REQUESTS, { window: "1m" }))).toEqual({ "": 10 });
    // Long after the last scrape the window no longer sees it: stale data is not current data.
    now = end + 10 * MIN;
    expect(store.rate(GATEWAY_REQUESTS, { window: "1m" })).toEqual([]);
  });

  it("ignores families it does not keep, and samples that are not numbers", () => {
    const store = createMetricStore({ now: () => T0 });
    const r = store.ingest(
      ["# TYPE process_cpu_seconds_total counter", "process_cpu_seconds_total 3", `# TYPE ${GATEWAY_REQUESTS} counter`, `${GATEWAY_REQUESTS}{service="a",code_class="2xx"} NaN`, `${GATEWAY_REQUESTS}{service="a",code_class="4xx"} 1`].join("\n"),
      { instance: "gw", at: T0 },
    );
    expect(r).toEqual({ samples: 1, newSeries: 1, ignored: 2 });
    expect(store.stats().series).toBe(1);
  });
});

describe("createMetricStore: RED queries", () => {
  function redStore(): MetricStore {
    const store = createMetricStore({ now: () => T0 + 10 * MIN });
    scrape(store, { start: T0 + 10 * S, every: 10 * S, count: 60 }, (i) =>
      [
        requests([
          [{ service: "orders", version: "v1", replica: "orders-1", code_class: "2xx" }, 90 * i],
          [{ service: "orders", version: "v1", replica: "orders-1", code_class: "5xx" }, 10 * i],
          [{ service: "orders", version: "v2", replica: "orders-2", code_class: "2xx" }, 50 * i],
          [{ service: "orders", version: "v2", replica: "orders-2", code_class: "5xx" }, 50 * i],
          [{ service: "users", version: "v1", replica: "users-1", code_class: "2xx" }, 40 * i],
        ]),
        durations([
          [{ service: "orders", version: "v1" }, [["0.05", 50 * i], ["0.1", 80 * i], ["0.25", 95 * i], ["0.5", 100 * i], ["+Inf", 100 * i]]],
          [{ service: "users", version: "v1" }, [["0.05", 0], ["0.1", 20 * i], ["0.25", 40 * i], ["0.5", 40 * i], ["+Inf", 40 * i]]],
        ]),
        `# TYPE ${GATEWAY_REQUESTS_IN_FLIGHT} gauge`,
        `${GATEWAY_REQUESTS_IN_FLIGHT}{service="orders",version="v1",replica="orders-1"} ${i % 2 === 0 ? 2 : 4}`,
        `${GATEWAY_REQUESTS_IN_FLIGHT}{service="orders",version="v2",replica="orders-2"} 5`,
      ].join("\n"),
    );
    return store;
  }

  it("gives 5xx over all requests per service, version and replica, and 0 where no 5xx series exists", () => {
    const store = redStore();
    expect(values(store.errorRatio({ service: "orders", window: "5m" }))).toEqual({ "": 0.3 });
    expect(values(store.errorRatio({ service: "orders", version: "v2", window: "5m" }))).toEqual({ "": 0.5 });
    expect(values(store.errorRatio({ window: "5m", by: ["service"] }), "service")).toEqual({ orders: 0.3, users: 0 });
    expect(values(store.errorRatio({ service: "orders", window: "5m", by: ["replica"] }), "replica")).toEqual({ "orders-1": 0.1, "orders-2": 0.5 });
    expect(store.errorRatio({ service: "nobody", window: "5m" })).toEqual([]);
  });

  it("computes histogram quantiles and the share above a threshold per group", () => {
    const store = redStore();
    expect(values(store.latencyQuantile({ q: 0.9, window: "5m", by: ["service"] }), "service")).toEqual({ orders: 0.2, users: 0.22 });
    expect(values(store.latencyQuantile({ q: 0.99, service: "orders", version: "v1", window: "1m" }))).toEqual({ "": 0.45 });
    expect(store.latencyQuantile({ q: 0.5, service: "orders", version: "v2", window: "5m" })).toEqual([]);
    expect(values(store.slowRatio({ thresholdSeconds: 0.1, window: "5m", by: ["service"] }), "service")).toEqual({ orders: 0.2, users: 0.5 });
  });

  it("averages gauges over the window and sums them across series", () => {
    const store = redStore();
    expect(values(store.avgOverTime(GATEWAY_REQUESTS_IN_FLIGHT, { window: "1m", where: { service: "orders" } }))).toEqual({ "": 8 });
    expect(values(store.avgOverTime(GATEWAY_REQUESTS_IN_FLIGHT, { window: "1m", by: ["replica"] }), "replica")).toEqual({ "orders-1": 3, "orders-2": 5 });
  });

  it("averages every gauge sample of a step when scraped faster than the step, in both tiers", () => {
    const store = createMetricStore({ now: () => T0 + 59 * S });
    // Scraped every second: 0..9 in the first 10 s step, then 10 for 50 s.
    scrape(store, { start: T0, every: S, count: 60 }, (i) => `# TYPE ${GATEWAY_REQUESTS_IN_FLIGHT} gauge\n${GATEWAY_REQUESTS_IN_FLIGHT}{service="a"} ${i < 10 ? i : 10}\n`);
    expect(values(store.avgOverTime(GATEWAY_REQUESTS_IN_FLIGHT, { window: "10s", at: T0 + 9 * S }))).toEqual({ "": 4.5 });
    expect(values(store.avgOverTime(GATEWAY_REQUESTS_IN_FLIGHT, { window: "1m" }))).toEqual({ "": 9.083333333 }) // (45 + 500) / 60;
    // 25 hours later only the 1-minute tier holds that minute; it averages the same 60 samples.
    store.ingest(`# TYPE ${GATEWAY_REQUESTS_IN_FLIGHT} gauge\n${GATEWAY_REQUESTS_IN_FLIGHT}{service="a"} 99\n`, { instance: "gw-1", at: T0 + 25 * H });
    expect(values(store.avgOverTime(GATEWAY_REQUESTS_IN_FLIGHT, { window: "10s", at: T0 + 9 * S }))).toEqual({ "": 9.083333333 }) // (45 + 500) / 60;
    expect(values(store.avgOverTime(GATEWAY_REQUESTS_IN_FLIGHT, { window: "1m", at: T0 + 25 * H }))).toEqual({ "": 99 });
  });

  it("reads histogram parts as counters, le included", () => {
    const store = redStore();
    expect(values(store.rate(`${GATEWAY_REQUEST_DURATION}_count`, { window: "1m", by: ["service"] }), "service")).toEqual({ orders: 10, users: 4 });
    expect(values(store.rate(`${GATEWAY_REQUEST_DURATION}_bucket`, { window: "1m", where: { service: "orders", le: "0.1" } }))).toEqual({ "": 8 });
  });

  it("tolerates a defined label the gateway does not send, and accepts labels it does send", () => {
    const store = createMetricStore({ now: () => T0 + MIN });
    scrape(store, { start: T0, every: 10 * S, count: 7 }, (i) => requests([[{ service: "a", code_class: "2xx", method: "GET" }, 10 * i]]));
    expect(store.errorRatio({ service: "a", version: "v1", window: "1m" })).toEqual([]);
    const byVersion = store.rate(GATEWAY_REQUESTS, { window: "1m", by: ["version"] });
    expect(byVersion.map((v) => v.labels)).toEqual([{}]);
    expect(byVersion[0]?.value).toBeCloseTo(1, 9);
    expect(values(store.rate(GATEWAY_REQUESTS, { window: "1m", by: ["method"] }), "method")).toEqual({ GET: 1 });
    expect(store.labelValues(GATEWAY_REQUESTS, "service")).toEqual(["a"]);
    expect(store.labelNames(GATEWAY_REQUESTS)).toEqual(["code_class", "instance", "method", "replica", "route", "service", "version"]);
  });

  it("covers every step from the window's start through `at` with steps: \"cover\", for counts since a moment", () => {
    const store = redStore();
    const v1 = { service: "orders", version: "v1" };
    // Scrapes every 10 s up to T0 + 600 s, 100 v1 requests each. 7 s back from the newest scrape:
    // the nearest whole number of steps is that scrape's step alone; covering takes the one holding the start too.
    const at = T0 + 600 * S;
    expect(values(store.increase(GATEWAY_REQUESTS, { window: 7 * S, at, where: v1 }))).toEqual({ "": 100 });
    expect(values(store.increase(GATEWAY_REQUESTS, { window: 7 * S, at, where: v1, steps: "cover" }))).toEqual({ "": 200 });
    // Between two scrapes, 94 s back: 9 steps to the nearest, 10 to cover (scrapes at 510 s … 590 s and 500 s).
    expect(values(store.increase(GATEWAY_REQUESTS, { window: 94 * S, at: at - 5 * S, where: v1 }))).toEqual({ "": 900 });
    expect(values(store.increase(GATEWAY_REQUESTS, { window: 94 * S, at: at - 5 * S, where: v1, steps: "cover" }))).toEqual({ "": 1000 });
    // A whole number of steps from a step boundary still takes the step holding the start.
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "1m", at, where: v1, steps: "cover" }))).toEqual({ "": 700 });
    expect(values(store.errorRatio({ ...v1, window: 7 * S, at, steps: "cover" }))).toEqual({ "": 0.1 });
    expect(invalid(() => store.increase(GATEWAY_REQUESTS, { window: "1m", steps: "round" as "cover" })).message).toBe('steps: expected "nearest" or "cover", got "round"');
  });

  it("gives the latency histogram's cumulative buckets per group, ascending with +Inf last", () => {
    const store = redStore();
    expect(store.latencyBuckets({ window: 7 * S, at: T0 + 600 * S, by: ["service"], steps: "cover" })).toEqual([
      { labels: { service: "orders" }, buckets: [{ le: 0.05, count: 100 }, { le: 0.1, count: 160 }, { le: 0.25, count: 190 }, { le: 0.5, count: 200 }, { le: Infinity, count: 200 }] },
      { labels: { service: "users" }, buckets: [{ le: 0.05, count: 0 }, { le: 0.1, count: 40 }, { le: 0.25, count: 80 }, { le: 0.5, count: 80 }, { le: Infinity, count: 80 }] },
    ]);
    expect(store.latencyBuckets({ service: "orders", version: "v1", window: "1m" }).map((g) => g.buckets.map((b) => b.count))).toEqual([[300, 480, 570, 600, 600]]);
    expect(store.latencyBuckets({ service: "orders", version: "v2", window: "5m" })).toEqual([]);
  });

  it("names unknown metrics and labels, wrong kinds and bad windows", () => {
    const store = redStore();
    expect(invalid(() => store.rate("keelson_gateway_request_total", { window: "1m" })).message).toMatch(/^unknown metric "keelson_gateway_request_total" \(known: keelson_gateway_requests_total, /);
    expect(invalid(() => store.rate(GATEWAY_REQUESTS, { window: "1m", by: ["servce", "zone"] })).message).toBe(
      `unknown labels "servce", "zone" for ${GATEWAY_REQUESTS} (known: code_class, instance, replica, route, service, version)`,
    );
    expect(invalid(() => store.rate(GATEWAY_REQUESTS, { window: "1m", where: { le: "0.1" } })).message).toMatch(/^unknown label "le" for keelson_gateway_requests_total/);
    expect(invalid(() => store.rate(GATEWAY_REQUESTS_IN_FLIGHT, { window: "1m" })).message).toBe(`rate() does not apply to ${GATEWAY_REQUESTS_IN_FLIGHT}: it is a gauge`);
    expect(invalid(() => store.errorRatio({ service: "orders", window: "5 minutes" })).message).toBe('window: expected a duration like "30s", "5m" or "1h" (or milliseconds > 0), got "5 minutes"');
    expect(invalid(() => store.latencyQuantile({ q: 1.5, window: "1m" })).message).toBe("q: expected a quantile between 0 and 1, got 1.5");
    expect(invalid(() => store.latencyQuantile({ q: 0.5, window: "1m", by: ["replica"] })).message).toMatch(/^unknown label "replica" for keelson_gateway_request_duration_seconds_bucket/);
  });
});

describe("createMetricStore: resolution and memory", () => {
  it("keeps 10 s steps for 24 h and answers longer windows from 1-minute steps", () => {
    let now = T0;
    const store = createMetricStore({ now: () => now });
    // 26 hours of scrapes, 6 requests every 10 s, and a burst of 600 errors 25 hours ago.
    const start = T0;
    const count = (26 * H) / (10 * S);
    let errors = 0;
    for (let i = 0; i < count; i++) {
      const t = start + i * 10 * S;
      if (i === 60) errors = 600;
      store.ingestFamilies(
        [
          {
            name: GATEWAY_REQUESTS,
            type: "counter",
            help: undefined,
            samples: [
              { name: GATEWAY_REQUESTS, labels: { service: "a", code_class: "2xx" }, value: 6 * i, timestampMs: undefined, line: 1 },
              { name: GATEWAY_REQUESTS, labels: { service: "a", code_class: "5xx" }, value: errors, timestampMs: undefined, line: 2 },
            ],
          },
        ],
        { instance: "gw", at: t },
      );
    }
    now = start + (count - 1) * 10 * S;
    const all = (window: string | number) => values(store.increase(GATEWAY_REQUESTS, { window, by: ["code_class"] }), "code_class");
    expect(all("1h")).toEqual({ "2xx": 6 * 360, "5xx": 0 });
    // 25.9 h back reaches the burst; only the 1-minute tier still holds it.
    expect(all(25.9 * H)).toEqual({ "2xx": 6 * 6 * 60 * 25.9, "5xx": 600 });
    // An hour that ended 25 h ago is read from the 1-minute tier too.
    expect(values(store.increase(GATEWAY_REQUESTS, { window: "1h", at: start + H, where: { code_class: "5xx" } }))).toEqual({ "": 600 });
    // Windows beyond the retention are cut to it.
    expect(all("30d")["2xx"]).toBe(6 * (count - 1));
  });

  it("stores small increases in one byte per step, widens only as needed, and keeps idle hours free", () => {
    const store = createMetricStore({ now: () => T0 });
    const base = store.stats().bytes;
    expect(base).toBe(0);
    scrape(store, { start: T0, every: 10 * S, count: 360 }, (i) =>
      requests([
        [{ service: "small", code_class: "2xx" }, 5 * i],
        [{ service: "idle", code_class: "2xx" }, 7],
        [{ service: "big", code_class: "2xx" }, 1000 * i],
      ]),
    );
    const { bytes, series } = store.stats();
    expect(series).toBe(3);
    // small: a raw chunk of 360 u8 + a 1-minute chunk of 360 u8 (30 per minute);
    // big: 1000 per step needs u16 raw, 6000 per minute u16; idle: nothing.
    expect(bytes - 3 * 600).toBe(360 + 360 + 720 + 720);
  });

  it("holds a busy series for the full 7 days in bounded memory: old hours leave as new ones come", () => {
    let now = T0;
    const store = createMetricStore({ now: () => now });
    const sample = (value: number) => [
      { name: GATEWAY_REQUESTS, type: "counter" as const, help: undefined, samples: [{ name: GATEWAY_REQUESTS, labels: { service: "a", code_class: "2xx" }, value, timestampMs: undefined, line: 1 }] },
    ];
    // Eight days of 50 requests every 10 s: 1 byte per raw step, 2 per minute (300).
    const steps = (8 * 24 * H) / (10 * S);
    let peak = 0;
    for (let i = 0; i <= steps; i++) {
      now = T0 + i * 10 * S;
      store.ingestFamilies(sample(50 * i), { instance: "gw", at: now });
      if (i % 360 === 0) peak = Math.max(peak, store.stats().bytes);
    }
    // At most 25 raw chunks (24 h + the current hour) of u8 and 29 one-minute chunks (7 d + 6 h) of u16.
    expect(peak).toBeLessThanOrEqual(600 + 25 * 360 + 29 * 720);
    expect(store.stats().bytes).toBeGreaterThan(600 + 24 * 360 + 28 * 720);
    // A 1-minute tier answers to the minute: the window's newest minute has only begun.
    const week = store.increase(GATEWAY_REQUESTS, { window: "7d" })[0]?.value ?? 0;
    expect(week).toBeLessThanOrEqual(50 * 6 * 60 * 24 * 7);
    expect(week).toBeGreaterThan(50 * 6 * (60 * 24 * 7 - 1));
  });

  it("refuses series beyond maxSeries and counts them", () => {
    const store = createMetricStore({ now: () => T0, maxSeries: 2 });
    const r = store.ingest(requests([[{ service: "a", code_class: "2xx" }, 1], [{ service: "b", code_class: "2xx" }, 1], [{ service: "c", code_class: "2xx" }, 1]]), { instance: "gw", at: T0 });
    expect(r.ignored).toBe(1);
    expect(store.stats()).toMatchObject({ series: 2, droppedSeries: 1 });
  });

  it("forgets series not seen for the whole retention and frees their memory", () => {
    let now = T0;
    const store = createMetricStore({ now: () => now, retention: [{ stepMs: 10 * S, spanMs: H }, { stepMs: MIN, spanMs: 2 * H }] });
    scrape(store, { start: T0, every: 10 * S, count: 30 }, (i) => requests([[{ service: "gone", code_class: "2xx" }, 10 * i]]));
    expect(store.stats().series).toBe(1);
    const end = scrape(store, { start: T0 + 5 * MIN, every: 10 * S, count: 6 * 60 * 3 }, (i) => requests([[{ service: "stays", code_class: "2xx" }, 10 * i]]));
    now = end;
    const stats = store.stats();
    expect(stats.series).toBe(1);
    expect(store.labelValues(GATEWAY_REQUESTS, "service")).toEqual(["stays"]);
    // What is left: "stays" over at most 2 raw chunks (1 h + the current one) and 2 coarse chunks.
    expect(stats.bytes).toBeLessThanOrEqual(600 + 4 * 360);
  });
});

describe("durationMs", () => {
  it("reads milliseconds and duration strings and rejects the rest", () => {
    expect(durationMs(1500, "w")).toBe(1500);
    expect(durationMs("5m", "w")).toBe(300_000);
    expect(invalid(() => durationMs(0, "window")).message).toMatch(/^window: expected a duration/);
    expect(invalid(() => durationMs("-1s", "window")).message).toMatch(/got "-1s"$/);
  });
});
