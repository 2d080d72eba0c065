// The Service view's rollout panel: where the last (or current) rollout is, who gets the traffic,
// the canary steps, every analysis' verdict with its evidence and the per-version charts of error
// ratio and latency, and, once it is over, its outcome and why. Promote and Abort for a token
// that may deploy the service (the API enforces it anyway).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { TrafficSplit } from "@keelson/protocol";
import type { Api } from "./api.js";
import { Chart } from "./chart.js";
import {
  analysisCharts,
  count,
  describeStep,
  isActive,
  millis,
  percent,
  PHASE_WORDS,
  rolloutActions,
  short,
  stepMarks,
  trafficShares,
  type StepMark,
} from "./rollout-summary.js";
import { abort, promote, type AnalysisCheck, type AnalysisEvidence, type AnalysisPhase, type Rollout, type RolloutView } from "./service-api.js";
import "./service-view.css";

const STRATEGY_WORDS: Record<Rollout["strategy"], string> = { canary: "Canary", rolling: "Rolling", blueGreen: "Blue-green", rollback: "Rollback" };
const MARK_WORDS: Record<StepMark, string> = { done: "done", current: "under way", stopped: "stopped here", pending: "to come" };
const CHECK_WORDS: Record<AnalysisCheck["status"], string> = { pass: "pass", fail: "FAIL", watching: "ok so far", "no-data": "no data" };

const pct = (v: number) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;
const ms = (v: number) => `${Math.round(v)} ms`;

export function RolloutPanel(props: { api: Api; name: string; view: RolloutView; split: TrafficSplit | null; release: string | undefined; mayAct: boolean; onChanged: () => void }) {
  const { api, name, view, split, release, mayAct, onChanged } = props;
  const r = view.rollout;
  return (
    <section aria-labelledby="rollout-heading" class="rollout" data-phase={r?.phase} data-strategy={r?.strategy}>
      <h2 id="rollout-heading">Rollout</h2>
      {r === null ? (
        <p>No rollout yet (strategy {view.strategy}).</p>
      ) : (
        <>
          <Head rollout={r} />
          <Outcome rollout={r} />
          <Traffic shares={trafficShares(r, split, release)} />
          {r.strategy === "canary" && view.steps.length > 0 ? <Steps view={view} rollout={r} /> : null}
          {/* Once the rollout is over the buttons go, and the outcome above says what became of it. */}
          {mayAct && isActive(r) ? <RolloutActions key={r.id} api={api} name={name} rollout={r} onChanged={onChanged} /> : null}
          <Analyses rollout={r} />
        </>
      )}
    </section>
  );
}

function Head(props: { rollout: Rollout }) {
  const r = props.rollout;
  return (
    <p class="rollout-head">
      <span class={`phase ${r.phase}`} data-field="phase">
        {PHASE_WORDS[r.phase]}
      </span>{" "}
      <span>
        {STRATEGY_WORDS[r.strategy]}{" "}
        {r.from === undefined ? null : (
          <>
            <code title={r.from}>{short(r.from)}</code> →{" "}
          </>
        )}
        <code title={r.to}>{short(r.to)}</code>
      </span>{" "}
      <span class="muted">
        · started by {r.actor} at <time dateTime={r.startedAt}>{new Date(r.startedAt).toLocaleString()}</time>
        {r.commit === undefined ? null : (
          <>
            {" "}
            · commit <code title={r.commit}>{r.commit.slice(0, 10)}</code>
          </>
        )}
      </span>
    </p>
  );
}

/** How it ended and why (the reason recorded with the rollback), or why it waits. */
function Outcome(props: { rollout: Rollout }) {
  const r = props.rollout;
  switch (r.phase) {
    case "rolled-back":
      return (
        <div class="outcome bad" data-field="outcome">
          <p>
            <strong>
              Rolled back{r.from === undefined ? "" : " to "}
              {r.from === undefined ? null : <code title={r.from}>{short(r.from)}</code>}
            </strong>
            {r.from === undefined ? null : <>: it takes all traffic again.</>}
          </p>
          {r.message === undefined ? null : (
            <p class="why" data-field="why">
              Why: {r.message}
            </p>
          )}
        </div>
      );
    case "failed":
      return (
        <div class="outcome bad" data-field="outcome">
          <p>
            <strong>Failed</strong>
          </p>
          {r.message === undefined ? null : (
            <p class="why" data-field="why">
              Why: {r.message}
            </p>
          )}
        </div>
      );
    case "paused":
      return (
        <div class="outcome warn" data-field="outcome">
          <p>
            <strong>Paused</strong> at step {r.step + 1}
            {r.message === undefined ? ": waiting to be promoted." : null}
          </p>
          {r.message === undefined ? null : <p class="why">{r.message}</p>}
        </div>
      );
    case "succeeded":
    case "finishing":
    case "switched":
      return (
        <div class="outcome good" data-field="outcome">
          <p>
            <strong>
              <code title={r.to}>{short(r.to)}</code> {r.phase === "switched" ? "serves all traffic; the previous set stays warm for a quick rollback" : "serves all traffic"}
            </strong>
            {r.message === undefined ? null : <> · {r.message}</>}
          </p>
        </div>
      );
    case "progressing":
    case "promoting":
      return r.pausedUntil === undefined ? null : (
        <p class="muted">
          Pausing until <time dateTime={r.pausedUntil}>{new Date(r.pausedUntil).toLocaleTimeString()}</time>
        </p>
      );
  }
}

function Traffic(props: { shares: Array<{ label: string; release: string; weight: number }> }) {
  const { shares } = props;
  if (shares.length === 0) return null;
  const words = shares.map((s) => `${s.label} ${s.weight}%`).join(", ");
  return (
    <div class="traffic">
      <h3>Traffic</h3>
      <div class="traffic-bar" role="img" aria-label={`Traffic: ${words}`}>
        {shares
          .filter((s) => s.weight > 0)
          .map((s) => (
            <span key={`${s.label}-${s.release}`} class={`share ${s.label}`} style={{ width: `${s.weight}%` }} />
          ))}
      </div>
      <ul class="shares">
        {shares.map((s) => (
          <li key={`${s.label}-${s.release}`} data-share={s.label}>
            <span class={`swatch ${s.label}`} aria-hidden="true" />
            <strong>{s.label}</strong> <span data-field="weight">{s.weight}%</span> <code title={s.release}>{short(s.release)}</code>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Steps(props: { view: RolloutView; rollout: Rollout }) {
  const marks = stepMarks(props.view.steps.length, props.rollout);
  return (
    <div class="steps-wrap">
      <h3>Steps</h3>
      <ol class="steps">
        {props.view.steps.map((step, i) => {
          const mark = marks[i] ?? "pending";
          return (
            <li key={i} class={mark} data-mark={mark} aria-current={mark === "current" ? "step" : undefined}>
              {describeStep(step)} <span class="visually-hidden">({MARK_WORDS[mark]})</span>
            </li>
          );
        })}
      </ol>
    </div>
  );
}

/** The charts over the whole rollout, then the analysis under way and the finished ones, newest first. */
function Analyses(props: { rollout: Rollout }) {
  const r = props.rollout;
  const charts = useMemo(() => analysisCharts(r), [r]);
  const finished = [...(r.analyses ?? [])].reverse();
  if (r.analysis === undefined && finished.length === 0) return null;
  return (
    <div class="analyses">
      <h3>Canary analysis</h3>
      {charts === undefined ? (
        <p class="muted">The charts start with the analysis' first look.</p>
      ) : (
        <div class="analysis-charts">
          <figure>
            <figcaption>Error ratio per version</figcaption>
            <Chart title="Error ratio of the canary and the baseline, per analysis look" times={charts.times} series={charts.errors} format={pct} height={160} />
          </figure>
          <figure>
            <figcaption>Latency per version (p99, p50)</figcaption>
            <Chart title="Latency of the canary and the baseline, per analysis look" times={charts.times} series={charts.latency} format={ms} height={160} />
          </figure>
        </div>
      )}
      {r.analysis === undefined ? null : (
        <Analysis step={r.analysis.step} phase={r.analysis.run.phase} reason={r.analysis.run.reason} dryRun={r.analysis.dryRun} evidence={r.analysis.run.evidence} />
      )}
      {finished.map((a) => (
        <Analysis key={`${a.step}-${a.endedAt}`} step={a.step} phase={a.phase} reason={a.reason} dryRun={a.dryRun} evidence={a.evidence} />
      ))}
    </div>
  );
}

function Analysis(props: { step: number; phase: AnalysisPhase; reason: string | undefined; dryRun: boolean; evidence: AnalysisEvidence | undefined }) {
  const { step, phase, reason, dryRun, evidence } = props;
  return (
    <article class="analysis" data-verdict={phase} aria-label={`Analysis at step ${step + 1}: ${phase}`}>
      <h4>
        Step {step + 1}: analysis{" "}
        <span class={`verdict ${phase}`} data-field="verdict">
          {phase}
        </span>
        {dryRun ? <span class="muted"> (dry run)</span> : null}
      </h4>
      {reason === undefined ? null : (
        <p class="reason" data-field="reason">
          {reason}
        </p>
      )}
      {evidence === undefined ? null : <Evidence evidence={evidence} />}
    </article>
  );
}

function Evidence(props: { evidence: AnalysisEvidence }) {
  const e = props.evidence;
  const rows = [
    ["canary", e.canary],
    ["baseline", e.baseline],
  ] as const;
  return (
    <>
      <p class="muted">
        After {Math.round(e.elapsedMs / 1000)} s, {e.looks} {e.looks === 1 ? "look" : "looks"}:
      </p>
      <div class="table-wrap">
        <table class="evidence">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Requests</th>
              <th scope="col">Errors</th>
              <th scope="col">Error ratio</th>
              <th scope="col">p50</th>
              <th scope="col">p99</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([label, v]) => (
              <tr key={label} data-version={label}>
                <th scope="row">{label}</th>
                <td>{count(v.requests)}</td>
                <td>{count(v.errors)}</td>
                <td data-field="error-ratio">{percent(v.errorRatio)}</td>
                <td>{millis(v.p50)}</td>
                <td>{millis(v.p99)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ul class="checks">
        {e.checks.map((c) => (
          <li key={c.name} data-check={c.name}>
            <span class={`check ${c.status}`}>{CHECK_WORDS[c.status]}</span> <strong>{c.name}</strong> <span class="detail">{c.detail}</span>
          </li>
        ))}
      </ul>
    </>
  );
}

/** Promote (end a pause or an analysis), Promote fully (skip the remaining steps) and Abort; the last two ask first. */
function RolloutActions(props: { api: Api; name: string; rollout: Rollout; onChanged: () => void }) {
  const { api, name, rollout, onChanged } = props;
  const allowed = rolloutActions(rollout);
  const [confirm, setConfirm] = useState<"full" | "abort" | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const confirmButton = useRef<HTMLButtonElement>(null);
  const buttons = useRef<HTMLParagraphElement>(null);
  const asked = useRef(false);
  useEffect(() => {
    // Into the question when it opens; back to the actions when it closes (a keyboard user
    // would otherwise start again from the top of the page).
    if (confirm !== undefined) confirmButton.current?.focus();
    else if (asked.current) buttons.current?.querySelector<HTMLButtonElement>("button:not([disabled])")?.focus();
    asked.current = confirm !== undefined;
  }, [confirm]);

  async function run(kind: "step" | "full" | "abort") {
    setBusy(true);
    setOutcome(undefined);
    try {
      const after = kind === "abort" ? await abort(api, name) : await promote(api, name, kind === "full");
      setOutcome({
        ok: true,
        text:
          kind === "abort"
            ? `Aborted: ${after.from === undefined ? "the previous release" : short(after.from)} takes all traffic again.`
            : kind === "full"
              ? `Promoted: ${short(after.to)} takes all traffic once its replicas are ready.`
              : `Promoted: the rollout goes on with step ${after.step + 1}.`,
      });
      onChanged();
    } catch (err) {
      setOutcome({ ok: false, text: (err as Error).message });
    }
    setBusy(false);
    setConfirm(undefined);
  }

  const any = allowed.promote || allowed.promoteFully || allowed.abort;
  if (!any && outcome === undefined) return null;
  return (
    <div class="actions rollout-actions">
      {confirm !== undefined && any ? (
        <p role="group" aria-label={confirm === "abort" ? "Confirm the abort" : "Confirm the promotion"}>
          {confirm === "abort" ? (
            <>
              Stop the rollout and go back to {rollout.from === undefined ? "the previous release" : <code>{short(rollout.from)}</code>}?{" "}
            </>
          ) : (
            <>
              Skip the remaining steps and send all traffic to <code>{short(rollout.to)}</code>?{" "}
            </>
          )}
          <button type="button" ref={confirmButton} disabled={busy} onClick={() => void run(confirm)}>
            {confirm === "abort" ? "Confirm abort" : "Confirm promote fully"}
          </button>{" "}
          <button type="button" class="quiet" onClick={() => setConfirm(undefined)}>
            Cancel
          </button>
        </p>
      ) : any ? (
        <p class="buttons" ref={buttons}>
          {allowed.promote ? (
            <button type="button" disabled={busy} onClick={() => void run("step")}>
              Promote
            </button>
          ) : null}
          {allowed.promoteFully ? (
            <button type="button" class="quiet" disabled={busy} onClick={() => (setOutcome(undefined), setConfirm("full"))}>
              Promote fully
            </button>
          ) : null}
          {allowed.abort ? (
            <button type="button" class="danger" disabled={busy} onClick={() => (setOutcome(undefined), setConfirm("abort"))}>
              Abort
            </button>
          ) : null}
        </p>
      ) : null}
      {outcome === undefined ? null : (
        <p class={outcome.ok ? "ok" : "error"} role={outcome.ok ? "status" : "alert"}>
          {outcome.text}
        </p>
      )}
    </div>
  );
}
