// What the hot path knows about a service, built once per routing table: its endpoints (each
// with its pool and balancing and ejection state, kept across tables), pick lists per release,
// the traffic split (weights, compiled match rules, affinity), and the breaker, bulkhead and
// retry budget of its policy, the faults chaos experiments inject and whether it may scale to
// zero. Requests of an older table keep the objects they started with, so a new table never
// disturbs them.
import type { UpstreamTlsOptions } from "./upstream-tls.js";
import type { Pool } from "undici";
import type { Activation, Endpoint, Fault, RoutingTable, ServicePolicy, TrafficSplit } from "@keelson/protocol";
import { Bulkhead } from "./bulkhead.js";
import { CallPolicy } from "./call-policy.js";
import type { BreakerState } from "./circuit-breaker.js";
import { CircuitBreaker } from "./circuit-breaker.js";
import type { CompiledFault } from "./fault-injection.js";
import { compileFaults } from "./fault-injection.js";
import type { GatewayMetrics, RequestCell, ServiceMetrics } from "./gateway-metrics.js";
import type { LiveSeries, LiveStats } from "./live-stats.js";
import type { Balanceable, LoadBalancer, PickList } from "./load-balancer.js";
import { createLoadBalancer } from "./load-balancer.js";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";
import type { Ejectable } from "./outlier-detector.js";
import { OutlierDetector } from "./outlier-detector.js";
import { PeakEwma } from "./peak-ewma.js";
import type { Random } from "./random.js";
import { RetryBudget } from "./retry-budget.js";
import type { ReleaseGroupLike } from "./traffic-split.js";
import { MatchRules, PatternCache, ReleasePicker, UserAffinity, readCookie, splitLabels, stickyCookie, stickyCookieName } from "./traffic-split.js";

/** One replica the gateway may send traffic to, with everything the balancer and ejection keep about it. */
export class EndpointState implements Balanceable, Ejectable {
  inflight = 0;
  readonly ewma: PeakEwma;
  consecutiveFailures = 0;
  ejectedUntil = 0;
  timesEjected = 0;
  returnedAt = 0;
  /** Request metric cells by route id, looked up once. */
  readonly cells: Array<RequestCell | undefined> = [];
  /** Set once its replica left the routing table (its pool is closing): a delayed request picks another. */
  removed = false;

  constructor(
    /** `${replicaId} ${url}`: a replica restarted on another port gets fresh state and a fresh pool. */
    readonly key: string,
    readonly service: string,
    readonly replicaId: string,
    readonly url: string,
    readonly release: string,
    readonly pool: Pool,
    /** Path of the endpoint URL without trailing "/" ("" for a bare origin), put before every forwarded path. */
    readonly basePath: string,
    /** For WebSocket tunnels, which connect without the pool. */
    readonly hostname: string,
    readonly port: number,
    readonly series: LiveSeries,
    now: number,
    /** For an https endpoint: the TLS options of WebSocket tunnels (the pool has its own connector). */
    readonly tls?: UpstreamTlsOptions,
  ) {
    this.ewma = new PeakEwma(now);
  }
}

/** The endpoints of one release (or of a whole service), and those of them not ejected. */
export class ReleaseGroup implements ReleaseGroupLike {
  readonly available: PickList<EndpointState> & { items: EndpointState[] } = { items: [], cursor: 0 };
  /** Set-Cookie value that pins a client to this release. */
  readonly cookie: string;

  constructor(
    readonly release: string,
    readonly endpoints: readonly EndpointState[],
    service: string,
  ) {
    this.cookie = stickyCookie(service, release);
    this.refresh();
  }

  refresh(): void {
    const items: EndpointState[] = [];
    for (const e of this.endpoints) if (e.ejectedUntil === 0) items.push(e);
    this.available.items = items;
  }
}

const NO_HEADERS: readonly string[] = [];

export class ServiceTarget {
  readonly metrics: ServiceMetrics;
  /** Every endpoint of the service. */
  readonly all: ReleaseGroup;
  /** Endpoints of releases that take weighted traffic (all of them without a split): where retries fail over to. */
  readonly served: ReleaseGroup;
  readonly groups: ReadonlyMap<string, ReleaseGroup>;
  /** Weighted choice and pins (labels, release ids). */
  readonly picker: ReleasePicker<ReleaseGroup>;
  /** A/B rules of the split; undefined without any (the hot path then reads no extra header). */
  readonly rules: MatchRules<ReleaseGroup> | undefined;
  /** Compiled regexes of the rules, handed to the next table's target. */
  readonly patterns: PatternCache;
  /** Hash-based weighted choice; undefined: at random. */
  readonly affinity: UserAffinity | undefined;
  readonly sticky: boolean;
  readonly cookieName: string;
  readonly balancer: LoadBalancer;
  readonly outliers: OutlierDetector;
  readonly breaker: CircuitBreaker | undefined;
  readonly bulkhead: Bulkhead | undefined;
  readonly budget: RetryBudget;
  readonly idempotentRetries: boolean;
  /** Which verified callers may reach the service on the mesh listener. */
  readonly callPolicy: CallPolicy;
  /** Faults to inject (each checked against its end time per request); undefined: none (the hot path's only cost then). */
  readonly faults: readonly CompiledFault[] | undefined;
  /** Present when the service may scale to zero: requests wait for an endpoint rather than being refused. */
  readonly activation: Activation | undefined;

  constructor(
    readonly name: string,
    readonly policy: ServicePolicy,
    readonly split: TrafficSplit | undefined,
    readonly endpoints: readonly EndpointState[],
    parts: {
      metrics: ServiceMetrics;
      balancer: LoadBalancer;
      outliers: OutlierDetector;
      breaker: CircuitBreaker | undefined;
      bulkhead: Bulkhead | undefined;
      budget: RetryBudget;
      /** The previous table's regexes of this service, reused rather than compiled again. */
      patterns?: PatternCache;
      /** Where an unusable match rule is reported. */
      log?: GatewayLogger;
      /** Default: nobody may call it on the mesh listener. */
      callPolicy?: CallPolicy;
      faults?: readonly CompiledFault[] | undefined;
      activation?: Activation | undefined;
    },
  ) {
    this.metrics = parts.metrics;
    this.faults = parts.faults === undefined || parts.faults.length === 0 ? undefined : parts.faults;
    this.activation = parts.activation;
    this.callPolicy = parts.callPolicy ?? CallPolicy.DENY_ALL;
    this.balancer = parts.balancer;
    this.outliers = parts.outliers;
    this.breaker = parts.breaker;
    this.bulkhead = parts.bulkhead;
    this.budget = parts.budget;
    this.idempotentRetries = policy.retries.attempts > 0;
    this.all = new ReleaseGroup("*", endpoints, name);
    const byRelease = new Map<string, EndpointState[]>();
    for (const e of endpoints) {
      let list = byRelease.get(e.release);
      if (list === undefined) byRelease.set(e.release, (list = []));
      list.push(e);
    }
    const groups = new Map<string, ReleaseGroup>();
    for (const [release, list] of byRelease) groups.set(release, new ReleaseGroup(release, list, name));
    this.groups = groups;
    const weights: Array<{ group: ReleaseGroup; weight: number }> = [];
    if (split !== undefined) {
      const served: EndpointState[] = [];
      for (const w of split.weights) {
        const g = groups.get(w.release);
        if (g === undefined) continue;
        weights.push({ group: g, weight: w.weight });
        if (w.weight > 0) served.push(...g.endpoints);
      }
      this.served = served.length > 0 ? new ReleaseGroup("*", served, name) : this.all;
    } else {
      this.served = this.all;
    }
    this.picker = new ReleasePicker(weights, groups.values(), splitLabels(split));
    this.patterns = new PatternCache(parts.patterns);
    this.rules =
      split?.match === undefined
        ? undefined
        : MatchRules.compile({ service: name, rules: split.match, group: (release) => groups.get(release), patterns: this.patterns, log: parts.log ?? silentLogger });
    this.patterns.seal();
    this.affinity = split?.affinity === undefined ? undefined : new UserAffinity(name, split.affinity);
    this.sticky = split?.sticky === true;
    this.cookieName = stickyCookieName(name);
  }

  /** Brings back endpoints whose ejection is over; cheap when none is due. */
  maybeReturn(now: number): void {
    if (now >= this.outliers.nextReturnAt && this.outliers.release(this.endpoints, now)) this.refresh();
  }

  /**
   * The release group of a new request by weight (the whole service without a split): from the
   * hash of its affinity key when the split has one and the request carries it, else at random.
   */
  weighted(random: Random, rawHeaders?: readonly string[], cookies?: string): ReleaseGroup {
    if (this.split === undefined) return this.all;
    const affinity = this.affinity;
    const fraction = affinity === undefined ? undefined : affinity.fraction(rawHeaders ?? NO_HEADERS, cookies);
    const group = fraction === undefined ? this.picker.pick(random) : this.picker.at(fraction);
    // No weighted release has a ready endpoint: serving from any release beats refusing.
    return group ?? this.all;
  }

  /**
   * The release group a request names, if available: its pin (x-keelson-version value), the
   * version its route's flag chose, the first match rule it satisfies, or its sticky cookie, in
   * that order; undefined: choose by weight.
   */
  named(pin: string | undefined, cookies: string | undefined, rawHeaders: readonly string[], flagPin?: string): ReleaseGroup | undefined {
    let group = pin === undefined ? undefined : this.picker.pinned(pin);
    if (group === undefined && flagPin !== undefined) group = this.picker.pinned(flagPin);
    if (group === undefined && this.rules !== undefined) group = this.rules.choose(rawHeaders, cookies);
    if (group === undefined && this.sticky && cookies !== undefined) {
      const release = readCookie(cookies, this.cookieName);
      if (release !== undefined) group = this.picker.pinned(release);
    }
    return group;
  }

  /** The release group of a request: the one it names (`named`), else by weight (`weighted`). */
  groupFor(pin: string | undefined, cookies: string | undefined, random: Random, rawHeaders: readonly string[] = NO_HEADERS, flagPin?: string): ReleaseGroup {
    return this.named(pin, cookies, rawHeaders, flagPin) ?? this.weighted(random, rawHeaders, cookies);
  }

  /**
   * An endpoint of `group`, avoiding `avoid` (the one that just failed) when there is another;
   * falls over to the service's other served releases when the group has none left.
   */
  choose(group: ReleaseGroup, avoid: EndpointState | undefined, now: number): EndpointState | undefined {
    const e = this.balancer.pick(group.available, now, avoid);
    if (e !== undefined && e !== avoid) return e;
    if (group !== this.served) {
      const other = this.balancer.pick(this.served.available, now, avoid);
      if (other !== undefined && other !== avoid) return other;
    }
    // Only the endpoint that just failed is left: it gets the retry.
    if (e !== undefined) return e;
    return this.balancer.pick(this.all.available, now, avoid);
  }

  success(e: EndpointState): void {
    e.consecutiveFailures = 0;
  }

  /**
   * A 5xx, connect failure or timeout of `e`; returns true when it got ejected. Under a traffic
   * split, the last available endpoint of a release is never ejected: its share would move to the
   * other releases unseen, and a failing canary would starve its own analysis of evidence
   * (Inconclusive instead of Failed) rather than being rolled back.
   */
  failure(e: EndpointState, now: number): boolean {
    const lastOfRelease = this.split !== undefined && (this.groups.get(e.release)?.available.items.length ?? 0) <= 1;
    if (!this.outliers.failure(e, this.endpoints.length, now, !lastOfRelease)) return false;
    this.refresh();
    return true;
  }

  /** Rebuilds the pick lists after an ejection or a return. */
  refresh(): void {
    this.all.refresh();
    if (this.served !== this.all) this.served.refresh();
    for (const g of this.groups.values()) g.refresh();
    this.picker.refresh();
  }

  /** What admin `GET /state` shows of this service. */
  describe(now: number, wallNow: number): ServiceState {
    const wall = (t: number) => new Date(wallNow + (t - now)).toISOString();
    const state: ServiceState = {
      name: this.name,
      loadBalancer: this.policy.loadBalancer,
      policy: this.policy,
      inflight: this.metrics.inflight,
      endpoints: this.endpoints.map((e) => ({
        replicaId: e.replicaId,
        url: e.url,
        release: e.release,
        inflight: e.inflight,
        ewmaMs: Math.round(e.ewma.value(now) * 1000) / 1000,
        consecutiveFailures: e.consecutiveFailures,
        ejected: e.ejectedUntil > now,
        ...(e.ejectedUntil > now ? { ejectedUntil: wall(e.ejectedUntil) } : {}),
        timesEjected: e.timesEjected,
      })),
      retryBudget: this.budget.snapshot(now),
    };
    if (this.split !== undefined) state.split = this.split;
    if (this.breaker !== undefined) state.breaker = this.breaker.snapshot(now);
    if (this.bulkhead !== undefined) state.bulkhead = { active: this.bulkhead.active, queued: this.bulkhead.queued, ...this.bulkhead.config };
    if (this.faults !== undefined) {
      const active = this.faults.filter((f) => f.untilMs > wallNow);
      if (active.length > 0) state.faults = active.map(describeFault);
    }
    if (this.activation !== undefined) {
      state.activation = { holdTimeoutMs: this.activation.holdTimeoutMs, held: 0, ...(this.activation.threshold === undefined ? {} : { threshold: this.activation.threshold }) };
    }
    return state;
  }
}

/** A service in admin `GET /state` (and `keelson status <service>`). */
export interface ServiceState {
  name: string;
  loadBalancer: ServicePolicy["loadBalancer"];
  policy: ServicePolicy;
  /** Requests of the service in the gateway now. */
  inflight: number;
  endpoints: Array<{
    replicaId: string;
    url: string;
    release: string;
    inflight: number;
    /** Peak-EWMA latency estimate. */
    ewmaMs: number;
    consecutiveFailures: number;
    ejected: boolean;
    /** ISO time the ejection ends. */
    ejectedUntil?: string;
    timesEjected: number;
  }>;
  split?: TrafficSplit;
  breaker?: { state: BreakerState; requests: number; failures: number; opened: number; retryAfterMs?: number };
  bulkhead?: { active: number; queued: number; maxConcurrent: number; maxQueue: number; queueTimeoutMs: number };
  retryBudget: { requests: number; retries: number; available: number };
  /** Faults injected now (`version` as a release id, split labels resolved). */
  faults?: Fault[];
  /** The service may scale to zero; `held`: requests waiting for a replica in this gateway process; `threshold`: held at once before one is asked for (absent: 1). */
  activation?: { holdTimeoutMs: number; held: number; threshold?: number };
}

function describeFault(f: CompiledFault): Fault {
  return {
    id: f.id,
    ...(f.release === undefined ? {} : { version: f.release }),
    share: f.share,
    ...(f.delayMs > 0 ? { delayMs: f.delayMs } : {}),
    ...(f.abortStatus === undefined ? {} : { abortStatus: f.abortStatus }),
    until: new Date(f.untilMs).toISOString(),
  };
}

export interface ServiceTargetsOptions {
  table: RoutingTable;
  /** The targets of the table served until now, whose resilience state carries over. */
  previous: ReadonlyMap<string, ServiceTarget> | undefined;
  /** Policy of a service the table gives none. */
  defaultPolicy: ServicePolicy;
  random: Random;
  metrics: GatewayMetrics;
  stats: LiveStats;
  now: number;
  /** The state of an endpoint, reused across tables (pool included); undefined skips an unusable one. */
  endpoint(service: string, endpoint: Endpoint): EndpointState | undefined;
  /** Where a match rule that cannot be used (its regex does not compile) is reported, once. */
  log?: GatewayLogger;
  /** Wall clock (epoch ms) now, to drop faults already over (default Date.now()). */
  wallNow?: number;
}

/**
 * Builds the targets of a table. The breaker, bulkhead, retry budget and ejection state of a
 * service carry over when its policy for them is unchanged, so a new table (a weight change, a
 * replica more) neither closes an open breaker nor forgets the budget.
 */
export function buildServiceTargets(options: ServiceTargetsOptions): Map<string, ServiceTarget> {
  const { table, previous, now } = options;
  const targets = new Map<string, ServiceTarget>();
  for (const s of table.services) {
    const policy = s.policy ?? options.defaultPolicy;
    const before = previous?.get(s.name);
    const endpoints: EndpointState[] = [];
    for (const e of s.endpoints) {
      const state = options.endpoint(s.name, e);
      if (state !== undefined) endpoints.push(state);
    }
    const same = <K extends keyof ServicePolicy>(key: K) => before !== undefined && JSON.stringify(before.policy[key]) === JSON.stringify(policy[key]);
    const outliers = same("outlierEjection") ? before!.outliers : new OutlierDetector(policy.outlierEjection);
    outliers.release(endpoints, now);
    const target = new ServiceTarget(s.name, policy, s.split, endpoints, {
      metrics: options.metrics.service(s.name),
      balancer: same("loadBalancer") ? before!.balancer : createLoadBalancer(policy.loadBalancer, options.random),
      outliers,
      breaker: policy.circuitBreaker === undefined ? undefined : same("circuitBreaker") ? before!.breaker : new CircuitBreaker(policy.circuitBreaker),
      bulkhead: policy.bulkhead === undefined ? undefined : same("bulkhead") ? before!.bulkhead : new Bulkhead(policy.bulkhead),
      budget: same("retries") ? before!.budget : new RetryBudget({ budgetPercent: policy.retries.budgetPercent, minPerSecond: policy.retries.minPerSecond }),
      patterns: before?.patterns,
      log: options.log,
      callPolicy: CallPolicy.compile(s.callers),
      faults: compileFaults({
        service: s.name,
        faults: s.faults,
        split: s.split,
        stats: options.stats,
        metrics: options.metrics,
        wallNow: options.wallNow ?? Date.now(),
        log: options.log ?? silentLogger,
      }),
      activation: s.activation,
    });
    // Round-robin carries on where it was rather than starting every table at the first replica.
    if (before !== undefined) target.all.available.cursor = before.all.available.cursor;
    targets.set(s.name, target);
  }
  return targets;
}
