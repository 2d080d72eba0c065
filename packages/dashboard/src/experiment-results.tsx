// An experiment flag's results (GET /v1/experiments/:flag/results): users and conversions per
// variant, each treatment's lift over the control with its always-valid interval drawn around
// zero, the verdict, and the sample-ratio-mismatch warning that voids them.
import { useCallback, useState } from "preact/hooks";
import { ApiError } from "./api.js";
import type { ExperimentResults, FlagsApi } from "./flags-api.js";
import { confidenceOf, formatPercent, formatPoints, intervalScale, placeInterval } from "./interval-scale.js";
import { useLiveLoad } from "./use-live.js";

export interface ExperimentSectionProps {
  calls: FlagsApi;
  flagKey: string;
  revision: number;
  onUnauthorized: () => void;
}

/** The metrics a results request refused to choose between (several conversion events seen). */
function metricsOf(err: unknown): string[] | undefined {
  if (!(err instanceof ApiError) || err.status !== 400) return undefined;
  const metrics = (err.details as { metrics?: unknown } | undefined)?.metrics;
  return Array.isArray(metrics) && metrics.every((m) => typeof m === "string") && metrics.length > 0 ? (metrics as string[]) : undefined;
}

export function ExperimentSection(props: ExperimentSectionProps) {
  const { calls, flagKey, revision, onUnauthorized } = props;
  const [metric, setMetric] = useState<string | undefined>(undefined);
  // Exposures and conversions are not events of the log: Refresh (or the safety poll) reads them.
  const [tick, setTick] = useState(0);
  const load = useCallback(
    async (signal: AbortSignal) => {
      try {
        return await calls.results(flagKey, metric, signal);
      } catch (err) {
        const metrics = metric === undefined ? metricsOf(err) : undefined;
        if (metrics?.[0] === undefined) throw err;
        return calls.results(flagKey, metrics[0], signal);
      }
    },
    // tick: a new function is a new load.
    [calls, flagKey, metric, tick],
  );
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);

  return (
    <section aria-labelledby="experiment-heading" class="experiment">
      <div class="title">
        <h2 id="experiment-heading">Experiment results</h2>
        <p class="meta" aria-live="polite">
          {error ? <span class="error">Not updated: {error.message}</span> : updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : "Loading…"}{" "}
          <button type="button" class="quiet" onClick={() => setTick((t) => t + 1)}>
            Refresh
          </button>
        </p>
      </div>
      {data === undefined ? null : (
        <>
          {data.metrics.length > 1 ? (
            <p class="filters">
              <label>
                Metric{" "}
                <select value={data.metric} onChange={(e) => setMetric((e.currentTarget as HTMLSelectElement).value)}>
                  {data.metrics.map((m) => (
                    <option key={m} value={m}>
                      {m}
                    </option>
                  ))}
                </select>
              </label>
            </p>
          ) : null}
          <Results results={data} />
        </>
      )}
    </section>
  );
}

function Results(props: { results: ExperimentResults }) {
  const r = props.results;
  const confidence = confidenceOf(r.alpha);
  const half = intervalScale(r.comparisons.map((c) => c.absolute));
  const users = r.variants.reduce((n, v) => n + v.users, 0);
  return (
    <>
      <p data-field="verdict" class={`experiment-verdict ${r.srm.broken ? "broken" : r.verdict === "treatment wins" ? "win" : r.verdict === "control wins" ? "loss" : "open"}`}>
        Verdict: <strong>{r.verdict}</strong>
        {r.winner === undefined ? null : <> ({r.winner})</>}
        <span class="muted">
          {" "}
          · metric {r.metric === undefined ? <em>none yet</em> : <code>{r.metric}</code>} · control <code>{r.control}</code> · {users} users
        </span>
      </p>
      {r.srm.broken ? (
        <p class="experiment-srm" role="alert" data-field="srm">
          <strong>Sample ratio mismatch.</strong> Users per variant do not match the split (expected {expectedShares(r.srm.expected)}; χ² = {r.srm.chiSquared.toFixed(1)}, p = {formatP(r.srm.p)}). Assignment or exposure logging is
          broken, so the lift below cannot be trusted.
        </p>
      ) : null}
      <div class="table-wrap">
        <table class="experiment-variants">
          <caption class="flag-sr">Users and conversions per variant</caption>
          <thead>
            <tr>
              <th scope="col">Variant</th>
              <th scope="col">Users</th>
              <th scope="col">Converted</th>
              <th scope="col">Conversion</th>
              <th scope="col">Events</th>
            </tr>
          </thead>
          <tbody>
            {r.variants.map((v) => (
              <tr key={v.variant} data-variant={v.variant}>
                <th scope="row">
                  <code>{v.variant}</code>
                  {v.variant === r.control ? <span class="muted"> (control)</span> : null}
                </th>
                <td data-field="users">{v.users}</td>
                <td data-field="conversions">{v.conversions}</td>
                <td data-field="rate">
                  {formatPercent(v.rate)}
                  {v.ci === undefined ? null : (
                    <span class="muted">
                      {" "}
                      ({formatPercent(v.ci.low)}–{formatPercent(v.ci.high)})
                    </span>
                  )}
                </td>
                <td data-field="events">{v.events}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Lift over {r.control}</h3>
      <p class="hint">
        Bars show each difference in conversion with its {confidence} always-valid interval (it stays valid however often you look). An interval wholly right of zero means the treatment wins.
      </p>
      {r.comparisons.length === 0 ? <p>No treatment to compare yet.</p> : null}
      <ul class="experiment-lifts">
        {r.comparisons.map((c) => (
          <li key={c.variant} data-comparison={c.variant}>
            <p class="experiment-lift-text" data-field="lift">
              <code>{c.variant}</code> vs <code>{c.control}</code>:{" "}
              {c.absolute === undefined ? (
                <span class="muted">no lift until both have users</span>
              ) : (
                <>
                  <strong>{formatPoints(c.absolute.estimate)}</strong> <span data-field="interval">({confidence} interval {formatPoints(c.absolute.low)} to {formatPoints(c.absolute.high)})</span>
                  {c.relative === undefined ? null : (
                    <span class="muted">
                      {" "}
                      · relative {formatPercent(c.relative.estimate, { signed: true })} ({formatPercent(c.relative.low, { signed: true })} to {formatPercent(c.relative.high, { signed: true })})
                    </span>
                  )}{" "}
                  · {c.verdict}
                </>
              )}
            </p>
            {c.absolute === undefined ? null : <IntervalBar low={c.absolute.low} high={c.absolute.high} estimate={c.absolute.estimate} half={half} label={`${c.variant} vs ${c.control}`} confidence={confidence} />}
          </li>
        ))}
      </ul>
      {r.notes.length > 0 ? (
        <ul class="experiment-notes">
          {r.notes.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      ) : null}
    </>
  );
}

function IntervalBar(props: { low: number; high: number; estimate: number; half: number; label: string; confidence: string }) {
  const { half, label, confidence } = props;
  const p = placeInterval(props, half);
  const axisDigits = half * 100 < 1 ? 2 : 1;
  const where = p.side === "above" ? "wholly above zero" : p.side === "below" ? "wholly below zero" : "across zero";
  return (
    <div class="interval" role="img" aria-label={`${label}: ${formatPoints(props.estimate)}, ${confidence} interval ${formatPoints(props.low)} to ${formatPoints(props.high)}, ${where}`}>
      <div class="interval-track">
        <span class="interval-zero" style={{ left: `${p.zero}%` }} />
        <span class={`interval-bar ${p.side}${p.clippedLow ? " open-low" : ""}${p.clippedHigh ? " open-high" : ""}`} style={{ left: `${p.low}%`, width: `${Math.max(0, p.high - p.low)}%` }} />
        <span class="interval-estimate" style={{ left: `${p.estimate}%` }} />
      </div>
      <div class="interval-axis" aria-hidden="true">
        <span>{formatPoints(-half, axisDigits)}</span>
        <span>0</span>
        <span>{formatPoints(half, axisDigits)}</span>
      </div>
    </div>
  );
}

function expectedShares(expected: Record<string, number>): string {
  return Object.entries(expected)
    .map(([v, share]) => `${v} ${formatPercent(share)}`)
    .join(", ");
}

function formatP(p: number): string {
  return p < 0.0001 ? "< 0.0001" : p.toPrecision(2);
}
