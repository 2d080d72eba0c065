// Scrapes every gateway's admin /metrics on an interval and feeds the metric store. A failing
// gateway is logged when it starts failing and when it recovers, and counted; nothing is thrown.
import { Counter, Gauge } from "prom-client";
import type { Registry } from "prom-client";
import type { MetricStore } from "./metric-store.js";
import { silentTelemetryLog } from "./telemetry-log.js";
import type { TelemetryLog } from "./telemetry-log.js";

export interface GatewayScraperOptions {
  /** The gateways' admin URLs (`http://127.0.0.1:8081`, or a full `…/metrics` URL), asked every round. */
  urls: () => readonly string[];
  store: MetricStore;
  /** Time between rounds (default 10 s, the store's finest resolution). */
  intervalMs?: number;
  /** Longest wait for one gateway (default: the interval, at most 5 s). */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
  /** Clock for scrape times (default `Date.now`). */
  now?: () => number;
  log?: TelemetryLog;
  /**
   * Registers `keelson_controlplane_scrape_failures_total{target}` and the store's size gauges
   * (`keelson_controlplane_metric_series`, `keelson_controlplane_metric_store_bytes`) here.
   */
  registry?: Registry;
}

/** How the last scrape of one gateway went. */
export interface ScrapeTarget {
  url: string;
  /** The `instance` label its series carry (host:port, as Prometheus names a target). */
  instance: string;
  /** When the last scrape began, whether it worked or not. */
  lastScrapeAt: number | undefined;
  /** When the last successful scrape began: numbers read from the store are no newer than this. */
  lastSuccessAt: number | undefined;
  /** Samples stored by the last successful scrape. */
  lastSamples: number | undefined;
  /** Undefined while it answers. */
  lastError: string | undefined;
  failures: number;
}

export interface GatewayScraper {
  /** Time between rounds once started. */
  readonly intervalMs: number;
  /** One round over every URL now; resolves when all have answered or failed (never rejects). */
  scrapeOnce(): Promise<ScrapeTarget[]>;
  /** Starts a round every `intervalMs` (the first at once). */
  start(): void;
  /** Stops the rounds and cuts scrapes in flight. */
  stop(): Promise<void>;
  /** Failed scrapes since creation, over every gateway. */
  readonly failures: number;
  targets(): ScrapeTarget[];
}

/**
 * Creates a scraper; nothing happens until `start()` or `scrapeOnce()`.
 *
 * @example
 * const scraper = createGatewayScraper({ urls: () => [gatewayAdminUrl], store, registry, log });
 * scraper.start();
 */
export function createGatewayScraper(options: GatewayScraperOptions): GatewayScraper {
  const intervalMs = options.intervalMs ?? 10_000;
  const timeoutMs = options.timeoutMs ?? Math.min(intervalMs, 5_000);
  const doFetch = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const log = options.log ?? silentTelemetryLog;
  const { store } = options;
  const targets = new Map<string, ScrapeTarget>();
  const inFlight = new Map<string, Promise<void>>();
  let abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let failures = 0;

  const failureCounter = options.registry
    ? new Counter({
        name: "keelson_controlplane_scrape_failures_total",
        help: "Scrapes of a gateway's /metrics that failed (unreachable, timed out, non-2xx or unreadable), by gateway.",
        labelNames: ["target"] as const,
        registers: [options.registry],
      })
    : undefined;
  if (options.registry) {
    new Gauge({
      name: "keelson_controlplane_metric_series",
      help: "Series held by the control plane's built-in metric store.",
      registers: [options.registry],
      collect() {
        this.set(store.stats().series);
      },
    });
    new Gauge({
      name: "keelson_controlplane_metric_store_bytes",
      help: "Approximate memory held by the built-in metric store's samples and series.",
      registers: [options.registry],
      collect() {
        this.set(store.stats().bytes);
      },
    });
  }

  function metricsUrl(url: string): string {
    const u = new URL(url);
    if (!u.pathname.endsWith("/metrics")) u.pathname = `${u.pathname.replace(/\/+$/, "")}/metrics`;
    return u.toString();
  }

  async function scrape(url: string): Promise<void> {
    let target = targets.get(url);
    let endpoint: string;
    try {
      endpoint = metricsUrl(url);
    } catch {
      endpoint = url;
    }
    if (target === undefined) {
      let instance = url;
      try {
        instance = new URL(url).host;
      } catch {
        // Reported as the scrape's error below.
      }
      targets.set(url, (target = { url, instance, lastScrapeAt: undefined, lastSuccessAt: undefined, lastSamples: undefined, lastError: undefined, failures: 0 }));
    }
    const started = now();
    try {
      const res = await doFetch(endpoint, {
        headers: { accept: "text/plain;version=0.0.4" },
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(timeoutMs)]),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`answered ${res.status}: ${text.slice(0, 200)}`);
      const result = store.ingest(text, { instance: target.instance, at: started, source: endpoint });
      if (target.lastError !== undefined) log.info({ target: url }, "gateway metrics scrape works again");
      target.lastError = undefined;
      target.lastSuccessAt = started;
      target.lastSamples = result.samples;
    } catch (err) {
      if (abort.signal.aborted) return;
      const message = describeError(err, timeoutMs);
      failures++;
      target.failures++;
      failureCounter?.inc({ target: target.instance });
      // Once per outage (or change of cause), not every round.
      if (target.lastError !== message) log.warn({ target: url, err: message }, "gateway metrics scrape failed");
      target.lastError = message;
    } finally {
      target.lastScrapeAt = started;
    }
  }

  async function scrapeOnce(): Promise<ScrapeTarget[]> {
    let urls: readonly string[];
    try {
      urls = [...new Set(options.urls())];
    } catch (err) {
      log.error({ err: describeError(err, timeoutMs) }, "cannot list the gateways to scrape");
      return [];
    }
    for (const url of targets.keys()) if (!urls.includes(url)) targets.delete(url);
    await Promise.all(
      urls.map((url) => {
        // A gateway still answering the last round is not asked again.
        let p = inFlight.get(url);
        if (p === undefined) {
          p = scrape(url).finally(() => inFlight.delete(url));
          inFlight.set(url, p);
        }
        return p;
      }),
    );
    return urls.flatMap((u) => (targets.has(u) ? [{ ...(targets.get(u) as ScrapeTarget) }] : []));
  }

  // Rounds start on the interval whether or not the last one finished: a gateway that hangs is
  // skipped while its scrape is in flight, and does not hold up the others.
  function tick(): void {
    if (!running) return;
    void scrapeOnce();
    timer = setTimeout(tick, intervalMs);
    timer.unref();
  }

  return {
    intervalMs,
    scrapeOnce,
    start() {
      if (running) return;
      running = true;
      tick();
    },
    async stop() {
      running = false;
      if (timer !== undefined) clearTimeout(timer);
      abort.abort();
      await Promise.all(inFlight.values());
      // A later scrapeOnce() (or start()) scrapes again.
      abort = new AbortController();
    },
    get failures() {
      return failures;
    },
    targets() {
      return [...targets.values()].map((t) => ({ ...t }));
    },
  };
}

function describeError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (err.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    if (err.message === "fetch failed" && cause !== undefined) return `cannot connect (${cause.code ?? cause.message ?? "unknown"})`;
    return err.message;
  }
  return String(err);
}
