// Canary analysis on the built-in metric store, as `keelson serve` wires it: a real gateway
// (in process) in front of two node:http releases, the scraper feeding the store from the
// gateway's admin /metrics, and `judge` over what the store answers. The gateway goes away
// mid-analysis: the run must end in Error, never pass on the counts it last scraped. A gateway
// that was gone before the analysis began (still listed, refusing connections) is left out.
import { once } from "node:events";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir } from "#test-support";
import { buildRoutingTable, createGateway, createSeededRandom } from "../gateway/index.js";
import type { Gateway } from "../gateway/index.js";
import { createBuiltinMetricsSource, createGatewayScraper, createMetricStore } from "../telemetry/index.js";
import { createBuiltinAnalysisProvider, DEFAULT_ANALYSIS, judge, observe, startAnalysis } from "./analysis.js";
import type { AnalysisObservation, AnalysisRun, AnalysisSettings, AnalysisTarget } from "./analysis.js";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function replica(release: string): Promise<string> {
  const server: Server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(release);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

const TARGET: AnalysisTarget = { service: "orders", canary: "r-canary", baseline: "b-baseline" };
const SETTINGS: AnalysisSettings = { ...DEFAULT_ANALYSIS, intervalMs: 5_000, durationMs: 60_000 };

/**
 * A gateway splitting "orders" evenly between the canary and the baseline, and the clock the
 * scraper, store and looks share; the scraper also asks `also` (other gateways' admin URLs).
 */
async function setup(also: string[] = []): Promise<{ gw: Gateway; admin: string; clock: { now: number }; scraper: ReturnType<typeof createGatewayScraper>; store: ReturnType<typeof createMetricStore> }> {
  const { dir, cleanup } = await makeTempDir("keelson-analysis-scrape-");
  cleanups.push(cleanup);
  const gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir: dir, processMetrics: false, random: createSeededRandom(7) });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 0 }));
  gw.setTable(
    buildRoutingTable({
      project: "shop",
      version: 1,
      services: [{ name: "orders", routes: [{ path: "/", stripPrefix: false }], split: { sticky: false, weights: [{ release: TARGET.canary, weight: 50, label: "canary" }, { release: TARGET.baseline, weight: 50, label: "baseline" }] } }],
      endpoints: [
        { service: "orders", replicaId: "orders-c1", url: await replica(TARGET.canary), release: TARGET.canary },
        { service: "orders", replicaId: "orders-b1", url: await replica(TARGET.baseline), release: TARGET.baseline },
      ],
    }),
  );
  const clock = { now: Date.UTC(2026, 10, 27, 12, 0, 0) };
  const store = createMetricStore({ now: () => clock.now });
  // Its address as listed while it runs, and after it stops (as the gateway registry keeps it).
  const admin = gw.adminUrl;
  const scraper = createGatewayScraper({ urls: () => [admin, ...also], store, now: () => clock.now, timeoutMs: 2_000 });
  // The control plane scrapes all along: the gateway is known before the canary's first request.
  expect((await scraper.scrapeOnce())[0]?.lastError).toBeUndefined();
  return { gw, admin, clock, scraper, store };
}

/**
 * Six looks 5 s apart (simulated), each after 40 requests through the gateway; then the gateway
 * stops and the looks go on until the run ends (at most 12 more).
 */
async function analyse(gw: Gateway, clock: { now: number }, look: (since: number) => Promise<AnalysisObservation>): Promise<{ run: AnalysisRun; observations: AnalysisObservation[] }> {
  const since = clock.now;
  let run = startAnalysis(since);
  const observations: AnalysisObservation[] = [];
  for (let k = 1; k <= 18 && run.phase === "Running"; k++) {
    if (k <= 6) {
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${gw.url}/`);
        expect(res.status).toBe(200);
        await res.text();
      }
    }
    if (k === 7) await gw.stop({ drainMs: 0 });
    clock.now += 5_000;
    const obs = await look(since);
    observations.push(obs);
    run = judge(run, obs, SETTINGS);
  }
  return { run, observations };
}

describe("canary analysis on the built-in store, when the gateway goes away mid-analysis", () => {
  it("the provider makes every look after a failed scrape a failed read: Error after three", { timeout: 30_000 }, async () => {
    const { gw, admin, clock, scraper, store } = await setup();
    const provider = createBuiltinAnalysisProvider({ scraper, source: createBuiltinMetricsSource(store), now: () => clock.now });
    const { run, observations } = await analyse(gw, clock, (since) => provider.observe(TARGET, SETTINGS, since));
    // While the gateway ran, the looks read both versions from the store.
    const read = observations.slice(0, 6);
    expect(read.every((o) => o.error === undefined && (o.canary?.requests ?? 0) > 0 && (o.baseline?.requests ?? 0) > 0)).toBe(true);
    expect((read[5]?.canary?.requests ?? 0) + (read[5]?.baseline?.requests ?? 0)).toBe(240);
    expect(observations.slice(6).map((o) => o.error)).toEqual(Array(3).fill(`gateway metrics at ${admin}: the scrape failed: cannot connect (ECONNREFUSED)`));
    expect(run.phase).toBe("Error");
    expect(run.looks).toBe(9);
    expect(run.reason).toBe(`the metrics source failed 3 times in a row: gateway metrics at ${admin}: the scrape failed: cannot connect (ECONNREFUSED)`);
  });

  it("read without that check (the scrape's result ignored), the frozen counts are caught by judge: Error, not Successful", { timeout: 30_000 }, async () => {
    const { gw, clock, scraper, store } = await setup();
    const source = createBuiltinMetricsSource(store);
    const { run, observations } = await analyse(gw, clock, async (since) => {
      await scraper.scrapeOnce();
      return { ...(await observe(source, TARGET, SETTINGS, since, clock.now)), scrapeIntervalMs: scraper.intervalMs };
    });
    // The store kept answering with the last scraped totals.
    expect(observations.slice(6).map((o) => (o.canary?.requests ?? 0) + (o.baseline?.requests ?? 0))).toEqual(Array(6).fill(240));
    expect(run.phase).toBe("Error");
    // Still for 30 s, max(3 looks, 30 s, 2.5 x the scraper's 10 s): 200 requests over the 55 s
    // since the first look (40), so about 109 expected meanwhile.
    expect(run.looks).toBe(12);
    expect(run.reason).toBe(
      "the metrics stopped changing: neither version's request count rose in 30 s (6 looks), though at the 3.6/s seen since the first look about 109 requests would have come; the numbers come from the built-in metric store (gateway scrapes): is it stuck, or no longer scraping the gateway?",
    );
  });

  it("a listed gateway that refused every scrape since before the analysis began is left out (logged once); the one that goes mid-run still counts", { timeout: 30_000 }, async () => {
    // Nothing listens there: a gateway gone in an HA rolling restart, listed until its registry TTL ends.
    const gone = `http://127.0.0.1:${await freePort()}`;
    const { gw, admin, clock, scraper, store } = await setup([gone]);
    expect(scraper.targets().find((t) => t.url === gone)?.lastError).toBe("cannot connect (ECONNREFUSED)");
    const warnings: Array<[object, string | undefined]> = [];
    const log = { warn: (o: object, m?: string) => void warnings.push([o, m]) };
    const provider = createBuiltinAnalysisProvider({ scraper, source: createBuiltinMetricsSource(store), now: () => clock.now, log });
    const { run, observations } = await analyse(gw, clock, (since) => provider.observe(TARGET, SETTINGS, since));
    // Every look proceeded while the real gateway answered (they used to fail on the other one).
    const read = observations.slice(0, 6);
    expect(read.map((o) => o.error)).toEqual(Array(6).fill(undefined));
    expect((read[5]?.canary?.requests ?? 0) + (read[5]?.baseline?.requests ?? 0)).toBe(240);
    expect(read[0]?.scrapeIntervalMs).toBe(scraper.intervalMs);
    expect(warnings).toEqual([
      [
        { gateway: gone, service: "orders", problem: "the scrape failed: cannot connect (ECONNREFUSED)" },
        "canary analysis leaves out a gateway not scraped successfully since the analysis began (it carried none of its traffic)",
      ],
    ]);
    // The gateway that served the run goes away: its failed scrapes are failed reads, naming only it.
    expect(run.phase).toBe("Error");
    expect(run.looks).toBe(9);
    expect(run.reason).toBe(`the metrics source failed 3 times in a row: gateway metrics at ${admin}: the scrape failed: cannot connect (ECONNREFUSED)`);

    // With no gateway scraped since the run began, a look has no numbers of the run: a failed read.
    const late = await provider.observe(TARGET, SETTINGS, clock.now);
    expect(late.error).toBe(
      `no gateway scraped successfully since the analysis began: gateway metrics at ${admin}: the scrape failed: cannot connect (ECONNREFUSED); gateway metrics at ${gone}: the scrape failed: cannot connect (ECONNREFUSED)`,
    );
  });

  it("a gateway whose last good scrape is older than the look (its scrape cut short, no error recorded) fails the look too", async () => {
    let hang = false;
    const server = createServer((_req, res) => {
      if (hang) return; // never answers
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const clock = { now: Date.UTC(2026, 10, 27, 12, 0, 0) };
    const store = createMetricStore({ now: () => clock.now });
    const scraper = createGatewayScraper({ urls: () => [url], store, now: () => clock.now, timeoutMs: 60_000 });
    const provider = createBuiltinAnalysisProvider({ scraper, source: createBuiltinMetricsSource(store), now: () => clock.now });
    expect((await scraper.scrapeOnce())[0]?.lastSuccessAt).toBe(clock.now);
    hang = true;
    clock.now += 30_000;
    const look = provider.observe(TARGET, SETTINGS, clock.now - 60_000);
    // Shutting the scraper down cuts the hanging scrape without recording an error.
    await scraper.stop();
    const obs = await look;
    expect(scraper.targets()[0]?.lastError).toBeUndefined();
    expect(obs).toEqual({ at: clock.now, error: `gateway metrics at ${url}: last scraped successfully 30 s before this look` });
  });
});
