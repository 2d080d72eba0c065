// Incidents: evaluates every SLO's burn-rate alerts on an interval, opens an incident (an
// `incident.opened` event) when an alert fires, resolves it when every alert it raised has
// stopped, and tells webhooks about both, retrying a bounded number of times.
import { KeelsonError } from "@keelson/protocol";
import type { KeelsonEvent } from "@keelson/protocol";
import { Counter } from "prom-client";
import type { Registry } from "prom-client";
import type { Store } from "../store/index.js";
import type { MetricsSource } from "./metrics-source.js";
import { alertClear, burnRates, burnRatesJson, BURN_ALERTS, firingAlerts, formatWindow, objectiveKey, round, sloStatus } from "./slo.js";
import type { BurnAlert, BurnRates, SloObjective, SloStatus } from "./slo.js";
import { silentTelemetryLog } from "./telemetry-log.js";
import { deliverWebhook } from "./webhook.js";
import type { TelemetryLog } from "./telemetry-log.js";

export interface IncidentWebhooks {
  /** Receivers of `{ kind, project, event }` as JSON on every open and resolve. */
  urls: readonly string[];
  /** Tries per delivery, the first included (default 4). */
  attempts?: number;
  /** Wait before the first retry, doubling after each (default 500 ms). */
  backoffMs?: number;
  /** Longest wait for one try (default 5 s). */
  timeoutMs?: number;
}

export interface IncidentMonitorOptions {
  store: Store;
  project: string;
  source: MetricsSource;
  /** The objectives to watch, asked on every evaluation (they follow the applied manifest). */
  objectives: () => readonly SloObjective[] | Promise<readonly SloObjective[]>;
  /** Clock for the evaluation time (default `Date.now`). */
  now?: () => number;
  /** Time between evaluations once started (default 30 s). */
  intervalMs?: number;
  alerts?: readonly BurnAlert[];
  webhooks?: IncidentWebhooks;
  fetch?: typeof globalThis.fetch;
  /** Waits between webhook retries (default a timer). */
  sleep?: (ms: number) => Promise<void>;
  log?: TelemetryLog;
  /** Registers `keelson_controlplane_incident_webhook_failures_total` here. */
  registry?: Registry;
}

/** An incident that is open: the objective it is about and what raised it. */
export interface OpenIncident {
  /** Sequence number of its `incident.opened` event: the incident's id. */
  id: number;
  key: string;
  service: string;
  slo: string;
  objective: "availability" | "latency";
  /** The highest severity any of its alerts reached. */
  severity: "page" | "ticket";
  /** Alerts that fired while it was open (it resolves when all are clear). */
  alerts: Array<"page" | "ticket">;
  openedAt: string;
}

export interface IncidentMonitor {
  /** Evaluates every objective once; returns the events it appended. Never runs twice at once. */
  evaluate(): Promise<KeelsonEvent[]>;
  /** Incidents open now (read back from the event log the first time, so a restart opens none twice). */
  openIncidents(): Promise<OpenIncident[]>;
  /** Budget left per objective, with its open incident (for `keelson slo`). */
  status(): Promise<Array<SloStatus & { incident: OpenIncident | undefined }>>;
  /** Evaluates every `intervalMs` (the first at once). */
  start(): void;
  /**
   * Stops evaluating, waits for the evaluation under way, and gives webhook deliveries under way
   * up to `graceMs` (default 5 s) to finish, so a shutdown is never held up by a slow receiver.
   */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** Resolves once every queued webhook delivery has succeeded or given up. */
  idle(): Promise<void>;
}

const SEVERITY_ORDER = { ticket: 0, page: 1 } as const;

/**
 * Creates the monitor. Nothing is evaluated until `evaluate()` or `start()`.
 *
 * @example
 * const incidents = createIncidentMonitor({ store, project, source,
 *   objectives: async () => objectivesFromServices(await store.listServices(project)),
 *   webhooks: { urls: ["https://hooks.example.com/keelson"] } });
 * incidents.start();
 */
export function createIncidentMonitor(options: IncidentMonitorOptions): IncidentMonitor {
  const { store, project, source } = options;
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? 30_000;
  const alerts = options.alerts ?? BURN_ALERTS;
  const log = options.log ?? silentTelemetryLog;
  const doFetch = options.fetch ?? globalThis.fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  const hooks = checkWebhooks(options.webhooks);
  const webhookFailures = options.registry
    ? new Counter({
        name: "keelson_controlplane_incident_webhook_failures_total",
        help: "Incident webhook deliveries given up after every retry failed.",
        registers: [options.registry],
      })
    : undefined;

  let open: Map<string, OpenIncident> | undefined;
  let evaluating: Promise<KeelsonEvent[]> | undefined;
  const deliveries = new Set<Promise<void>>();
  /** Last failure logged per objective, so a source outage is logged once, not every round. */
  const lastFailure = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;

  async function loadOpen(): Promise<Map<string, OpenIncident>> {
    if (open !== undefined) return open;
    const found = new Map<string, OpenIncident>();
    let after = 0;
    for (;;) {
      const page = await store.listEvents({ project, kinds: ["incident.opened", "incident.resolved"], afterSeq: after, limit: 500 });
      for (const e of page) {
        const key = typeof e.details.key === "string" ? e.details.key : undefined;
        if (key === undefined) continue;
        if (e.kind === "incident.opened") found.set(key, incidentOf(e, key));
        else if (found.get(key)?.id === e.details.incident) found.delete(key);
      }
      if (page.length < 500) break;
      after = (page[page.length - 1] as KeelsonEvent).seq;
    }
    open ??= found;
    return open;
  }

  async function append(kind: "incident.opened" | "incident.resolved", o: Pick<SloObjective, "service">, details: Record<string, unknown>): Promise<KeelsonEvent> {
    const event = await store.appendEvent({ project, kind, actor: "telemetry", subject: `service/${o.service}`, details });
    for (const url of hooks.urls) track(deliver(url, event));
    return event;
  }

  async function evaluateOnce(): Promise<KeelsonEvent[]> {
    const incidents = await loadOpen();
    const at = now();
    const objectives = await options.objectives();
    const appended: KeelsonEvent[] = [];
    const seen = new Set<string>();
    for (const o of objectives) {
      const key = objectiveKey(o);
      seen.add(key);
      let rates: BurnRates;
      try {
        rates = await burnRates(source, o, at, alerts);
        lastFailure.delete(key);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (lastFailure.get(key) !== message) log.warn({ slo: key, err: message }, "cannot evaluate an SLO; its incidents stay as they are");
        lastFailure.set(key, message);
        continue;
      }
      const firing = firingAlerts(rates, alerts);
      const current = incidents.get(key);
      try {
        if (current === undefined) {
          if (firing.length === 0) continue;
          const severity = firing.some((a) => a.severity === "page") ? "page" : "ticket";
          const event = await append("incident.opened", o, {
            key,
            service: o.service,
            slo: o.slo,
            objective: o.objective,
            target: o.target,
            ...(o.thresholdSeconds === undefined ? {} : { thresholdSeconds: o.thresholdSeconds }),
            sloWindow: formatWindow(o.windowMs),
            severity,
            alerts: firing.map((a) => alertJson(a, rates)),
            burnRates: burnRatesJson(rates),
            source: source.kind,
          });
          incidents.set(key, { ...incidentOf(event, key) });
          appended.push(event);
          log.warn({ slo: key, severity, incident: event.seq }, "SLO burning its error budget: incident opened");
          continue;
        }
        // An alert that starts firing while the incident is open joins it.
        for (const a of firing) {
          if (!current.alerts.includes(a.severity)) current.alerts.push(a.severity);
          if (SEVERITY_ORDER[a.severity] > SEVERITY_ORDER[current.severity]) current.severity = a.severity;
        }
        const raised = alerts.filter((a) => current.alerts.includes(a.severity));
        if (raised.every((a) => alertClear(rates, a))) {
          appended.push(await resolve(current, { burnRates: burnRatesJson(rates), alerts: raised.map((a) => alertJson(a, rates)) }, at));
        }
      } catch (err) {
        log.error({ slo: key, err: err instanceof Error ? err.message : String(err) }, "cannot record an incident; will try again");
      }
    }
    // An objective that left the manifest cannot burn any more: its incident ends.
    for (const [key, incident] of incidents) {
      if (seen.has(key)) continue;
      try {
        appended.push(await resolve(incident, { reason: "the SLO is no longer in the manifest" }, at));
      } catch (err) {
        log.error({ slo: key, err: err instanceof Error ? err.message : String(err) }, "cannot record an incident; will try again");
      }
    }
    return appended;
  }

  async function resolve(incident: OpenIncident, extra: Record<string, unknown>, at: number): Promise<KeelsonEvent> {
    const event = await append("incident.resolved", incident, {
      key: incident.key,
      incident: incident.id,
      service: incident.service,
      slo: incident.slo,
      objective: incident.objective,
      severity: incident.severity,
      openedAt: incident.openedAt,
      durationMs: Math.max(0, at - Date.parse(incident.openedAt)),
      ...extra,
    });
    open?.delete(incident.key);
    log.info({ slo: incident.key, incident: incident.id }, "SLO burn stopped: incident resolved");
    return event;
  }

  function track(p: Promise<void>): void {
    deliveries.add(p);
    void p.finally(() => deliveries.delete(p));
  }

  async function deliver(url: string, event: KeelsonEvent): Promise<void> {
    const err = await deliverWebhook(url, JSON.stringify({ kind: event.kind, project, event }), { ...hooks, fetch: doFetch, sleep, kind: event.kind });
    if (err === undefined) return;
    webhookFailures?.inc();
    log.warn({ url, event: event.seq, kind: event.kind, err }, "incident webhook not delivered; giving up");
  }

  function tick(): void {
    if (!running) return;
    void monitor
      .evaluate()
      .catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "SLO evaluation failed"))
      .finally(() => {
        if (!running) return;
        timer = setTimeout(tick, intervalMs);
        timer.unref();
      });
  }

  const monitor: IncidentMonitor = {
    evaluate() {
      evaluating ??= evaluateOnce().finally(() => (evaluating = undefined));
      return evaluating;
    },
    async openIncidents() {
      return [...(await loadOpen()).values()].map((i) => ({ ...i, alerts: [...i.alerts] })).sort((a, b) => a.id - b.id);
    },
    async status() {
      const [statuses, incidents] = await Promise.all([sloStatus({ source, objectives: await options.objectives(), now, alerts }), loadOpen()]);
      return statuses.map((s) => {
        const incident = incidents.get(objectiveKey(s));
        return { ...s, incident: incident === undefined ? undefined : { ...incident, alerts: [...incident.alerts] } };
      });
    },
    start() {
      if (running) return;
      running = true;
      tick();
    },
    async stop(opts = {}) {
      running = false;
      if (timer !== undefined) clearTimeout(timer);
      await evaluating?.catch(() => undefined);
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([monitor.idle(), new Promise<void>((r) => (grace = setTimeout(r, opts.graceMs ?? 5_000)))]);
      clearTimeout(grace);
    },
    async idle() {
      while (deliveries.size > 0) await Promise.all([...deliveries]);
    },
  };
  return monitor;
}

function incidentOf(e: KeelsonEvent, key: string): OpenIncident {
  const d = e.details;
  const severity: "page" | "ticket" = d.severity === "page" ? "page" : "ticket";
  const alerts = Array.isArray(d.alerts) ? (d.alerts as Array<{ severity?: unknown }>).map((a): "page" | "ticket" => (a.severity === "page" ? "page" : "ticket")) : [severity];
  return {
    id: e.seq,
    key,
    service: String(d.service ?? ""),
    slo: String(d.slo ?? ""),
    objective: d.objective === "latency" ? "latency" : "availability",
    severity,
    alerts: [...new Set(alerts)],
    openedAt: e.at,
  };
}

function alertJson(a: BurnAlert, rates: BurnRates): Record<string, unknown> {
  const long = rates.get(a.longWindowMs);
  const short = rates.get(a.shortWindowMs);
  return {
    severity: a.severity,
    burnRateThreshold: a.burnRate,
    longWindow: formatWindow(a.longWindowMs),
    shortWindow: formatWindow(a.shortWindowMs),
    ...(long === undefined ? {} : { longBurnRate: round(long) }),
    ...(short === undefined ? {} : { shortBurnRate: round(short) }),
  };
}

function checkWebhooks(w: IncidentWebhooks | undefined): Required<IncidentWebhooks> {
  const urls = [...(w?.urls ?? [])];
  for (const [i, url] of urls.entries()) {
    let ok = false;
    try {
      ok = ["http:", "https:"].includes(new URL(url).protocol);
    } catch {
      ok = false;
    }
    if (!ok) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `webhooks.urls[${i}]: expected an http(s) URL, got ${JSON.stringify(url)}`);
  }
  const attempts = w?.attempts ?? 4;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 10) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `webhooks.attempts: expected a whole number from 1 to 10, got ${JSON.stringify(attempts)}`);
  }
  return { urls, attempts, backoffMs: w?.backoffMs ?? 500, timeoutMs: w?.timeoutMs ?? 5_000 };
}

