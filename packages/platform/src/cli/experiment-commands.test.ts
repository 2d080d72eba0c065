// The human form of `keelson experiment results`: the gateway block with its always-valid
// difference and verdict when the counts run from the experiment's start, and without either
// (the reason instead) when it is descriptive.
import { describe, expect, it } from "vitest";
import { analyzeErrorRatios, analyzeExperiment, describeErrorRatios, type ExperimentGatewayResults, type ExperimentResults, type VariantErrorStats } from "../flags/index.js";
import { formatExperimentResults } from "./experiment-commands.js";

// Colors are off when stdout is not a TTY; stripping keeps the test independent of that.
// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, "");

const requests = [
  { variant: "v1", requests: 770, errors: 0 },
  { variant: "v2", requests: 830, errors: 166 },
];

function results(gateway: ExperimentGatewayResults): ExperimentResults {
  const { variants, ...rest } = analyzeExperiment(
    [
      { variant: "v1", users: 0, conversions: 0 },
      { variant: "v2", users: 0, conversions: 0 },
    ],
    "v1",
    { v1: 1, v2: 1 },
  );
  return { flag: "checkout-v2", metrics: [], control: "v1", ...rest, variants: variants.map((v) => ({ ...v, events: 0, valueSum: 0 })), weightsFrom: "fractional", unattributed: 0, switched: 0, userCap: 200_000, usersDropped: 0, gateway, notes: [] };
}

const withLatency = (stats: VariantErrorStats[]) => stats.map((v) => ({ ...v, abandoned: 0, p50: v.variant === "v1" ? 0.0021 : 0.046, p99: v.variant === "v1" ? 0.0098 : 0.098 }));
const note = "counts requests, not users: one user's requests are not independent, so the intervals are narrower than they should be when users send many requests";

describe("formatExperimentResults, gateway block", () => {
  it("shows the difference against the control and the verdict when the counts run from the experiment's start", () => {
    const a = analyzeErrorRatios(requests, "v1");
    const text = plain(
      formatExperimentResults(
        results({ mode: "sequential", alpha: a.alpha, routes: ["/checkout"], startedAt: "2026-11-20T09:10:00.000Z", since: "2026-11-20T09:10:00.000Z", variants: withLatency(a.variants), comparisons: a.comparisons, verdict: a.verdict, winner: "v1", notes: [note] }),
      ),
    );
    expect(text).toContain("gateway: requests routed by the flag on /checkout since the experiment started 2026-11-20 09:10:00 UTC");
    expect(text).toMatch(/VARIANT +REQUESTS +ERRORS +ERROR RATIO +P50 +P99 +ERROR RATIO vs v1 \(95%, always valid\)/);
    expect(text).toMatch(/^v2 +830 +166 +20\.00% \(17\.4%-22\.9%\) +46 ms +98 ms +\+20\.00 pp \(\+\d+\.\d\d pp to \+\d+\.\d\d pp\)$/m);
    expect(text).toContain(`note: ${note}`);
    expect(text).toContain("gateway verdict (error ratio): control wins (v1, fewer errors)");
  });

  it("shows only the counts and Wilson intervals, and the reason for no verdict, when descriptive", () => {
    const reason = "the metric store holds data only since 2026-11-20T10:00:00Z (it is kept in memory from the control plane's start), after the experiment started at 2026-11-20T09:00:00Z: no verdict";
    const text = plain(
      formatExperimentResults(
        results({ mode: "descriptive", reason, alpha: 0.05, routes: ["/checkout"], startedAt: "2026-11-20T09:00:00.000Z", since: "2026-11-20T10:00:00.000Z", variants: withLatency(describeErrorRatios(requests)), comparisons: [], notes: [note] }),
      ),
    );
    expect(text).toContain("gateway (descriptive): requests routed by the flag on /checkout since 2026-11-20 10:00:00 UTC, the oldest the control plane's metric store holds");
    expect(text).not.toContain("ERROR RATIO vs v1");
    expect(text).toMatch(/^v2 +830 +166 +20\.00% \(17\.4%-22\.9%\) +46 ms +98 ms$/m);
    expect(text).toContain(`gateway verdict (error ratio): descriptive only: ${reason}`);
    expect(text).not.toMatch(/wins/);
  });
});
