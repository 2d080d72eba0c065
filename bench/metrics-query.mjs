// Benchmark: queries of the built-in metric store over 100 services × a 1 h window (10 s steps),
// beside a reference run summing the same number of values held in plain arrays.
// Usage: node bench/metrics-query.mjs [--services 100] [--runs 21]   (after `npm run build`)
import { performance } from "node:perf_hooks";
import { createMetricStore, GATEWAY_REQUESTS, GATEWAY_REQUEST_DURATION } from "../packages/platform/dist/telemetry/index.js";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const SERVICES = Number(args.services ?? 100);
const RUNS = Number(args.runs ?? 21);
const REPLICAS = 3;
const CLASSES = ["2xx", "4xx", "5xx"];
const BUCKETS = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"];
const STEP = 10_000;
const STEPS = 360;
const T0 = Date.UTC(2026, 0, 1);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(2)} ms`;

// Deterministic traffic: service s gets 10 + s requests per step per replica, 1% 5xx, 2% 4xx.
function exposition(step) {
  const lines = [`# TYPE ${GATEWAY_REQUESTS} counter`];
  for (let s = 0; s < SERVICES; s++) {
    const perStep = 10 + s;
    for (let r = 0; r < REPLICAS; r++) {
      const total = perStep * step;
      const counts = { "2xx": Math.round(total * 0.97), "4xx": Math.round(total * 0.02), "5xx": Math.round(total * 0.01) };
      for (const c of CLASSES) lines.push(`${GATEWAY_REQUESTS}{service="svc-${s}",version="v1",route="/svc-${s}",replica="svc-${s}-${r}",code_class="${c}"} ${counts[c]}`);
    }
  }
  lines.push(`# TYPE ${GATEWAY_REQUEST_DURATION} histogram`);
  for (let s = 0; s < SERVICES; s++) {
    const total = (10 + s) * REPLICAS * step;
    const labels = `service="svc-${s}",version="v1",route="/svc-${s}"`;
    // Cumulative share per bound: most requests between 5 and 100 ms.
    const share = [0, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.995, 0.999, 1, 1, 1, 1, 1];
    BUCKETS.forEach((le, i) => lines.push(`${GATEWAY_REQUEST_DURATION}_bucket{${labels},le="${le}"} ${Math.round(total * share[i])}`));
    lines.push(`${GATEWAY_REQUEST_DURATION}_sum{${labels}} ${(total * 0.04).toFixed(3)}`, `${GATEWAY_REQUEST_DURATION}_count{${labels}} ${total}`);
  }
  return `${lines.join("\n")}\n`;
}

const end = T0 + STEPS * STEP;
const store = createMetricStore({ now: () => end });
const ingestMs = [];
let samplesPerScrape = 0;
for (let i = 0; i <= STEPS; i++) {
  const text = exposition(i);
  const t = performance.now();
  const r = store.ingest(text, { instance: "127.0.0.1:8081", at: T0 + i * STEP });
  ingestMs.push(performance.now() - t);
  samplesPerScrape = r.samples;
}
const stats = store.stats();

const queries = {
  "errorRatio by service, 1 h": () => store.errorRatio({ window: "1h", by: ["service"] }),
  "latencyQuantile p99 by service, 1 h": () => store.latencyQuantile({ q: 0.99, window: "1h", by: ["service"] }),
  "rate of requests by service, 1 h": () => store.rate(GATEWAY_REQUESTS, { window: "1h", by: ["service"] }),
};
// Values each query reads: every matching series × 360 steps (errorRatio reads the 5xx series twice).
const requestSeries = SERVICES * REPLICAS * CLASSES.length;
const bucketSeries = SERVICES * BUCKETS.length;
const valuesRead = {
  "errorRatio by service, 1 h": (requestSeries + SERVICES * REPLICAS) * STEPS,
  "latencyQuantile p99 by service, 1 h": bucketSeries * STEPS,
  "rate of requests by service, 1 h": requestSeries * STEPS,
};

// Reference: the same number of values, in plain arrays of 360 numbers, summed.
function referenceSum(values) {
  const arrays = Array.from({ length: values / STEPS }, (_, i) => Array.from({ length: STEPS }, (_, k) => (i + k) % 7));
  return () => {
    let total = 0;
    for (const a of arrays) for (let k = 0; k < a.length; k++) total += a[k];
    return total;
  };
}

function time(fn) {
  fn();
  const xs = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    fn();
    xs.push(performance.now() - t);
  }
  return median(xs);
}

const check = store.errorRatio({ window: "1h", by: ["service"] });
if (check.length !== SERVICES || Math.abs(check[0].value - 0.01) > 0.002) throw new Error(`unexpected error ratios: ${JSON.stringify(check.slice(0, 2))}`);
const p99 = store.latencyQuantile({ q: 0.99, window: "1h", by: ["service"] });
if (p99.length !== SERVICES) throw new Error(`expected ${SERVICES} p99 groups, got ${p99.length}`);

console.log(`${SERVICES} services, ${stats.series} series, ${samplesPerScrape} samples per scrape, ${STEPS + 1} scrapes (1 h at 10 s); median of ${RUNS}`);
console.log(`ingest (parse + store) of one scrape: median ${ms(median(ingestMs))}; store holds ${(stats.bytes / 1024 / 1024).toFixed(1)} MiB`);
console.log("| query | figure | reference (plain array sums of as many values) | × reference | target |");
console.log("|---|---|---|---|---|");
for (const [name, fn] of Object.entries(queries)) {
  const q = time(fn);
  const ref = time(referenceSum(valuesRead[name]));
  console.log(`| ${name} (${(valuesRead[name] / 1000).toFixed(0)}k values) | ${ms(q)} | ${ms(ref)} | ${(q / ref).toFixed(2)} | < 50 ms ${q < 50 ? "✓" : "✗"} |`);
}
