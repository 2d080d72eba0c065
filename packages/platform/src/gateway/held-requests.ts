// Scale from zero, the data-plane side: requests for a service that may scale to zero and has no
// endpoint wait here (at most `maxPerService` per service and process) until a routing table
// brings one. The first request held starts a hold episode; it is reported to the activator,
// which asks the control plane for a replica, once the activation threshold is held (1 unless
// the table says otherwise). The episode ends when no request is held any more.
import type { ServiceActivator } from "./service-activator.js";

/** A request waiting for an endpoint (the exchange). */
export interface HeldRequest {
  /** The service has an endpoint now (or changed so that holding no longer applies): go on. */
  wake(): void;
}

/** What a new table tells the holds about a service: whether its requests must still wait. */
export interface HoldTarget {
  readonly endpoints: { readonly length: number };
  /** Present while the service may scale to zero; `threshold`: requests held at once before a replica is asked for. */
  readonly activation: { readonly holdTimeoutMs: number; readonly threshold?: number | undefined } | undefined;
}

export class HeldRequests {
  private readonly byService = new Map<string, Set<HeldRequest>>();
  /** Services whose current episode was reported to the activator. */
  private readonly reported = new Set<string>();
  /** Activation thresholds above 1, from the last table. */
  private readonly thresholds = new Map<string, number>();

  constructor(
    private readonly maxPerService: number,
    private readonly activator: ServiceActivator | undefined,
  ) {}

  /** Holds `request`; false when `service` already holds `maxPerService` requests. */
  hold(service: string, request: HeldRequest): boolean {
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
    this.thresholds.clear();
    for (const [service, target] of services) {
      const threshold = target.activation?.threshold;
      if (threshold !== undefined && threshold > 1) this.thresholds.set(service, threshold);
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

  private end(service: string, held: Set<HeldRequest>): void {
    this.byService.delete(service);
    if (this.reported.delete(service)) this.activator?.released(service);
    for (const request of held) request.wake();
  }

  /** Reports the episode once enough requests wait; a threshold above the cap is met at the cap. */
  private reportIfDue(service: string, held: ReadonlySet<HeldRequest>): void {
    if (this.reported.has(service)) return;
    if (held.size < Math.min(this.thresholds.get(service) ?? 1, this.maxPerService)) return;
    this.reported.add(service);
    this.activator?.holding(service);
  }
}
