// The autoscaler loop: every `interval` it reads each autoscaled service's load, decides with
// the HPA arithmetic in hpa.ts and asks the control plane to scale. Every change, and every new
// reason to hold, is an event in the store; the last 20 looks per service explain it all
// (`keelson autoscale <service>`). Bad load and failed scaling are logged and hold the count.
import { KeelsonError } from "@keelson/protocol";
import type { EventKind } from "@keelson/protocol";
import { ServiceSpecSchema } from "../manifest/index.js";
import type { ServiceRecord, Store } from "../store/index.js";
import { decide, emptyMemory, measureValue, PARTIAL_WINDOWS_HELD, recordScale, resolveAutoscale } from "./hpa.js";
import type { AutoscaleConfig, AutoscaleMemory, Decision, DecisionReason, LimitedBy, Measure, MeasureProposal, ReplicaLoad, ServiceLoad } from "./hpa.js";

/** Where load comes from: the gateways' live stats in production, a simulator in benchmarks. */
export interface LoadReader {
  /** The service's load over the last `windowMs`; undefined when there is nothing to read (the autoscaler then holds). */
  read(service: string, windowMs: number): Promise<ServiceLoad | undefined>;
}

/** The logging surface the autoscaler needs (pino's shape). */
export interface AutoscalerLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AutoscalerOptions {
  store: Store;
  project: string;
  load: LoadReader;
  /**
   * Sets the service's replica count (the control plane wires this to the reconciler, which
   * stores it in `spec.replicas` and converges). `why` holds the inputs of the decision.
   */
  scale(service: string, replicas: number, why: Record<string, unknown>): Promise<void>;
  /** Clock in ms since the epoch (default Date.now); every window and period is measured on it. */
  now?: () => number;
  /** How often `start()` looks for services that are due (default 500 ms); each service is evaluated every `autoscale.interval`. */
  tickMs?: number;
  log?: AutoscalerLog;
}

/** One look at a service, kept for `status()`. */
export interface AutoscaleEvaluation {
  atMs: number;
  at: string;
  from: number;
  to: number;
  outcome: "scaled" | "held" | "steady";
  reason: DecisionReason;
  message: string;
  inputs: {
    requests?: number;
    windowMs?: number;
    /** Set when the gateways saw only this much of the window (one restarted within it, or a worker of one is missing). */
    coveredMs?: number;
    /** With `coveredMs`: how long the looks in a row have seen only part of the window. */
    partialForMs?: number;
    /** Requests the gateways held for the service while it had no replica (over its activation window). */
    heldArrivals?: number;
    replicas?: { total: number; ready: number; notReady: number };
    measures: MeasureProposal[];
    idleForMs?: number;
  };
  /** The largest proposal, before stabilization. */
  recommendation?: number;
  /** The recommendation after stabilization, before policies and min/max. */
  stabilized?: number;
  limitedBy?: LimitedBy;
}

/** What the autoscaler knows about one service. */
export interface AutoscaleStatus {
  service: string;
  /** The replica count at the last look. */
  current: number;
  /** What the last look decided (the current count when it held). */
  desired: number;
  min: number;
  max: number;
  target: Partial<Record<Measure, number>>;
  /** The measures of the last look that could read load. */
  metrics: MeasureProposal[];
  lastEvaluationAt?: string;
  /** Set while the autoscaler wants a change it does not make. */
  held?: { reason: DecisionReason; message: string; since: string };
  /** The last looks, oldest first (at most EVALUATIONS_KEPT). */
  evaluations: AutoscaleEvaluation[];
}

export interface Autoscaler {
  /** Looks for due services every `tickMs` until `stop()`. */
  start(): void;
  /** Stops looking and waits for looks and scalings under way. */
  stop(): Promise<void>;
  /** Evaluates every service that is due now, once, and waits for it (for tests and simulations). */
  tick(): Promise<void>;
  /**
   * A request waits for a service at zero (the gateway holds it): scale to max(1, min) at once.
   * A service already running is left as is (`from` equals `to`).
   */
  activate(service: string): Promise<{ from: number; to: number }>;
  /** What the autoscaler did for a service lately; undefined before its first look. */
  status(service: string): AutoscaleStatus | undefined;
}

/** How many looks per service `status()` keeps. */
export const EVALUATIONS_KEPT = 20;

/** While the gateways see only part of the window, the warning is logged again this often. */
export const PARTIAL_REWARN_MS = 300_000;

const silent: AutoscalerLog = { info() {}, warn() {}, error() {} };

interface ServiceState {
  config: AutoscaleConfig;
  configKey: string;
  memory: AutoscaleMemory;
  nextDueMs: number | undefined;
  current: number;
  desired: number;
  metrics: MeasureProposal[];
  lastEvaluationAtMs?: number;
  held?: { reason: DecisionReason; message: string; sinceMs: number };
  /** The reason of the last `autoscale.held` event; a new one is written only when it changes. */
  heldReported?: DecisionReason;
  /** The load problems last logged, so a steady stream of the same bad value logs once. */
  problemsLogged?: string;
  /** While looks see only part of the window: when that was last warned about, and whether the warning said it expired. */
  partialWarned?: { atMs: number; expired: boolean };
  evaluations: AutoscaleEvaluation[];
  /** Looks and activations of this service run one at a time. */
  queue: Promise<unknown>;
  busy: number;
}

/**
 * Creates the autoscaler of one project.
 *
 * @example
 * const autoscaler = createAutoscaler({ store, project: "shop", load: createGatewayLoadReader({ statsUrls, replicas }),
 *   scale: (service, replicas) => reconciler.scale(service, replicas, "autoscaler") });
 * autoscaler.start();
 */
export function createAutoscaler(options: AutoscalerOptions): Autoscaler {
  const { store, project, load: reader } = options;
  const now = options.now ?? Date.now;
  const tickMs = options.tickMs ?? 500;
  const log = options.log ?? silent;
  const states = new Map<string, ServiceState>();
  const badConfigLogged = new Set<string>();
  const inflight = new Set<Promise<unknown>>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let listing = false;
  let stopped = false;

  function configOf(record: ServiceRecord): { config: AutoscaleConfig; key: string } | undefined {
    const raw = (record.spec as { autoscale?: unknown }).autoscale;
    if (raw === undefined) return undefined;
    const key = JSON.stringify(raw);
    const state = states.get(record.name);
    if (state?.configKey === key) return { config: state.config, key };
    // The stored spec is plain JSON: check it again rather than trust it.
    const parsed = ServiceSpecSchema.shape.autoscale.safeParse(raw);
    if (!parsed.success || parsed.data === undefined) {
      const logKey = `${record.name}\u0000${key}`;
      if (!badConfigLogged.has(logKey)) {
        badConfigLogged.add(logKey);
        log.error({ service: record.name, issues: parsed.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) }, "stored autoscale settings are invalid; the service is not autoscaled");
      }
      return undefined;
    }
    return { config: resolveAutoscale(parsed.data), key };
  }

  function stateOf(service: string, c: { config: AutoscaleConfig; key: string }, current: number): ServiceState {
    let state = states.get(service);
    if (state === undefined) {
      state = { config: c.config, configKey: c.key, memory: emptyMemory(), nextDueMs: undefined, current, desired: current, metrics: [], evaluations: [], queue: Promise.resolve(), busy: 0 };
      states.set(service, state);
    } else if (state.configKey !== c.key) {
      // New settings: the history (recommendations, scale changes) stays, as with an edited HPA.
      state.config = c.config;
      state.configKey = c.key;
      if (state.nextDueMs !== undefined) state.nextDueMs = Math.min(state.nextDueMs, now() + c.config.intervalMs);
    }
    return state;
  }

  function enqueue<T>(state: ServiceState, work: () => Promise<T>): Promise<T> {
    state.busy++;
    const run = state.queue.then(work).finally(() => state.busy--);
    state.queue = run.catch(() => undefined);
    inflight.add(run);
    void run.catch(() => undefined).finally(() => inflight.delete(run));
    return run;
  }

  async function event(kind: EventKind, service: string, details: Record<string, unknown>): Promise<void> {
    try {
      await store.appendEvent({ project, kind, actor: "autoscaler", subject: `service/${service}`, details });
    } catch (err) {
      log.error({ err, kind, service }, "could not record event");
    }
  }

  function remember(state: ServiceState, decision: Decision, outcome: AutoscaleEvaluation["outcome"], load: ServiceLoad | undefined, nowMs: number, override?: { reason: DecisionReason; message: string }): void {
    const reason = override?.reason ?? decision.reason;
    const message = override?.message ?? decision.message;
    const to = outcome === "scaled" ? decision.to : decision.from;
    const evaluation: AutoscaleEvaluation = {
      atMs: nowMs,
      at: new Date(nowMs).toISOString(),
      from: decision.from,
      to,
      outcome,
      reason,
      message,
      inputs: {
        ...(load === undefined ? {} : { requests: load.requests, windowMs: load.windowMs, replicas: replicaTotals(load.replicas) }),
        ...(load?.coveredMs === undefined ? {} : { coveredMs: load.coveredMs }),
        ...(decision.partial === undefined ? {} : { partialForMs: decision.partial.forMs }),
        ...(load?.heldArrivals === undefined ? {} : { heldArrivals: load.heldArrivals }),
        measures: decision.measures,
        ...(decision.idleForMs === undefined ? {} : { idleForMs: decision.idleForMs }),
      },
      ...(decision.recommendation === undefined ? {} : { recommendation: decision.recommendation }),
      ...(decision.stabilization === undefined ? {} : { stabilized: decision.stabilization.replicas }),
      ...(decision.limits?.limitedBy === undefined ? {} : { limitedBy: decision.limits.limitedBy }),
    };
    state.evaluations.push(evaluation);
    if (state.evaluations.length > EVALUATIONS_KEPT) state.evaluations.splice(0, state.evaluations.length - EVALUATIONS_KEPT);
    state.current = outcome === "scaled" ? to : decision.from;
    state.desired = to;
    state.lastEvaluationAtMs = nowMs;
    if (decision.measures.length > 0) state.metrics = decision.measures;
    if (outcome === "held") {
      if (state.held?.reason !== reason) state.held = { reason, message, sinceMs: nowMs };
      else state.held.message = message;
    } else {
      state.held = undefined;
    }
  }

  /** Holds with an `autoscale.held` event when the reason differs from the last one reported. */
  async function reportHold(service: string, state: ServiceState, reason: DecisionReason, details: Record<string, unknown>): Promise<void> {
    if (state.heldReported === reason) return;
    state.heldReported = reason;
    // A partly seen window is warned about by warnPartial, for as long as it lasts.
    if (reason !== "metrics-partial") {
      const level = reason === "metrics-unavailable" || reason === "metrics-invalid" || reason === "scale-failed" ? "warn" : "info";
      log[level]({ service, reason, message: details.message }, "autoscaler holds the replica count");
    }
    await event("autoscale.held", service, details);
  }

  /**
   * Warns while looks in a row see only part of the window: when it first holds a scale-down,
   * when it has lasted long enough that the autoscaler acts on what it sees, and every
   * PARTIAL_REWARN_MS after either while it lasts (a worker that stays missing is a problem
   * someone should look at, not a line logged once).
   */
  function warnPartial(service: string, state: ServiceState, decision: Decision, nowMs: number): void {
    const p = decision.partial;
    if (p === undefined) {
      state.partialWarned = undefined;
      return;
    }
    const last = state.partialWarned;
    const fields = { service, coveredMs: p.coveredMs, windowMs: p.windowMs, forMs: p.forMs, message: decision.message };
    if (p.expired && last?.expired !== true) {
      state.partialWarned = { atMs: nowMs, expired: true };
      log.warn(
        { ...fields, reason: "metrics-partial-expired" },
        `the gateways have seen only part of the window for more than ${PARTIAL_WINDOWS_HELD} windows in a row; the autoscaler acts on what they saw`,
      );
    } else if (last === undefined) {
      if (decision.reason !== "metrics-partial") return;
      state.partialWarned = { atMs: nowMs, expired: false };
      log.warn({ ...fields, reason: "metrics-partial" }, "autoscaler holds the replica count");
    } else if (nowMs - last.atMs >= PARTIAL_REWARN_MS) {
      last.atMs = nowMs;
      log.warn({ ...fields, reason: p.expired ? "metrics-partial-expired" : "metrics-partial" }, "the gateways still see only part of the window");
    }
  }

  async function evaluate(service: string, record: ServiceRecord, state: ServiceState): Promise<void> {
    const current = replicasOf(record);
    if (current === undefined) {
      log.error({ service, replicas: (record.spec as { replicas?: unknown }).replicas }, "stored replica count is not a whole number; not autoscaling");
      return;
    }
    const config = state.config;
    let load: ServiceLoad | undefined;
    let unavailable: string | undefined;
    try {
      const raw = await reader.read(service, config.windowMs);
      if (raw === undefined) {
        unavailable = "the metrics source has no load for the service";
      } else {
        const checked = checkLoad(raw, service, now());
        const problems = checked.problems.join("; ");
        if (problems !== "" && problems !== state.problemsLogged) log.warn({ service, problems: checked.problems }, "bad values in the service's load");
        state.problemsLogged = problems;
        if (checked.load === undefined) unavailable = `the load is unusable: ${problems}`;
        else load = checked.load;
      }
    } catch (err) {
      unavailable = `reading the load failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    const nowMs = now();
    const decision = decide({ config, current, load, ...(unavailable === undefined ? {} : { unavailable }), nowMs, memory: state.memory });
    state.memory = decision.memory;
    warnPartial(service, state, decision, nowMs);
    const details = eventDetails(decision, load, config);
    switch (decision.outcome) {
      case "steady":
        remember(state, decision, "steady", load, nowMs);
        return;
      case "hold":
        remember(state, decision, "held", load, nowMs);
        await reportHold(service, state, decision.reason, details);
        return;
      case "scale":
        break;
    }
    try {
      await options.scale(service, decision.to, details);
    } catch (err) {
      const message = `scaling ${decision.from} → ${decision.to} failed: ${err instanceof Error ? err.message : String(err)}`;
      log.error({ err, service, from: decision.from, to: decision.to }, "autoscaler could not scale");
      remember(state, decision, "held", load, nowMs, { reason: "scale-failed", message });
      await reportHold(service, state, "scale-failed", { ...details, reason: "scale-failed", message, attempted: decision.to, to: decision.from });
      return;
    }
    state.memory = recordScale(state.memory, config, decision.from, decision.to, nowMs);
    state.heldReported = undefined;
    remember(state, decision, "scaled", load, nowMs);
    log.info({ service, from: decision.from, to: decision.to, reason: decision.reason }, decision.message);
    await event(decision.reason === "activated" ? "service.activated" : "autoscale.scaled", service, details);
  }

  /** Lists the project's services and starts a look at each one that is due; resolves to the looks. */
  async function schedule(): Promise<Array<Promise<void>>> {
    if (stopped) return [];
    let records: ServiceRecord[];
    try {
      records = await store.listServices(project);
    } catch (err) {
      log.error({ err }, "autoscaler could not list services");
      return [];
    }
    const seen = new Set<string>();
    const looks: Array<Promise<void>> = [];
    for (const record of records) {
      const c = configOf(record);
      if (c === undefined) continue;
      seen.add(record.name);
      if (record.release === undefined) continue;
      const state = stateOf(record.name, c, replicasOf(record) ?? 0);
      const nowMs = now();
      if (state.busy > 0 || (state.nextDueMs !== undefined && nowMs < state.nextDueMs)) continue;
      // On the interval's grid, so a late tick does not shift every later look; after a long
      // stall (a slow scale), the next look is a full interval away rather than a burst.
      const next = (state.nextDueMs ?? nowMs) + c.config.intervalMs;
      state.nextDueMs = next > nowMs ? next : nowMs + c.config.intervalMs;
      looks.push(
        enqueue(state, () => evaluate(record.name, record, state)).catch((err: unknown) => {
          log.error({ err, service: record.name }, "autoscaler evaluation failed");
        }),
      );
    }
    for (const name of [...states.keys()]) if (!seen.has(name)) states.delete(name);
    return looks;
  }

  return {
    start() {
      if (timer !== undefined) return;
      stopped = false;
      timer = setInterval(() => {
        // A store that is slow to list must not pile up ticks; services already under way are skipped.
        if (listing) return;
        listing = true;
        void schedule()
          .catch((err: unknown) => log.error({ err }, "autoscaler tick failed"))
          .finally(() => {
            listing = false;
          });
      }, tickMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    async tick() {
      await Promise.all(await schedule());
    },
    async activate(service) {
      const record = await store.getService(project, service);
      if (record === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${service}" does not exist`);
      const c = configOf(record);
      if (c === undefined) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `service "${service}" is not autoscaled (no valid autoscale settings)`);
      if (record.release === undefined) throw new KeelsonError("KEELSON_ERR_CONFLICT", `service "${service}" has no release yet; nothing to start`);
      const state = stateOf(service, c, replicasOf(record) ?? 0);
      return enqueue(state, async () => {
        // Read again inside the queue: a look that just finished may have scaled already.
        const fresh = (await store.getService(project, service)) ?? record;
        const current = replicasOf(fresh) ?? 0;
        const nowMs = now();
        // A request is waiting: the service is not idle, whatever the last window said.
        state.memory = { ...state.memory, lastRequestAtMs: nowMs };
        if (current > 0) return { from: current, to: current };
        const to = Math.max(1, state.config.min);
        const decision: Decision = { outcome: "scale", reason: "activated", message: `a request is waiting at zero replicas: starting ${to}`, from: 0, to, measures: [], memory: state.memory };
        const details = { ...eventDetails(decision, undefined, state.config), trigger: "request held by the gateway" };
        try {
          await options.scale(service, to, details);
        } catch (err) {
          const message = `activating (0 → ${to}) failed: ${err instanceof Error ? err.message : String(err)}`;
          log.error({ err, service, to }, "autoscaler could not activate the service");
          remember(state, decision, "held", undefined, nowMs, { reason: "scale-failed", message });
          await reportHold(service, state, "scale-failed", { ...details, reason: "scale-failed", message, attempted: to, to: 0 });
          throw err;
        }
        state.memory = recordScale(state.memory, state.config, 0, to, nowMs);
        state.heldReported = undefined;
        remember(state, decision, "scaled", undefined, nowMs);
        log.info({ service, from: 0, to }, decision.message);
        await event("service.activated", service, details);
        return { from: 0, to };
      });
    },
    status(service) {
      const state = states.get(service);
      if (state === undefined || state.lastEvaluationAtMs === undefined) return undefined;
      const { config } = state;
      return {
        service,
        current: state.current,
        desired: state.desired,
        min: config.min,
        max: config.max,
        target: { ...config.target },
        metrics: state.metrics,
        lastEvaluationAt: new Date(state.lastEvaluationAtMs).toISOString(),
        ...(state.held === undefined ? {} : { held: { reason: state.held.reason, message: state.held.message, since: new Date(state.held.sinceMs).toISOString() } }),
        evaluations: [...state.evaluations],
      };
    },
  };
}

function replicasOf(record: ServiceRecord): number | undefined {
  const r = (record.spec as { replicas?: unknown }).replicas;
  return typeof r === "number" && Number.isInteger(r) && r >= 0 ? r : undefined;
}

function replicaTotals(replicas: readonly ReplicaLoad[]): { total: number; ready: number; notReady: number } {
  const ready = replicas.filter((r) => r.ready).length;
  return { total: replicas.length, ready, notReady: replicas.length - ready };
}

const round = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round(x * 1000) / 1000);

/** What an event and `scale()` get: the inputs of the decision and what bounded it. */
function eventDetails(decision: Decision, load: ServiceLoad | undefined, config: AutoscaleConfig): Record<string, unknown> {
  const missing = Math.max(0, ...decision.measures.map((m) => m.replicas?.missing ?? 0));
  return {
    from: decision.from,
    to: decision.to,
    reason: decision.reason,
    message: decision.message,
    metrics: decision.measures.map((m) => ({
      measure: m.measure,
      current: round(m.current),
      target: m.target,
      ratio: round(m.ratio),
      ...(m.adjustedRatio === undefined ? {} : { adjustedRatio: round(m.adjustedRatio) }),
      proposal: m.proposal,
      ...(m.replicas === undefined ? {} : { replicas: m.replicas }),
      ...(m.invalid === undefined ? {} : { invalid: m.invalid }),
      ...(m.note === undefined ? {} : { note: m.note }),
    })),
    ...(load === undefined ? {} : { replicas: { ...replicaTotals(load.replicas), missing }, requests: load.requests, windowMs: load.windowMs }),
    ...(load?.coveredMs === undefined ? {} : { coveredMs: load.coveredMs }),
    ...(decision.partial === undefined ? {} : { partial: decision.partial }),
    ...(load?.heldArrivals === undefined ? {} : { heldArrivals: load.heldArrivals }),
    ...(decision.recommendation === undefined ? {} : { recommendation: decision.recommendation }),
    ...(decision.stabilization === undefined ? {} : { stabilization: decision.stabilization }),
    ...(decision.limits === undefined
      ? {}
      : { policy: { ...decision.limits, scaleUpSelect: config.scaleUp.select, scaleDownSelect: config.scaleDown.select } }),
    ...(decision.idleForMs === undefined ? {} : { idleForMs: decision.idleForMs }),
  };
}

/**
 * Checks a LoadReader's answer. A value that is not a finite, non-negative number (NaN, -1,
 * "12") is dropped and named in `problems`: for a replica it then counts as missing (HPA's
 * conservative rule), for p95 the measure cannot be computed. An answer without a usable
 * request count or replica list has no `load` (the autoscaler holds).
 */
export function checkLoad(raw: unknown, service: string, fallbackAtMs: number): { load?: ServiceLoad; problems: string[] } {
  const problems: string[] = [];
  if (typeof raw !== "object" || raw === null) return { problems: [`expected an object, got ${raw === null ? "null" : typeof raw}`] };
  const r = raw as Record<string, unknown>;
  const requests = measureValue(r.requests);
  if (requests === undefined) problems.push(`requests: expected a non-negative number, got ${String(r.requests)}`);
  if (!Array.isArray(r.replicas)) problems.push("replicas: expected a list");
  if (requests === undefined || !Array.isArray(r.replicas)) return { problems };
  const replicas: ReplicaLoad[] = [];
  for (const [i, item] of (r.replicas as unknown[]).entries()) {
    if (typeof item !== "object" || item === null || typeof (item as { replica?: unknown }).replica !== "string") {
      problems.push(`replicas[${i}]: expected { replica, ready, ... }`);
      continue;
    }
    const x = item as Record<string, unknown>;
    const replica: ReplicaLoad = { replica: x.replica as string, ready: x.ready === true };
    const started = x.startedAtMs;
    if (typeof started === "number" && Number.isFinite(started)) replica.startedAtMs = started;
    for (const field of ["inflight", "rps", "cpuPercent"] as const) {
      if (x[field] === undefined) continue;
      const v = measureValue(x[field]);
      if (v === undefined) problems.push(`replica ${replica.replica}: ${field} ${String(x[field])} is not a non-negative number`);
      else replica[field] = v;
    }
    replicas.push(replica);
  }
  const load: ServiceLoad = {
    service: typeof r.service === "string" ? r.service : service,
    atMs: typeof r.atMs === "number" && Number.isFinite(r.atMs) ? r.atMs : fallbackAtMs,
    windowMs: typeof r.windowMs === "number" && Number.isFinite(r.windowMs) ? r.windowMs : 0,
    replicas,
    requests,
  };
  if (r.p95Ms !== undefined) {
    const p95 = measureValue(r.p95Ms);
    if (p95 === undefined) problems.push(`p95Ms ${String(r.p95Ms)} is not a non-negative number`);
    else load.p95Ms = p95;
  }
  if (r.coveredMs !== undefined) {
    const covered = measureValue(r.coveredMs);
    // Unreadable coverage is read as none: the load may then scale up but not down.
    if (covered === undefined) problems.push(`coveredMs ${String(r.coveredMs)} is not a non-negative number`);
    load.coveredMs = covered ?? 0;
  }
  if (r.heldArrivals !== undefined) {
    const held = measureValue(r.heldArrivals);
    // Unreadable, it wakes nothing: the requests in the window still can.
    if (held === undefined) problems.push(`heldArrivals ${String(r.heldArrivals)} is not a non-negative number`);
    else if (held > 0) load.heldArrivals = held;
  }
  return { load, problems };
}
