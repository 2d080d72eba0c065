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
    const activator = recordingActivator();
    const holds = new HeldRequests(10, activator);
    holds.tableChanged(new Map([["orders", { endpoints: [], activation: { holdTimeoutMs: 1_000, threshold: 3 } }]]));
    const [a, b, c] = [request(), request(), request()];
    holds.hold("orders", a);
    holds.hold("orders", b);
    expect(activator.calls).toEqual([]);
    // Two requests gave up (timed out): the episode ends without an ask, and without a release.
    holds.leave("orders", a);
    holds.leave("orders", b);
    expect(activator.calls).toEqual([]);
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
