// Incidents over simulated gateway traffic with an injected clock: one incident per burn, opened
// and resolved at the minute the workbook's rules say, kept across a restart, and delivered to
// real local webhook receivers with bounded retries.
import { once } from "node:events";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import type { KeelsonEvent } from "@keelson/protocol";
import { freePort, waitFor } from "#test-support";
import { createMemoryStore } from "../store/index.js";
import type { Store } from "../store/index.js";
import { createIncidentMonitor } from "./incidents.js";
import type { IncidentMonitorOptions } from "./incidents.js";
import { createMetricStore, GATEWAY_REQUESTS, GATEWAY_REQUEST_DURATION } from "./metric-store.js";
import type { MetricStore } from "./metric-store.js";
import { createBuiltinMetricsSource, createPrometheusMetricsSource } from "./metrics-source.js";
import type { MetricFamily } from "./prometheus-text.js";
import type { SloObjective } from "./slo.js";
import type { TelemetryLog } from "./telemetry-log.js";

const T0 = Date.UTC(2026, 4, 4, 0, 0, 0);
const STEP = 10_000;
const MIN = 60_000;
const H = 60 * MIN;

const CHECKOUT: SloObjective = { service: "orders", slo: "checkout", objective: "availability", target: 0.99, windowMs: 30 * 24 * H };

/** Simulated traffic: 10 requests/s for `orders`, the share of 5xx and of slow (> 100 ms) by time. */
class Traffic {
  readonly metrics: MetricStore;
  private readonly totals = { ok: 0, bad: 0, fast: 0, all: 0 };
  private fedTo = T0 - STEP;

  constructor(
    private readonly clock: { now: number },
    private readonly errorShare: (at: number) => number,
    private readonly slowShare: (at: number) => number = () => 0,
  ) {
    this.metrics = createMetricStore({ now: () => clock.now });
  }

  /** Scrapes every 10 s up to the clock's time. */
  catchUp(): void {
    const t = this.totals;
    for (let at = this.fedTo + STEP; at <= this.clock.now; at += STEP) {
      const e = this.errorShare(at);
      const s = this.slowShare(at);
      t.ok += 100 * (1 - e);
      t.bad += 100 * e;
      t.fast += 100 * (1 - s);
      t.all += 100;
      const sample = (name: string, labels: Record<string, string>, value: number) => ({ name, labels: { service: "orders", ...labels }, value, timestampMs: undefined, line: 0 });
      const families: MetricFamily[] = [
        { name: GATEWAY_REQUESTS, type: "counter", help: undefined, samples: [sample(GATEWAY_REQUESTS, { code_class: "2xx" }, t.ok), sample(GATEWAY_REQUESTS, { code_class: "5xx" }, t.bad)] },
        {
          name: GATEWAY_REQUEST_DURATION,
          type: "histogram",
          help: undefined,
          samples: [
            sample(`${GATEWAY_REQUEST_DURATION}_bucket`, { le: "0.1" }, t.fast),
            sample(`${GATEWAY_REQUEST_DURATION}_bucket`, { le: "+Inf" }, t.all),
            sample(`${GATEWAY_REQUEST_DURATION}_count`, {}, t.all),
          ],
        },
      ];
      this.metrics.ingestFamilies(families, { instance: "gw", at });
      this.fedTo = at;
    }
  }
}

interface Receiver {
  url: string;
  bodies: Array<{ kind: string; project: string; event: KeelsonEvent }>;
  statuses: number[];
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => (s.closeAllConnections(), s.close(r)));
});

/** A webhook receiver on 127.0.0.1 answering each request with the next status of `script` (then 204). */
async function receiver(script: number[] = []): Promise<Receiver> {
  const r: Receiver = { url: "", bodies: [], statuses: [] };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const status = script.shift() ?? 204;
      r.statuses.push(status);
      if (status < 300) r.bodies.push(JSON.parse(body) as Receiver["bodies"][number]);
      res.writeHead(status);
      res.end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  const addr = server.address();
  r.url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}/hooks/keelson`;
  return r;
}

function recordingLog(): TelemetryLog & { lines: Array<[string, Record<string, unknown>, string | undefined]> } {
  const lines: Array<[string, Record<string, unknown>, string | undefined]> = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push([level, obj as Record<string, unknown>, msg]);
  return { lines, info: at("info"), warn: at("warn"), error: at("error") };
}

/** 50% errors from 6 h to 6 h 30 m against a 99% objective: a 50× burn for half an hour. */
const OUTAGE = (at: number) => (at > T0 + 6 * H && at <= T0 + 6 * H + 30 * MIN ? 0.5 : 0);

function setup(extra: Partial<IncidentMonitorOptions> = {}, errorShare = OUTAGE, slowShare?: (at: number) => number) {
  const clock = { now: T0 };
  const traffic = new Traffic(clock, errorShare, slowShare);
  const store = extra.store ?? createMemoryStore({ now: () => clock.now });
  const options: IncidentMonitorOptions = {
    store,
    project: "shop",
    source: createBuiltinMetricsSource(traffic.metrics),
    objectives: () => [CHECKOUT],
    now: () => clock.now,
    sleep: async () => {},
    ...extra,
  };
  return { clock, traffic, store, options, monitor: createIncidentMonitor(options) };
}

async function incidentEvents(store: Store): Promise<KeelsonEvent[]> {
  return store.listEvents({ project: "shop", kinds: ["incident.opened", "incident.resolved"] });
}

/** Moves the clock a minute at a time to `until`, feeding traffic and evaluating each minute. */
async function run(s: ReturnType<typeof setup>, until: number, evaluate = s.monitor.evaluate): Promise<void> {
  while (s.clock.now < until) {
    s.clock.now += MIN;
    s.traffic.catchUp();
    await evaluate();
  }
}

describe("createIncidentMonitor", () => {
  it("opens one page incident when the 1 h and 5 m windows burn over 14.4x, and resolves it when both are under", async () => {
    const hook = await receiver();
    const s = setup({ webhooks: { urls: [hook.url] } });
    s.clock.now = T0 + 5 * H;
    s.traffic.catchUp();
    await run(s, T0 + 6 * H + 40 * MIN);
    const open = await s.monitor.openIncidents();
    expect(open).toMatchObject([{ key: "orders/checkout/availability", severity: "page", alerts: ["page"], openedAt: new Date(T0 + 6 * H + 18 * MIN).toISOString() }]);
    await run(s, T0 + 7 * H + 30 * MIN);

    const events = await incidentEvents(s.store);
    expect(events.map((e) => [e.kind, e.at, e.subject, e.actor])).toEqual([
      // 1 h burn = 50 × m/60 first exceeds 14.4 at m = 18.
      ["incident.opened", new Date(T0 + 6 * H + 18 * MIN).toISOString(), "service/orders", "telemetry"],
      // After the outage the 1 h window holds 30 - j minutes of it: under 14.4x from j = 13.
      ["incident.resolved", new Date(T0 + 7 * H + 13 * MIN).toISOString(), "service/orders", "telemetry"],
    ]);
    const [opened, resolved] = events as [KeelsonEvent, KeelsonEvent];
    expect(opened.details).toEqual({
      key: "orders/checkout/availability",
      service: "orders",
      slo: "checkout",
      objective: "availability",
      target: 0.99,
      sloWindow: "30d",
      severity: "page",
      alerts: [{ severity: "page", burnRateThreshold: 14.4, longWindow: "1h", shortWindow: "5m", longBurnRate: 15, shortBurnRate: 50 }],
      burnRates: { "5m": 50, "30m": 30, "1h": 15, "6h": 2.5 },
      source: "builtin",
    });
    expect(resolved.details).toMatchObject({ key: "orders/checkout/availability", incident: opened.seq, severity: "page", durationMs: 55 * MIN, burnRates: { "5m": 0, "1h": 14.166667 } });
    expect(await s.monitor.openIncidents()).toEqual([]);

    await s.monitor.idle();
    expect(hook.bodies.map((b) => [b.kind, b.project, b.event.seq])).toEqual([
      ["incident.opened", "shop", opened.seq],
      ["incident.resolved", "shop", resolved.seq],
    ]);
    expect(hook.bodies[0]?.event).toEqual(opened);
  });

  it("does not open a second incident after a restart while the first is still open, and resolves the first", async () => {
    const s = setup();
    s.clock.now = T0 + 6 * H;
    s.traffic.catchUp();
    await run(s, T0 + 6 * H + 25 * MIN);
    const [opened] = await incidentEvents(s.store);
    expect(opened?.kind).toBe("incident.opened");
    // A new control plane over the same store and metrics.
    const restarted = createIncidentMonitor(s.options);
    expect((await restarted.openIncidents()).map((i) => [i.id, i.severity])).toEqual([[opened?.seq, "page"]]);
    await run(s, T0 + 7 * H + 30 * MIN, restarted.evaluate);
    const events = await incidentEvents(s.store);
    expect(events.map((e) => e.kind)).toEqual(["incident.opened", "incident.resolved"]);
    expect(events[1]?.details.incident).toBe(opened?.seq);
  });

  it("resolves an open incident whose SLO left the manifest", async () => {
    let objectives = [CHECKOUT];
    const s = setup({ objectives: () => objectives }, () => 0.5);
    s.clock.now = T0 + 2 * H;
    s.traffic.catchUp();
    expect((await s.monitor.evaluate()).map((e) => e.kind)).toEqual(["incident.opened"]);
    expect(await s.monitor.evaluate()).toEqual([]);
    objectives = [];
    const [resolved] = await s.monitor.evaluate();
    expect(resolved?.details).toMatchObject({ key: "orders/checkout/availability", reason: "the SLO is no longer in the manifest" });
  });

  it("opens a latency incident with both alerts when requests are steadily slow", async () => {
    const latency: SloObjective = { service: "orders", slo: "fast", objective: "latency", target: 0.95, thresholdSeconds: 0.1, windowMs: 30 * 24 * H };
    // 60% slower than 100 ms against 95%: a 12x burn (ticket, not page); then 100%: 20x pages.
    const s = setup({ objectives: () => [latency] }, () => 0, (at) => (at <= T0 + 6 * H ? 0.6 : 1));
    s.clock.now = T0 + 6 * H;
    s.traffic.catchUp();
    const [ticket] = await s.monitor.evaluate();
    expect(ticket?.details).toMatchObject({ key: "orders/fast/latency", objective: "latency", thresholdSeconds: 0.1, severity: "ticket", burnRates: { "5m": 12, "6h": 12 } });
    await run(s, T0 + 7 * H);
    expect((await incidentEvents(s.store)).length).toBe(1);
    expect(await s.monitor.openIncidents()).toMatchObject([{ id: ticket?.seq, severity: "page", alerts: ["ticket", "page"] }]);
    const [status] = await s.monitor.status();
    expect(status).toMatchObject({ service: "orders", slo: "fast", objective: "latency", incident: { id: ticket?.seq, severity: "page" } });
    expect(status?.budgetRemaining).toBeLessThan(-10);
  });

  it("keeps incidents as they are and logs once while the source fails", async () => {
    const log = recordingLog();
    const s = setup({ log, source: createPrometheusMetricsSource({ url: `http://127.0.0.1:${await freePort()}` }) });
    expect(await s.monitor.evaluate()).toEqual([]);
    expect(await s.monitor.evaluate()).toEqual([]);
    expect(log.lines.map(([level, obj, msg]) => [level, obj.slo, msg])).toEqual([["warn", "orders/checkout/availability", "cannot evaluate an SLO; its incidents stay as they are"]]);
    expect(String(log.lines[0]?.[1].err)).toMatch(/cannot connect \(ECONNREFUSED\)$/);
  });
});

describe("incident webhooks", () => {
  async function openOne(extra: Partial<IncidentMonitorOptions>) {
    const s = setup(extra, () => 0.5);
    s.clock.now = T0 + H;
    s.traffic.catchUp();
    const [event] = await s.monitor.evaluate();
    await s.monitor.idle();
    return { ...s, event };
  }

  it("retries failed deliveries with doubling backoff and delivers once the receiver recovers", async () => {
    const hook = await receiver([503, 500]);
    const waits: number[] = [];
    const { event } = await openOne({ webhooks: { urls: [hook.url] }, sleep: async (ms) => void waits.push(ms) });
    expect(hook.statuses).toEqual([503, 500, 204]);
    expect(waits).toEqual([500, 1000]);
    expect(hook.bodies).toEqual([{ kind: "incident.opened", project: "shop", event }]);
  });

  it("gives up after the configured attempts, counts it, and does not retry a client error", async () => {
    const down = await receiver([500, 500, 500, 500]);
    const rejecting = await receiver([400]);
    const refused = `http://127.0.0.1:${await freePort()}/hook`;
    const log = recordingLog();
    const registry = new Registry();
    await openOne({ webhooks: { urls: [down.url, rejecting.url, refused], attempts: 3 }, log, registry });
    expect(down.statuses).toEqual([500, 500, 500]);
    expect(rejecting.statuses).toEqual([400]);
    const gaveUp = log.lines.filter(([, , msg]) => msg === "incident webhook not delivered; giving up").map(([, obj]) => [obj.url, obj.err]);
    expect(gaveUp.sort()).toEqual(
      [
        [down.url, "answered 500"],
        [rejecting.url, "answered 400"],
        [refused, "cannot connect (ECONNREFUSED)"],
      ].sort(),
    );
    expect(await registry.metrics()).toContain("keelson_controlplane_incident_webhook_failures_total 3");
  });

  it("rejects webhook URLs that are not http(s) and attempts out of range", () => {
    const store = createMemoryStore();
    const base = { store, project: "shop", source: createBuiltinMetricsSource(createMetricStore()), objectives: () => [] };
    expect(() => createIncidentMonitor({ ...base, webhooks: { urls: ["ftp://example.com"] } })).toThrow(KeelsonError);
    expect(() => createIncidentMonitor({ ...base, webhooks: { urls: ["not a url"] } })).toThrow('webhooks.urls[0]: expected an http(s) URL, got "not a url"');
    expect(() => createIncidentMonitor({ ...base, webhooks: { urls: [], attempts: 0 } })).toThrow("webhooks.attempts: expected a whole number from 1 to 10, got 0");
  });

  it("does not let a receiver that never answers hold up stop() beyond its grace", async () => {
    const { url } = await (async () => {
      const server = createServer(() => undefined);
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      servers.push(server);
      const addr = server.address();
      return { url: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}/` };
    })();
    const s = setup({ webhooks: { urls: [url], timeoutMs: 60_000 } }, () => 0.5);
    s.clock.now = T0 + H;
    s.traffic.catchUp();
    expect((await s.monitor.evaluate()).map((e) => e.kind)).toEqual(["incident.opened"]);
    let idle = false;
    void s.monitor.idle().then(() => (idle = true));
    await s.monitor.stop({ graceMs: 50 });
    expect(idle).toBe(false);
  });

  it("evaluates on its interval once started and stop() waits for deliveries under way", async () => {
    const hook = await receiver();
    const s = setup({ webhooks: { urls: [hook.url] }, intervalMs: 10 }, () => 0.5);
    s.clock.now = T0 + H;
    s.traffic.catchUp();
    s.monitor.start();
    await waitFor(async () => (await incidentEvents(s.store)).length === 1, { what: "the incident" });
    await s.monitor.stop();
    expect(hook.bodies.map((b) => b.kind)).toEqual(["incident.opened"]);
  });
});
