// Tests for the requests held while a service scales from zero: the cap, episodes as the
// activator sees them, and which tables wake the held requests.
import { describe, expect, it } from "vitest";
import { HeldRequests } from "./held-requests.js";
import type { ServiceActivator } from "./service-activator.js";

function recordingActivator(): ServiceActivator & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    holding: (s) => void calls.push(`holding ${s}`),
    released: (s) => void calls.push(`released ${s}`),
    stop: async () => undefined,
  };
}

const request = () => {
  const r = { woken: 0, wake: () => void r.woken++ };
  return r;
};

describe("HeldRequests", () => {
  it("reports one episode per service however many requests it holds, and ends it with the last", () => {
    const activator = recordingActivator();
    const holds = new HeldRequests(10, activator);
    const [a, b, c] = [request(), request(), request()];
    expect(holds.hold("orders", a)).toBe(true);
    expect(holds.hold("orders", b)).toBe(true);
    expect(holds.hold("billing", c)).toBe(true);
    expect(holds.count("orders")).toBe(2);
    holds.leave("orders", a);
    // Leaving twice, or a request never held, changes nothing.
    holds.leave("orders", a);
    holds.leave("orders", request());
    expect(activator.calls).toEqual(["holding orders", "holding billing"]);
    holds.leave("orders", b);
    expect(activator.calls).toEqual(["holding orders", "holding billing", "released orders"]);
    // The next request starts a new episode.
    holds.hold("orders", request());
    expect(activator.calls.at(-1)).toBe("holding orders");
  });

  it("refuses requests beyond the cap per service", () => {
    const holds = new HeldRequests(3, undefined);
    for (let i = 0; i < 3; i++) expect(holds.hold("orders", request())).toBe(true);
    expect(holds.hold("orders", request())).toBe(false);
    expect(holds.hold("billing", request())).toBe(true);
    expect(holds.count("orders")).toBe(3);
  });

  it("wakes the requests of a service once a table gives it an endpoint, drops it from the table or ends its scale to zero", () => {
    const activator = recordingActivator();
    const holds = new HeldRequests(10, activator);
    const [orders, billing, search, gone] = [request(), request(), request(), request()];
    holds.hold("orders", orders);
    holds.hold("billing", billing);
    holds.hold("search", search);
    holds.hold("gone", gone);
    const zero = { endpoints: [], activation: { holdTimeoutMs: 1_000 } };
    holds.tableChanged(
      new Map([
        ["orders", { endpoints: [{}], activation: { holdTimeoutMs: 1_000 } }],
        ["billing", zero],
        ["search", { endpoints: [], activation: undefined }],
      ]),
    );
    expect([orders.woken, billing.woken, search.woken, gone.woken]).toEqual([1, 0, 1, 1]);
    expect(holds.count("orders")).toBe(0);
    expect(holds.count("billing")).toBe(1);
    expect(activator.calls.filter((c) => c.startsWith("released")).sort()).toEqual(["released gone", "released orders", "released search"]);
    holds.wakeAll();
    expect(billing.woken).toBe(1);
    expect(activator.calls.at(-1)).toBe("released billing");
  });

  it("asks for a replica only once the activation threshold is held at once, and not at all for an episode below it", () => {
    let now = 0;
    const activator = recordingActivator();
    const holds = new HeldRequests(10, activator, { now: () => now });
    holds.tableChanged(new Map([["orders", { endpoints: [], activation: { holdTimeoutMs: 1_000, threshold: 3, windowMs: 10_000 } }]]));
    const [a, b, c] = [request(), request(), request()];
    holds.hold("orders", a);
    holds.hold("orders", b);
    expect(activator.calls).toEqual([]);
    // Two requests gave up (timed out): the episode ends without an ask, and without a release.
    holds.leave("orders", a);
    holds.leave("orders", b);
    expect(activator.calls).toEqual([]);
    // A window later those two no longer count: two held at once are still below 3.
    now = 10_000;
    for (const r of [a, b]) holds.hold("orders", r);
    expect(activator.calls).toEqual([]);
    holds.hold("orders", c);
    expect(activator.calls).toEqual(["holding orders"]);
    holds.hold("orders", request());
    expect(activator.calls).toEqual(["holding orders"]);
    holds.wakeAll();
    expect(activator.calls).toEqual(["holding orders", "released orders"]);
  });

  it("asks at once when a new table lowers the threshold to what already waits, and at the cap when the threshold is above it", () => {
    const activator = recordingActivator();
    const holds = new HeldRequests(2, activator);
    holds.tableChanged(new Map([["orders", { endpoints: [], activation: { holdTimeoutMs: 1_000, threshold: 5 } }]]));
    holds.hold("orders", request());
    expect(activator.calls).toEqual([]);
    holds.hold("orders", request());
    expect(activator.calls).toEqual(["holding orders"]);

    const other = recordingActivator();
    const more = new HeldRequests(10, other);
    more.tableChanged(new Map([["orders", { endpoints: [], activation: { holdTimeoutMs: 1_000, threshold: 4 } }]]));
    more.hold("orders", request());
    more.hold("orders", request());
    expect(other.calls).toEqual([]);
    more.tableChanged(new Map([["orders", { endpoints: [], activation: { holdTimeoutMs: 1_000, threshold: 2 } }]]));
    expect(other.calls).toEqual(["holding orders"]);
  });
});

describe("HeldRequests arrivals", () => {
  const zeroTable = (activation: { holdTimeoutMs: number; threshold?: number; windowMs?: number }) => new Map([["orders", { endpoints: [], activation }]]);

  it("wakes a service for a client that sends one request at a time, again after each 503 (regression: it never woke)", () => {
    let now = 0;
    const activator = recordingActivator();
    const holds = new HeldRequests(10, activator, { now: () => now });
    // activation 3, a 30 s hold: the routing publisher's window is 3 hold timeouts.
    holds.tableChanged(zeroTable({ holdTimeoutMs: 30_000, threshold: 3, windowMs: 90_000 }));
    for (let i = 0; i < 2; i++) {
      const r = request();
      expect(holds.hold("orders", r)).toBe(true);
      now += 30_000;
      // The hold timeout: the client gets its 503, and retries 500 ms later.
      holds.leave("orders", r);
      now += 500;
    }
    expect(activator.calls).toEqual([]);
    expect(holds.arrivals()).toEqual([{ service: "orders", arrivals: 2, windowMs: 90_000 }]);
    holds.hold("orders", request());
    expect(activator.calls).toEqual(["holding orders"]);
    expect(holds.arrivals()).toEqual([{ service: "orders", arrivals: 3, windowMs: 90_000 }]);
  });

  it("counts only arrivals within the window, and starts counting anew once the service had an endpoint", () => {
    let now = 0;
    const activator = recordingActivator();
    const holds = new HeldRequests(10, activator, { now: () => now });
    holds.tableChanged(zeroTable({ holdTimeoutMs: 1_000, threshold: 3, windowMs: 10_000 }));
    const a = request();
    holds.hold("orders", a);
    holds.leave("orders", a);
    now = 6_000;
    const b = request();
    holds.hold("orders", b);
    holds.leave("orders", b);
    // The first arrival is 10 s old at 10 s: out of the window, so the third makes only two.
    now = 10_000;
    holds.hold("orders", request());
    expect(activator.calls).toEqual([]);
    expect(holds.arrivals()).toEqual([{ service: "orders", arrivals: 2, windowMs: 10_000 }]);
    now = 16_001;
    expect(holds.arrivals()).toEqual([{ service: "orders", arrivals: 1, windowMs: 10_000 }]);

    // A replica came: what woke it does not count toward the next time at zero.
    holds.tableChanged(new Map([["orders", { endpoints: [{}], activation: { holdTimeoutMs: 1_000, threshold: 3, windowMs: 10_000 } }]]));
    expect(holds.arrivals()).toEqual([]);
    holds.tableChanged(zeroTable({ holdTimeoutMs: 1_000, threshold: 3, windowMs: 10_000 }));
    const c = request();
    holds.hold("orders", c);
    holds.leave("orders", c);
    expect(holds.arrivals()).toEqual([{ service: "orders", arrivals: 1, windowMs: 10_000 }]);
    now = 26_001;
    expect(holds.arrivals()).toEqual([]);
  });

  it("counts requests refused at the cap, and uses max(10 s, threshold x hold timeout) when the table gives no window", () => {
    let now = 0;
    const holds = new HeldRequests(1, undefined, { now: () => now });
    holds.tableChanged(zeroTable({ holdTimeoutMs: 5_000, threshold: 4 }));
    expect(holds.hold("orders", request())).toBe(true);
    expect(holds.hold("orders", request())).toBe(false);
    expect(holds.arrivals()).toEqual([{ service: "orders", arrivals: 2, windowMs: 20_000 }]);
    holds.tableChanged(zeroTable({ holdTimeoutMs: 1_000 }));
    expect(holds.arrivals()).toEqual([{ service: "orders", arrivals: 2, windowMs: 10_000 }]);
    now = 10_000;
    expect(holds.arrivals()).toEqual([]);
  });
});
