// Tests for the three balancers with a seeded random source and a hand-driven clock.
import { describe, expect, it } from "vitest";
import type { Balanceable, PickList } from "./load-balancer.js";
import { createLoadBalancer } from "./load-balancer.js";
import { PeakEwma } from "./peak-ewma.js";
import { createSeededRandom } from "./random.js";

interface Ep extends Balanceable {
  name: string;
  inflight: number;
}

function endpoints(...specs: Array<{ name: string; rtt?: number; inflight?: number }>): PickList<Ep> {
  return {
    cursor: 0,
    items: specs.map((s) => {
      const ewma = new PeakEwma(0);
      if (s.rtt !== undefined) {
        // Bring the estimate to exactly `rtt`: a peak raises it at once, a long quiet spell first lets it fall.
        ewma.value(1_000_000);
        ewma.observe(s.rtt, 1_000_000);
      }
      return { name: s.name, inflight: s.inflight ?? 0, ewma };
    }),
  };
}

const tally = (names: string[]) => names.reduce<Record<string, number>>((acc, n) => ((acc[n] = (acc[n] ?? 0) + 1), acc), {});

describe("p2c-ewma", () => {
  it("never picks the slowest of three, and splits the other two by latency", () => {
    const lb = createLoadBalancer("p2c-ewma", createSeededRandom(1));
    const list = endpoints({ name: "fast", rtt: 1 }, { name: "mid", rtt: 5 }, { name: "slow", rtt: 50 });
    const picks = tally(Array.from({ length: 3_000 }, () => lb.pick(list, 1_000_000)!.name));
    // Each pair is drawn a third of the time; the faster of the pair wins.
    expect(picks["slow"]).toBeUndefined();
    expect(picks["fast"]).toBeGreaterThan(1_800);
    expect(picks["mid"]).toBeGreaterThan(800);
  });

  it("weighs latency by in-flight requests: a fast endpoint with a queue loses", () => {
    const lb = createLoadBalancer("p2c-ewma", createSeededRandom(2));
    const list = endpoints({ name: "fast-busy", rtt: 2, inflight: 9 }, { name: "slower-idle", rtt: 10 });
    // 2 × 10 = 20 > 10 × 1.
    for (let i = 0; i < 20; i++) expect(lb.pick(list, 1_000_000)!.name).toBe("slower-idle");
  });

  it("avoids the endpoint that just failed unless it is the only one", () => {
    const lb = createLoadBalancer("p2c-ewma", createSeededRandom(3));
    const list = endpoints({ name: "a", rtt: 1 }, { name: "b", rtt: 100 });
    const a = list.items[0]!;
    for (let i = 0; i < 20; i++) expect(lb.pick(list, 1_000_000, a)!.name).toBe("b");
    const single = endpoints({ name: "only" });
    expect(lb.pick(single, 0, single.items[0])!.name).toBe("only");
    expect(lb.pick({ items: [], cursor: 0 }, 0)).toBeUndefined();
  });
});

describe("round-robin", () => {
  it("cycles in order and skips the endpoint to avoid", () => {
    const lb = createLoadBalancer("round-robin", Math.random);
    const list = endpoints({ name: "a" }, { name: "b" }, { name: "c" });
    expect(Array.from({ length: 7 }, () => lb.pick(list, 0)!.name)).toEqual(["a", "b", "c", "a", "b", "c", "a"]);
    // Next is "b"; avoiding it gives "c".
    expect(lb.pick(list, 0, list.items[1])!.name).toBe("c");
    expect(lb.pick(list, 0)!.name).toBe("a");
  });
});

describe("least-request", () => {
  it("prefers the endpoint with fewer requests in flight, whatever its latency", () => {
    const lb = createLoadBalancer("least-request", createSeededRandom(4));
    const list = endpoints({ name: "busy", rtt: 1, inflight: 3 }, { name: "idle", rtt: 500, inflight: 0 });
    for (let i = 0; i < 20; i++) expect(lb.pick(list, 1_000_000)!.name).toBe("idle");
    list.items[0]!.inflight = 0;
    list.items[1]!.inflight = 2;
    expect(lb.pick(list, 1_000_000)!.name).toBe("busy");
  });
});
