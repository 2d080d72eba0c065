// The RED table over a store fed with two services' scrapes.
import { describe, expect, it } from "vitest";
import { createMetricStore, GATEWAY_REQUESTS, GATEWAY_REQUEST_DURATION } from "./metric-store.js";
import { summarizeRed } from "./red-summary.js";

const T0 = Date.UTC(2026, 5, 1);

function store() {
  const s = createMetricStore({ now: () => T0 + 60_000 });
  for (let i = 0; i <= 6; i++) {
    const R = GATEWAY_REQUESTS;
    const D = GATEWAY_REQUEST_DURATION;
    s.ingest(
      [
        `# TYPE ${R} counter`,
        `${R}{service="orders",version="v1",replica="orders-1",code_class="2xx"} ${90 * i}`,
        `${R}{service="orders",version="v1",replica="orders-1",code_class="5xx"} ${10 * i}`,
        `${R}{service="orders",version="v2",replica="orders-2",code_class="2xx"} ${20 * i}`,
        `${R}{service="users",version="v1",replica="users-1",code_class="2xx"} ${30 * i}`,
        `# TYPE ${D} histogram`,
        `${D}_bucket{service="orders",version="v1",le="0.1"} ${50 * i}`,
        `${D}_bucket{service="orders",version="v1",le="1"} ${100 * i}`,
        `${D}_bucket{service="orders",version="v1",le="+Inf"} ${100 * i}`,
      ].join("\n"),
      { instance: "gw", at: T0 + i * 10_000 },
    );
  }
  return s;
}

describe("summarizeRed", () => {
  it("gives rate, error share and percentiles per service, busiest first", () => {
    const rows = summarizeRed(store(), { window: "1m" });
    expect(rows.map((r) => [r.labels.service, r.requestRate, r.errorRatio, r.p50])).toEqual([
      ["orders", 12, 10 / 120, 0.1],
      ["users", 3, 0, undefined],
    ]);
    expect(rows[0]?.p90).toBeCloseTo(0.1 + 0.9 * (40 / 50), 9);
  });

  it("groups by version within a service, and leaves latency out when grouping by replica", () => {
    const byVersion = summarizeRed(store(), { window: "1m", by: ["version"], where: { service: "orders" } });
    expect(byVersion.map((r) => [r.labels.version, r.requestRate, r.errorRatio, r.p99 !== undefined])).toEqual([
      ["v1", 10, 0.1, true],
      ["v2", 2, 0, false],
    ]);
    const byReplica = summarizeRed(store(), { window: "1m", by: ["replica"] });
    expect(byReplica.map((r) => [r.labels.replica, r.p50])).toEqual([
      ["orders-1", undefined],
      ["users-1", undefined],
      ["orders-2", undefined],
    ]);
  });
});
