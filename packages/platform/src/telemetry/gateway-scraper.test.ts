// The scraper against real node:http servers on 127.0.0.1 that answer like a gateway's admin
// /metrics (prom-client), fail in the ways gateways fail, or never answer.
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { Counter, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, waitFor } from "#test-support";
import { createGatewayScraper } from "./gateway-scraper.js";
import { createMetricStore, GATEWAY_REQUESTS } from "./metric-store.js";
import type { TelemetryLog } from "./telemetry-log.js";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => (s.closeAllConnections(), s.close(r)));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    handler(req, res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`, hits: () => hits };
}

/** A gateway-like admin listener: its request counter on a prom-client registry at /metrics. */
async function fakeGateway(): Promise<{ url: string; count: (service: string, codeClass: string, n: number) => void; paths: string[] }> {
  const registry = new Registry();
  const requests = new Counter({ name: GATEWAY_REQUESTS, help: "Requests.", labelNames: ["service", "code_class"], registers: [registry] });
  const paths: string[] = [];
  const { url } = await serve((req, res) => {
    paths.push(req.url ?? "");
    void registry.metrics().then((text) => {
      res.writeHead(200, { "content-type": registry.contentType });
      res.end(text);
    });
  });
  return { url, paths, count: (service, code_class, n) => requests.inc({ service, code_class }, n) };
}

function recordingLog(): TelemetryLog & { lines: Array<[string, Record<string, unknown>, string | undefined]> } {
  const lines: Array<[string, Record<string, unknown>, string | undefined]> = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push([level, obj as Record<string, unknown>, msg]);
  return { lines, info: at("info"), warn: at("warn"), error: at("error") };
}

describe("createGatewayScraper", () => {
  it("scrapes each gateway's /metrics into the store under its host:port as instance", async () => {
    const gw = await fakeGateway();
    let now = Date.UTC(2026, 0, 1);
    const store = createMetricStore({ now: () => now });
    const scraper = createGatewayScraper({ urls: () => [gw.url, `${gw.url}/`], store, now: () => now });
    gw.count("orders", "2xx", 10);
    const first = await scraper.scrapeOnce();
    gw.count("orders", "2xx", 90);
    gw.count("orders", "5xx", 25);
    now += 10_000;
    await scraper.scrapeOnce();
    const instance = new URL(gw.url).host;
    expect(first).toEqual([
      { url: gw.url, instance, lastScrapeAt: now - 10_000, lastSuccessAt: now - 10_000, lastSamples: 1, lastError: undefined, failures: 0 },
      { url: `${gw.url}/`, instance, lastScrapeAt: now - 10_000, lastSuccessAt: now - 10_000, lastSamples: 1, lastError: undefined, failures: 0 },
    ]);
    expect(gw.paths).toEqual(["/metrics", "/metrics", "/metrics", "/metrics"]);
    expect(store.increase(GATEWAY_REQUESTS, { window: "1m", by: ["code_class", "instance"] }).map((v) => [v.labels.code_class, v.labels.instance, v.value])).toEqual([
      ["2xx", instance, 90],
      ["5xx", instance, 25],
    ]);
    expect(scraper.failures).toBe(0);
  });

  it("counts and logs failures once per outage, never throws, and logs the recovery", async () => {
    let broken = true;
    const flaky = await serve((_req, res) => {
      res.writeHead(broken ? 500 : 200);
      res.end(broken ? "internal error" : `# TYPE ${GATEWAY_REQUESTS} counter\n${GATEWAY_REQUESTS}{service="a",code_class="2xx"} 1\n`);
    });
    const garbage = await serve((_req, res) => {
      res.writeHead(200);
      res.end(`# TYPE ${GATEWAY_REQUESTS} counter\n${GATEWAY_REQUESTS}{service="a" 1\n`);
    });
    const refused = `http://127.0.0.1:${await freePort()}`;
    const registry = new Registry();
    const log = recordingLog();
    const store = createMetricStore();
    const scraper = createGatewayScraper({ urls: () => [flaky.url, garbage.url, refused], store, registry, log });

    const round1 = await scraper.scrapeOnce();
    await scraper.scrapeOnce();
    expect(scraper.failures).toBe(6);
    expect(round1.map((t) => t.lastSuccessAt)).toEqual([undefined, undefined, undefined]);
    expect(round1.map((t) => t.lastError)).toEqual([
      "answered 500: internal error",
      `${garbage.url}/metrics:2:44: expected "," or "}" after the value of label "service", got "1"`,
      "cannot connect (ECONNREFUSED)",
    ]);
    expect(log.lines.filter(([level]) => level === "warn").map(([, obj]) => obj.target).sort()).toEqual([flaky.url, garbage.url, refused].sort());
    const text = await registry.metrics();
    expect(text).toContain(`keelson_controlplane_scrape_failures_total{target="${new URL(refused).host}"} 2`);
    expect(text).toMatch(/keelson_controlplane_metric_series 0/);

    broken = false;
    const round3 = await scraper.scrapeOnce();
    expect(round3[0]).toMatchObject({ lastError: undefined, failures: 2, lastSamples: 1, lastSuccessAt: round3[0]?.lastScrapeAt });
    expect(round3[0]?.lastSuccessAt).toBeGreaterThan(0);
    expect(log.lines.filter(([level]) => level === "info")).toEqual([["info", { target: flaky.url }, "gateway metrics scrape works again"]]);
    expect(await registry.metrics()).toMatch(/keelson_controlplane_metric_series 1\n/);
  });

  it("survives a url list that throws, and forgets gateways that left the list", async () => {
    const gw = await fakeGateway();
    let urls: () => string[] = () => [gw.url];
    const log = recordingLog();
    const scraper = createGatewayScraper({ urls: () => urls(), store: createMetricStore(), log });
    expect((await scraper.scrapeOnce()).map((t) => t.url)).toEqual([gw.url]);
    urls = () => {
      throw new Error("store closed");
    };
    expect(await scraper.scrapeOnce()).toEqual([]);
    expect(log.lines).toEqual([["error", { err: "store closed" }, "cannot list the gateways to scrape"]]);
    urls = () => [];
    await scraper.scrapeOnce();
    expect(scraper.targets()).toEqual([]);
  });

  it("gives up on a gateway that does not answer within the timeout", async () => {
    const silent = await serve(() => undefined);
    const scraper = createGatewayScraper({ urls: () => [silent.url], store: createMetricStore(), timeoutMs: 100 });
    const [t] = await scraper.scrapeOnce();
    expect(t?.lastError).toBe("no answer within 100 ms");
    expect(scraper.failures).toBe(1);
  });

  // Canary analysis calls scrapeOnce() right before each evaluation, while interval rounds go on.
  it("adds no increase when a target is scraped again at once, or on demand during a round", async () => {
    let total = 100;
    let open = 0;
    let mostOpen = 0;
    let held: Promise<void> | undefined;
    const gw = await serve((_req, res) => {
      open++;
      mostOpen = Math.max(mostOpen, open);
      const text = `# TYPE ${GATEWAY_REQUESTS} counter\n${GATEWAY_REQUESTS}{service="orders",code_class="2xx"} ${total}\n`;
      // Slower than the interval, so rounds and on-demand scrapes overlap.
      void (held ?? Promise.resolve()).then(() =>
        setTimeout(() => {
          open--;
          res.writeHead(200, { "content-type": "text/plain" });
          res.end(text);
        }, 15),
      );
    });
    const store = createMetricStore();
    const increase = () => store.increase(GATEWAY_REQUESTS, { window: "1m" })[0]?.value;
    const scraper = createGatewayScraper({ urls: () => [gw.url], store, intervalMs: 10, timeoutMs: 5_000 });
    await scraper.scrapeOnce();
    total += 7;
    await scraper.scrapeOnce();
    expect(increase()).toBe(7);

    // Two rounds back to back over a counter that did not change.
    await scraper.scrapeOnce();
    await scraper.scrapeOnce();
    expect(increase()).toBe(7);

    // Rounds every 10 ms, and on-demand rounds while one is in flight: they join it.
    let release = () => {};
    held = new Promise((r) => (release = r));
    const before = gw.hits();
    scraper.start();
    const onDemand = Promise.all([scraper.scrapeOnce(), scraper.scrapeOnce()]);
    await waitFor(() => gw.hits() === before + 1, { what: "the first round to reach the gateway" });
    expect(open).toBe(1);
    held = undefined;
    release();
    const joined = await onDemand;
    expect(joined[0]?.[0]?.lastScrapeAt).toBe(joined[1]?.[0]?.lastScrapeAt);
    await waitFor(() => gw.hits() >= before + 4, { what: "three more rounds" });
    total += 5;
    const seen = gw.hits();
    await waitFor(() => gw.hits() >= seen + 3 && scraper.scrapeOnce().then(() => increase() === 12), { what: "the new requests to be scraped" });
    await scraper.stop();
    expect(mostOpen).toBe(1);
    expect(increase()).toBe(12);
    expect(scraper.failures).toBe(0);
  });

  it("scrapes on its interval once started, skips a gateway still answering, and stop() cuts it uncounted", async () => {
    const gw = await fakeGateway();
    const slow = await serve(() => undefined);
    let urls = [gw.url, slow.url];
    const scraper = createGatewayScraper({ urls: () => urls, store: createMetricStore(), intervalMs: 20, timeoutMs: 60_000 });
    scraper.start();
    scraper.start();
    await waitFor(() => gw.paths.length >= 3, { what: "three rounds" });
    expect(slow.hits()).toBe(1);
    await scraper.stop();
    expect(scraper.failures).toBe(0);
    // Stopped is not broken: a round on demand still works.
    urls = [gw.url];
    const round = await scraper.scrapeOnce();
    expect(round).toMatchObject([{ url: gw.url, lastError: undefined }]);
  });
});
