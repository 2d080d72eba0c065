// Picks the endpoint for one attempt, in O(1): power of two choices over peak-EWMA latency ×
// in-flight requests (Linkerd's default), round-robin, or least-request (two choices over
// in-flight requests, as Envoy does it).
import type { ServicePolicy } from "@keelson/protocol";
import type { PeakEwma } from "./peak-ewma.js";
import type { Random } from "./random.js";

export type LoadBalancerKind = ServicePolicy["loadBalancer"];

/** What a balancer reads from an endpoint. */
export interface Balanceable {
  readonly inflight: number;
  readonly ewma: PeakEwma;
}

/** The endpoints a pick chooses from, with the round-robin position that belongs to them. */
export interface PickList<T> {
  readonly items: readonly T[];
  cursor: number;
}

export interface LoadBalancer {
  readonly kind: LoadBalancerKind;
  /**
   * One endpoint of `list`, or undefined when it is empty. `avoid` (the endpoint that just
   * failed) is only chosen when it is the only one.
   */
  pick<T extends Balanceable>(list: PickList<T>, now: number, avoid?: T): T | undefined;
}

/**
 * @example
 * const lb = createLoadBalancer("p2c-ewma", createSeededRandom(1));
 * lb.pick({ items: endpoints, cursor: 0 }, performance.now());
 */
export function createLoadBalancer(kind: LoadBalancerKind, random: Random): LoadBalancer {
  switch (kind) {
    case "p2c-ewma":
      return new TwoChoices(kind, random, ewmaLoad);
    case "least-request":
      return new TwoChoices(kind, random, inflightLoad);
    case "round-robin":
      return new RoundRobin();
  }
}

/** Linkerd's load: the latency estimate scaled by the requests already waiting on it. */
function ewmaLoad(e: Balanceable, now: number): number {
  return e.ewma.value(now) * (e.inflight + 1);
}

function inflightLoad(e: Balanceable): number {
  return e.inflight;
}

class TwoChoices implements LoadBalancer {
  constructor(
    readonly kind: LoadBalancerKind,
    private readonly random: Random,
    private readonly load: (e: Balanceable, now: number) => number,
  ) {}

  pick<T extends Balanceable>(list: PickList<T>, now: number, avoid?: T): T | undefined {
    const items = list.items;
    const n = items.length;
    if (n <= 1) return items[0];
    // Two distinct random indices.
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = items[i]!;
    const b = items[j]!;
    if (a === avoid) return b;
    if (b === avoid) return a;
    return this.load(b, now) < this.load(a, now) ? b : a;
  }
}

class RoundRobin implements LoadBalancer {
  readonly kind = "round-robin" as const;

  pick<T extends Balanceable>(list: PickList<T>, _now: number, avoid?: T): T | undefined {
    const items = list.items;
    const n = items.length;
    if (n === 0) return undefined;
    let i = list.cursor;
    if (i >= n) i = 0;
    let e = items[i]!;
    if (e === avoid && n > 1) {
      i = i + 1 === n ? 0 : i + 1;
      e = items[i]!;
    }
    list.cursor = i + 1;
    return e;
  }
}
