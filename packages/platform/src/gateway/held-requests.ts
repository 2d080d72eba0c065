// Scale from zero, the data-plane side: requests for a service that may scale to zero and has no
// endpoint wait here (at most `maxPerService` per service and process) until a routing table
// brings one. The first request held starts a hold episode; it is reported to the activator,
// which asks the control plane for a replica, once the activation threshold is held at once or
// has arrived within the activation window (1 unless the table says otherwise). The episode
// ends when no request is held any more; the arrivals are counted on until the service gets an
// endpoint, and `arrivals()` hands them to the gateway's `/stats`, where the autoscaler adds up
// those of every process and gateway.
import { activationWindowMs } from "@keelson/protocol";
import type { ServiceActivator } from "./service-activator.js";

/** A request waiting for an endpoint (the exchange). */
export interface HeldRequest {
  /** The service has an endpoint now (or changed so that holding no longer applies): go on. */
  wake(): void;
}

/** What a new table tells the holds about a service: whether its requests must still wait. */
export interface HoldTarget {
  readonly endpoints: { readonly length: number };
  /**
   * Present while the service may scale to zero; `threshold`: requests held at once, or arrived
   * within `windowMs`, before a replica is asked for.
   */
  readonly activation: { readonly holdTimeoutMs: number; readonly threshold?: number | undefined; readonly windowMs?: number | undefined } | undefined;
}

/** Requests that arrived for a service with no endpoint (held, or refused at the cap) within its activation window. */
export interface HeldArrivals {
  service: string;
  arrivals: number;
  windowMs: number;
}

/** Arrival times kept per service, at least: enough to tell any threshold the schema allows. */
const ARRIVALS_KEPT = 1_000;

interface Activation {
  threshold: number;
  windowMs: number;
}

export interface HeldRequestsOptions {
  /** Monotonic clock in ms (default performance.now): arrival times. */
  now?: () => number;
}

export class HeldRequests {
  private readonly byService = new Map<string, Set<HeldRequest>>();
  /** Services whose current episode was reported to the activator. */
  private readonly reported = new Set<string>();
  /** Threshold and window per service that may scale to zero, from the last table. */
  private readonly activations = new Map<string, Activation>();
  /** Arrival times per service, oldest first, since it last had an endpoint (only those within its window are counted). */
  private readonly arrived = new Map<string, number[]>();
  private readonly now: () => number;

  constructor(
    private readonly maxPerService: number,
    private readonly activator: ServiceActivator | undefined,
    options: HeldRequestsOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * Holds `request`; false when `service` already holds `maxPerService` requests. Either way the
   * request counts as an arrival.
   */
  hold(service: string, request: HeldRequest): boolean {
    this.arrive(service);
    let held = this.byService.get(service);
    if (held === undefined) {
      if (this.maxPerService < 1) return false;
      this.byService.set(service, (held = new Set()));
    } else if (held.size >= this.maxPerService) {
      return false;
    }
    held.add(request);
    this.reportIfDue(service, held);
    return true;
  }

  /** A held request stops waiting (timed out, the client left); ends the episode when it was the last. */
  leave(service: string, request: HeldRequest): void {
    const held = this.byService.get(service);
    if (held === undefined || !held.delete(request)) return;
    if (held.size > 0) return;
    this.byService.delete(service);
    if (this.reported.delete(service)) this.activator?.released(service);
  }

  /**
   * After a new routing table: wakes every request of a service that now has an endpoint, no
   * longer may scale to zero, or left the table (those then get their answer at once).
   */
  tableChanged(services: ReadonlyMap<string, HoldTarget>): void {
    this.activations.clear();
    for (const [service, target] of services) {
      if (target.activation === undefined) continue;
      this.activations.set(service, { threshold: target.activation.threshold ?? 1, windowMs: activationWindowMs(target.activation) });
    }
    // Arrivals count toward waking a service at zero: once it has an endpoint (or may no longer
    // scale to zero, or left the table) they have done their part, and the next time at zero counts anew.
    for (const service of this.arrived.keys()) {
      const target = services.get(service);
      if (target === undefined || target.activation === undefined || target.endpoints.length > 0) this.arrived.delete(service);
    }
    if (this.byService.size === 0) return;
    for (const [service, held] of this.byService) {
      const target = services.get(service);
      if (target !== undefined && target.endpoints.length === 0 && target.activation !== undefined) {
        // A lowered threshold may be met by the requests already waiting.
        this.reportIfDue(service, held);
        continue;
      }
      this.end(service, held);
    }
  }

  /** Wakes every held request (the gateway stops: they get their answer now rather than at the drain's end). */
  wakeAll(): void {
    for (const [service, held] of this.byService) this.end(service, held);
  }

  /** Requests of `service` held now. */
  count(service: string): number {
    return this.byService.get(service)?.size ?? 0;
  }

  /**
   * Per service with any, the requests that arrived within its activation window while it had
   * no endpoint (at most max(1000, threshold) are counted), by service name.
   */
  arrivals(): HeldArrivals[] {
    const out: HeldArrivals[] = [];
    for (const service of this.arrived.keys()) {
      const arrivals = this.recent(service);
      if (arrivals > 0) out.push({ service, arrivals, windowMs: this.activationOf(service).windowMs });
    }
    return out.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  }

  private end(service: string, held: Set<HeldRequest>): void {
    this.byService.delete(service);
    if (this.reported.delete(service)) this.activator?.released(service);
    for (const request of held) request.wake();
  }

  /**
   * Reports the episode once enough requests wait at once (a threshold above the cap is met at
   * the cap) or enough have arrived within the window: a client that sends one request at a
   * time and sends it again after each 503 never has two waiting, but adds up over the window.
   */
  private reportIfDue(service: string, held: ReadonlySet<HeldRequest>): void {
    if (this.reported.has(service)) return;
    const { threshold } = this.activationOf(service);
    if (held.size < Math.min(threshold, this.maxPerService) && this.recent(service) < threshold) return;
    this.reported.add(service);
    this.activator?.holding(service);
  }

  private activationOf(service: string): Activation {
    return this.activations.get(service) ?? { threshold: 1, windowMs: activationWindowMs({ holdTimeoutMs: 0 }) };
  }

  private arrive(service: string): void {
    let times = this.arrived.get(service);
    if (times === undefined) this.arrived.set(service, (times = []));
    times.push(this.now());
    const kept = Math.max(ARRIVALS_KEPT, this.activationOf(service).threshold);
    if (times.length > kept) times.splice(0, times.length - kept);
  }

  /** Arrivals of `service` within its window; older ones are dropped (and the service, when none is left). */
  private recent(service: string): number {
    const times = this.arrived.get(service);
    if (times === undefined) return 0;
    const since = this.now() - this.activationOf(service).windowMs;
    let old = 0;
    while (old < times.length && times[old]! <= since) old++;
    if (old > 0) times.splice(0, old);
    if (times.length === 0) this.arrived.delete(service);
    return times.length;
  }
}
