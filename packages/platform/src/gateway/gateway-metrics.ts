// The gateway's Prometheus metrics on its own registry. Per-request RED (by service, version,
// route, replica) lives in plain counter cells the hot path bumps in O(1), with no label
// hashing per request, and is written out at scrape time; the resilience counters (retries,
// rejections, fallbacks, ejections, upgrades, flag routes), the per flag variant outcomes and
// durations (the gateway side of experiments) and state gauges sit beside them.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { collectProcessMetrics } from "../telemetry/index.js";

/** Service label of requests that reached no known service; not a valid service name. */
export const UNROUTED_SERVICE = "_unrouted";
/** Version, route or replica label of a request that never got that far (refused, fallback, unrouted). */
export const NONE_LABEL = "none";
/** Route label of service-to-service calls routed by the x-keelson-service header. */
export const INTERNAL_ROUTE = "internal";

/** Upper bounds (seconds) of the duration histograms. */
export const DURATION_BUCKETS_S: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Index in a cell's `buckets` of a duration: the first bound it does not exceed, the last slot for +Inf. */
function bucketOf(seconds: number): number {
  let b = 0;
  while (b < DURATION_BUCKETS_S.length && seconds > DURATION_BUCKETS_S[b]!) b++;
  return b;
}

/** Durations of one service/version/route. */
export class DurationCell {
  /** Per bucket of DURATION_BUCKETS_S, the last for +Inf; not cumulative (summed at scrape). */
  readonly buckets = new Float64Array(DURATION_BUCKETS_S.length + 1);
  sum = 0;
  count = 0;
  lastUsed = 0;
  exported = true;
  constructor(
    readonly key: string,
    readonly labels: { readonly service: string; readonly version: string; readonly route: string },
  ) {}
}

/** Requests of one service/version/route/replica by status class. */
export class RequestCell {
  /** Index = status class: [unused, 1xx, 2xx, 3xx, 4xx, 5xx]. */
  readonly counts = [0, 0, 0, 0, 0, 0];
  lastUsed = 0;
  exported = true;
  constructor(
    readonly key: string,
    readonly labels: { readonly service: string; readonly version: string; readonly route: string; readonly replica: string },
    readonly duration: DurationCell,
  ) {}
}

/** Long-lived per-service counters (they outlive routing tables) and cached label objects. */
export class ServiceMetrics {
  /** Requests of this service in the gateway now (queued in the bulkhead included). */
  inflight = 0;
  /** Open WebSocket (upgrade) tunnels. */
  tunnels = 0;
  /** Cells of requests that reached no replica of this service, by route id. */
  readonly noneCells: Array<RequestCell | undefined> = [];
  readonly retry: { readonly retried: RetryLabels; readonly budgetExhausted: RetryLabels; readonly noTime: RetryLabels };
  readonly service: { readonly service: string };
  constructor(readonly name: string) {
    this.service = { service: name };
    this.retry = {
      retried: { service: name, outcome: "retried" },
      budgetExhausted: { service: name, outcome: "budget_exhausted" },
      noTime: { service: name, outcome: "no_time_left" },
    };
  }
}
type RetryLabels = { service: string; outcome: string };

/** Requests one route's flag sent to one variant's target; bumped in O(1), exported at scrape time. */
export class FlagRouteCell {
  count = 0;
  constructor(readonly labels: { readonly route: string; readonly flag: string; readonly variant: string }) {}
}

/**
 * What a request under a flag came to: `error` a 5xx (the service failed, did not answer in time,
 * or none could be reached, also a listed variant's service with no ready endpoint), `abandoned`
 * the client left first (499), `rejected` the gateway refused it before proxying it (429 rate
 * limited, 413 body too large), `unassigned` the flag gave no variant (disabled, or its evaluation
 * failed; counted under the variant `none`). Only `ok`, `error` and `abandoned` are timed.
 */
export type FlagOutcome = "ok" | "error" | "abandoned" | "rejected" | "unassigned";

/**
 * Requests whose route's flag gave one variant (listed on the route or not: an unlisted variant
 * takes the plain route), by outcome, and their durations: the gateway side of an experiment.
 * Every request a route's flag decided counts in one of them, so their sum is the flag's
 * evaluations by the gateway. Bumped in O(1), exported at scrape time.
 */
export class FlagVariantCell {
  ok = 0;
  error = 0;
  abandoned = 0;
  rejected = 0;
  unassigned = 0;
  /** Per bucket of DURATION_BUCKETS_S, the last for +Inf; not cumulative (summed at scrape). */
  readonly buckets = new Float64Array(DURATION_BUCKETS_S.length + 1);
  sum = 0;
  count = 0;
  constructor(readonly labels: { readonly route: string; readonly flag: string; readonly variant: string }) {}
}

/** What the state gauges read of one service at scrape time. */
export interface ServiceGauges {
  service: string;
  /** Circuit breaker: 0 closed, 1 open, 2 half-open; undefined without one. */
  circuit: number | undefined;
  ejected: number;
  /** Attempts in flight at each replica. */
  endpoints: Iterable<{ version: string; replica: string; inflight: number }>;
}

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly tableVersion: Gauge;
  readonly controlPlaneConnected: Gauge;
  readonly retries: Counter<"service" | "outcome">;
  readonly rejections: Counter<"service" | "reason">;
  readonly fallbacks: Counter<"service" | "reason">;
  readonly ejections: Counter<"service">;
  readonly upgrades: Counter<"service" | "outcome">;
  readonly clientErrors: Counter<"reason">;
  /** The cell of requests that matched no known service. */
  readonly unrouted: RequestCell;
  /** The counter cell of a route's flag variant; look it up once per table and keep it. */
  flagRoute(route: string, flag: string, variant: string): FlagRouteCell;
  /** The outcome and duration cell of a route's flag variant; look it up once and keep it. */
  flagVariant(route: string, flag: string, variant: string): FlagVariantCell;
  /** Counts one finished request under a flag variant (as `record` counts it under its service). */
  recordFlag(cell: FlagVariantCell, status: number, seconds: number): void;
  /** Long-lived counters of a service named by the routing table. */
  service(name: string): ServiceMetrics;
  /** A stable small number for a route label, to index per-endpoint cell arrays. */
  routeId(label: string): number;
  /** The cell of service/version/route/replica; look it up once and keep it. */
  cell(service: string, version: string, routeId: number, replica: string): RequestCell;
  /** Counts one finished request (`now`: monotonic ms, for expiring idle series). */
  record(cell: RequestCell, status: number, seconds: number, now: number): void;
  /** Where the state gauges (circuit, ejected endpoints) are read from at scrape time. */
  setStateSource(source: () => Iterable<ServiceGauges>): void;
  /** Drops series idle longer than the TTL (done on every scrape too). */
  prune(): void;
}

export interface GatewayMetricsOptions {
  registry?: Registry;
  defaultMetrics?: boolean;
  /** Monotonic clock (ms) for expiring series; default performance.now. */
  now?: () => number;
  /** A request series unused this long is dropped from the export, so replicas that are gone do not pile up (default 15 min). */
  idleSeriesTtlMs?: number;
}

type RequestLabel = "service" | "version" | "route" | "replica" | "code_class";
type DurationLabel = "service" | "version" | "route";
const CODE_CLASSES = ["", "1xx", "2xx", "3xx", "4xx", "5xx"];

/** A counter whose values come from the request cells. */
class CellCounter extends Counter<RequestLabel> {
  constructor(
    config: { name: string; help: string; registers: Registry[] },
    private readonly source: () => Iterable<RequestCell>,
  ) {
    super({ ...config, labelNames: ["service", "version", "route", "replica", "code_class"] });
  }

  override async get(): ReturnType<Counter<RequestLabel>["get"]> {
    const values: Array<{ labels: Record<RequestLabel, string>; value: number }> = [];
    for (const c of this.source()) {
      for (let cls = 1; cls <= 5; cls++) {
        const value = c.counts[cls]!;
        if (value > 0) values.push({ labels: { ...c.labels, code_class: CODE_CLASSES[cls]! }, value });
      }
    }
    return { name: this.metricName(), help: this.metricHelp(), type: "counter", values, aggregator: "sum" } as unknown as Awaited<ReturnType<Counter<RequestLabel>["get"]>>;
  }

  private metricName(): string {
    return (this as unknown as { name: string }).name;
  }

  private metricHelp(): string {
    return (this as unknown as { help: string }).help;
  }
}

/** What a histogram cell holds: per-bucket (not cumulative) counts, their sum and count. */
interface HistogramCell<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  readonly buckets: Float64Array;
  readonly sum: number;
  readonly count: number;
}

/** A histogram whose buckets come from cells (request durations, flag variant durations). */
class CellHistogram<L extends string> extends Histogram<L> {
  constructor(
    config: { name: string; help: string; registers: Registry[]; labelNames: readonly L[] },
    private readonly source: () => Iterable<HistogramCell<L>>,
  ) {
    super({ ...config, labelNames: [...config.labelNames], buckets: [...DURATION_BUCKETS_S] });
  }

  override async get(): ReturnType<Histogram<L>["get"]> {
    return this.snapshot() as unknown as Awaited<ReturnType<Histogram<L>["get"]>>;
  }

  /** What prom-client's registry prints (the same shape as `get`). */
  async getForPromString(): Promise<unknown> {
    return this.snapshot();
  }

  private snapshot() {
    const { name, help } = this as unknown as { name: string; help: string };
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const c of this.source()) {
      let cumulative = 0;
      for (let b = 0; b < DURATION_BUCKETS_S.length; b++) {
        cumulative += c.buckets[b]!;
        values.push({ labels: { ...c.labels, le: DURATION_BUCKETS_S[b]! }, value: cumulative, metricName: `${name}_bucket` });
      }
      values.push({ labels: { ...c.labels, le: "+Inf" }, value: c.count, metricName: `${name}_bucket` });
      values.push({ labels: { ...c.labels }, value: c.sum, metricName: `${name}_sum` });
      values.push({ labels: { ...c.labels }, value: c.count, metricName: `${name}_count` });
    }
    return { name, help, type: "histogram", values, aggregator: "sum" };
  }
}

export function createGatewayMetrics(options: GatewayMetricsOptions = {}): GatewayMetrics {
  const registry = options.registry ?? new Registry();
  const now = options.now ?? (() => performance.now());
  const ttl = options.idleSeriesTtlMs ?? 15 * 60_000;
  if (options.defaultMetrics ?? true) collectProcessMetrics(registry);

  const requestCells = new Map<string, RequestCell>();
  const durationCells = new Map<string, DurationCell>();
  const services = new Map<string, ServiceMetrics>();
  const routeIds = new Map<string, number>();
  const routeLabels: string[] = [];
  let stateSource: () => Iterable<ServiceGauges> = () => [];

  /** Drops series nobody used for `ttl`; `record` brings one back when it is used again. */
  const expire = () => {
    const cutoff = now() - ttl;
    for (const [key, c] of requestCells) {
      if (c.lastUsed < cutoff) {
        c.exported = false;
        requestCells.delete(key);
      }
    }
    for (const [key, d] of durationCells) {
      if (d.lastUsed < cutoff) {
        d.exported = false;
        durationCells.delete(key);
      }
    }
  };

  new CellCounter(
    {
      name: "keelson_gateway_requests_total",
      help: "Requests the gateway finished, by service, version (release), route (path prefix, or internal for x-keelson-service calls), replica and status class. 4xx includes clients that left (499); 5xx includes responses cut off by an upstream failure; none means the request never reached that stage.",
      registers: [registry],
    },
    () => (expire(), requestCells.values()),
  );
  new CellHistogram<DurationLabel>(
    {
      name: "keelson_gateway_request_duration_seconds",
      help: "Time from receiving a request to finishing its response, by service, version and route (no replica label, to bound the series count).",
      registers: [registry],
      labelNames: ["service", "version", "route"],
    },
    () => durationCells.values(),
  );
  new Gauge({
    name: "keelson_gateway_requests_in_flight",
    help: "Requests in flight now, by service, version and replica; version and replica none: waiting in the gateway (bulkhead queue, retry backoff, an injected delay, a replica starting from zero) for a replica.",
    labelNames: ["service", "version", "replica"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of stateSource()) {
        let atReplicas = 0;
        for (const e of s.endpoints) {
          atReplicas += e.inflight;
          this.set({ service: s.service, version: e.version, replica: e.replica }, e.inflight);
        }
        const waiting = (services.get(s.service)?.inflight ?? 0) - atReplicas;
        if (waiting > 0) this.set({ service: s.service, version: NONE_LABEL, replica: NONE_LABEL }, waiting);
      }
    },
  });
  new Gauge({
    name: "keelson_gateway_websockets_open",
    help: "Open WebSocket (HTTP upgrade) tunnels per service.",
    labelNames: ["service"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of services.values()) if (s.tunnels > 0) this.set(s.service, s.tunnels);
    },
  });
  new Gauge({
    name: "keelson_gateway_circuit_state",
    help: "Circuit breaker of each service: 0 closed, 1 open, 2 half-open (absent: no breaker).",
    labelNames: ["service"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of stateSource()) if (s.circuit !== undefined) this.set({ service: s.service }, s.circuit);
    },
  });
  new Gauge({
    name: "keelson_gateway_ejected_endpoints",
    help: "Endpoints of each service ejected by outlier detection now.",
    labelNames: ["service"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of stateSource()) this.set({ service: s.service }, s.ejected);
    },
  });

  const retries = new Counter({
    name: "keelson_gateway_retries_total",
    help: "Retries by service and outcome: retried (sent), budget_exhausted (wanted, refused by the retry budget), no_time_left (wanted, but the deadline was too close).",
    labelNames: ["service", "outcome"] as const,
    registers: [registry],
  });
  const rejections = new Counter({
    name: "keelson_gateway_rejections_total",
    help: "Requests refused before reaching a replica, by service and reason: circuit_open, overloaded (bulkhead), rate_limited, no_endpoint, body_too_large.",
    labelNames: ["service", "reason"] as const,
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: "keelson_gateway_fallbacks_total",
    help: "Requests answered with a route's fallback response, by service and reason (circuit_open, no_endpoint).",
    labelNames: ["service", "reason"] as const,
    registers: [registry],
  });
  const ejections = new Counter({
    name: "keelson_gateway_ejections_total",
    help: "Endpoints ejected by outlier detection, by service.",
    labelNames: ["service"] as const,
    registers: [registry],
  });
  const upgrades = new Counter({
    name: "keelson_gateway_upgrades_total",
    help: "WebSocket (HTTP upgrade) requests by service and outcome: upgraded, refused (the replica answered without 101), failed, rejected (by the gateway).",
    labelNames: ["service", "outcome"] as const,
    registers: [registry],
  });
  const clientErrors = new Counter({
    name: "keelson_gateway_client_errors_total",
    help: "Connections the gateway answered or closed because of the client: bad_request (malformed), headers_too_large, timeout (slow headers or body), reset.",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const flagRouteCells = new Map<string, FlagRouteCell>();
  new Counter({
    name: "keelson_gateway_flag_routes_total",
    help: "Requests a route's feature flag sent to the service or version of a variant, by route (path prefix), flag and variant.",
    labelNames: ["route", "flag", "variant"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of flagRouteCells.values()) if (c.count > 0) this.inc(c.labels, c.count);
    },
  });
  const flagVariantCells = new Map<string, FlagVariantCell>();
  new Counter({
    name: "keelson_gateway_flag_requests_total",
    help: "Requests (and WebSocket upgrades) a route's feature flag decided, by route (path prefix), flag, variant (also a variant the route does not list, which takes the plain route; none when the flag gave none) and outcome: ok, error (5xx: the service failed, did not answer in time or could not be reached, or the variant's service had no ready replica and the plain route served the request), abandoned (499: the client left first), rejected (the gateway refused it before proxying: 429 rate limited, 413 body too large) or unassigned (the flag was disabled or its evaluation failed: the plain route served it).",
    labelNames: ["route", "flag", "variant", "outcome"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of flagVariantCells.values()) {
        if (c.ok > 0) this.inc({ ...c.labels, outcome: "ok" }, c.ok);
        if (c.error > 0) this.inc({ ...c.labels, outcome: "error" }, c.error);
        if (c.abandoned > 0) this.inc({ ...c.labels, outcome: "abandoned" }, c.abandoned);
        if (c.rejected > 0) this.inc({ ...c.labels, outcome: "rejected" }, c.rejected);
        if (c.unassigned > 0) this.inc({ ...c.labels, outcome: "unassigned" }, c.unassigned);
      }
    },
  });
  new CellHistogram<"route" | "flag" | "variant">(
    {
      name: "keelson_gateway_flag_request_duration_seconds",
      help: "Time from receiving a request to finishing its response, by route, flag and variant, for the HTTP requests a route's feature flag decided that were counted ok, error or abandoned (not WebSocket upgrades, nor the errors of a variant whose service had no ready replica).",
      registers: [registry],
      labelNames: ["route", "flag", "variant"],
    },
    function* () {
      for (const c of flagVariantCells.values()) if (c.count > 0) yield c;
    },
  );
  const tableVersion = new Gauge({
    name: "keelson_gateway_routing_table_version",
    help: "Version of the routing table the gateway serves (0 before the first table).",
    registers: [registry],
  });
  const controlPlaneConnected = new Gauge({
    name: "keelson_gateway_control_plane_connected",
    help: "1 while the gateway follows the control plane's routing stream, else 0.",
    registers: [registry],
  });

  const routeId = (label: string): number => {
    let id = routeIds.get(label);
    if (id === undefined) {
      id = routeLabels.length;
      routeLabels.push(label);
      routeIds.set(label, id);
    }
    return id;
  };

  const durationCell = (service: string, version: string, route: string): DurationCell => {
    const key = `${service}\u0000${version}\u0000${route}`;
    let d = durationCells.get(key);
    if (d === undefined) durationCells.set(key, (d = new DurationCell(key, { service, version, route })));
    return d;
  };

  const cell = (service: string, version: string, id: number, replica: string): RequestCell => {
    const route = routeLabels[id] ?? NONE_LABEL;
    const key = `${service}\u0000${version}\u0000${route}\u0000${replica}`;
    let c = requestCells.get(key);
    if (c === undefined) {
      c = new RequestCell(key, { service, version, route, replica }, durationCell(service, version, route));
      c.lastUsed = now();
      requestCells.set(key, c);
    }
    return c;
  };

  const revive = (c: RequestCell) => {
    c.exported = true;
    requestCells.set(c.key, c);
    const d = c.duration;
    if (!d.exported) {
      d.exported = true;
      // Another cell may have made a fresh one meanwhile; keep counting into this one.
      durationCells.set(d.key, d);
    }
  };

  const noneRoute = routeId(NONE_LABEL);
  routeId(INTERNAL_ROUTE);
  const unrouted = cell(UNROUTED_SERVICE, NONE_LABEL, noneRoute, NONE_LABEL);

  return {
    registry,
    tableVersion,
    controlPlaneConnected,
    retries,
    rejections,
    fallbacks,
    ejections,
    upgrades,
    clientErrors,
    unrouted,
    service(name) {
      let s = services.get(name);
      if (s === undefined) services.set(name, (s = new ServiceMetrics(name)));
      return s;
    },
    routeId,
    cell,
    flagRoute(route, flag, variant) {
      const key = `${route}\u0000${flag}\u0000${variant}`;
      let c = flagRouteCells.get(key);
      if (c === undefined) flagRouteCells.set(key, (c = new FlagRouteCell({ route, flag, variant })));
      return c;
    },
    flagVariant(route, flag, variant) {
      const key = `${route}\u0000${flag}\u0000${variant}`;
      let c = flagVariantCells.get(key);
      if (c === undefined) flagVariantCells.set(key, (c = new FlagVariantCell({ route, flag, variant })));
      return c;
    },
    recordFlag(c, status, seconds) {
      if (status >= 500) c.error++;
      else if (status === 499) c.abandoned++;
      else c.ok++;
      c.count++;
      c.sum += seconds;
      c.buckets[bucketOf(seconds)]!++;
    },
    record(c, status, seconds, at) {
      const cls = (status / 100) | 0;
      c.counts[cls >= 1 && cls <= 5 ? cls : 5]!++;
      c.lastUsed = at;
      const d = c.duration;
      d.lastUsed = at;
      if (!c.exported || !d.exported) revive(c);
      d.count++;
      d.sum += seconds;
      d.buckets[bucketOf(seconds)]!++;
    },
    setStateSource(source) {
      stateSource = source;
    },
    prune: expire,
  };
}
