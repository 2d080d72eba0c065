// The Deploys view (#/deploys): each service's release and rollout in progress, with Promote,
// Abort, Deploy and Roll back for a token that may deploy it (the API enforces it anyway); and the
// pipeline runs of every service, newest first, with their stages and a log that follows a
// running run live. Loaded again whenever the event stream reports a change.
import type { ServiceStatus, StatusReport } from "@keelson/protocol";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { UnauthorizedError, type Api, type Principal } from "./api.js";
import { abort, deploy, listRuns, promote, readRunLog, rolloutOf, type ActionOutcome, type PipelineRun, type RolloutDetail } from "./deploys-api.js";
import { canaryPosition, capLog, firstLine, formatMs, isAbortable, isPromotable, runStateLabel, shortId, stageRows, type StageRow } from "./deploys-model.js";
import { mayDeploy } from "./permissions.js";
import { serviceHref } from "./router.js";
import { useLiveLoad } from "./use-live.js";
import "./deploys-view.css";

const PAGE = 25;
const MAX_RUNS = 200;

interface DeploysData {
  status: StatusReport;
  runs: PipelineRun[];
  /** Rollouts in progress, by service. */
  rollouts: Map<string, RolloutDetail>;
}

export function DeploysView(props: { api: Api; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { api, principal, revision, onUnauthorized } = props;
  const [service, setService] = useState("");
  const [limit, setLimit] = useState(PAGE);
  const load = useCallback(
    async (signal: AbortSignal): Promise<DeploysData> => {
      const [status, runs] = await Promise.all([api.status(signal), listRuns(api, { ...(service === "" ? {} : { service }), limit }, signal)]);
      // Only the services with a rollout under way: usually none or one request.
      const moving = status.services.filter((s) => s.rollout !== undefined);
      const details = await Promise.all(
        moving.map((s) =>
          rolloutOf(api, s.name, signal).catch((err: unknown) => {
            if (err instanceof UnauthorizedError) throw err;
            return undefined;
          }),
        ),
      );
      return { status, runs, rollouts: new Map(details.filter((d): d is RolloutDetail => d !== undefined).map((d) => [d.service, d])) };
    },
    [api, service, limit],
  );
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  const now = useNow(data?.runs.some((r) => r.status === "running") === true);

  return (
    <div class="deploys-view">
      <div class="title">
        <h1>Deploys</h1>
        <p class="meta" aria-live="polite">
          {error ? <span class="error">Not updated: {error.message}. Retrying…</span> : updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : "Loading…"}
        </p>
      </div>
      <section aria-labelledby="deploys-services-heading">
        <h2 id="deploys-services-heading">Releases and rollouts</h2>
        {data && data.status.services.length === 0 ? (
          <p>
            No services yet: run <code>keelson up</code>.
          </p>
        ) : null}
        {data ? (
          <ul class="deploys-services">
            {data.status.services.map((s) => (
              <ServiceCard key={s.name} api={api} service={s} detail={data.rollouts.get(s.name)} running={data.runs.find((r) => r.service === s.name && r.status === "running")} mayAct={mayDeploy(principal, s.owner)} />
            ))}
          </ul>
        ) : null}
      </section>
      <section aria-labelledby="deploys-runs-heading">
        <h2 id="deploys-runs-heading">Pipeline runs</h2>
        <div class="filters">
          <label>
            Service{" "}
            <select value={service} onChange={(e) => (setService((e.currentTarget as HTMLSelectElement).value), setLimit(PAGE))}>
              <option value="">All services</option>
              {(data?.status.services ?? []).map((s) => (
                <option key={s.name} value={s.name}>
                  {s.name}
                </option>
              ))}
            </select>
          </label>
        </div>
        {data === undefined ? null : data.runs.length === 0 ? (
          <p>{service === "" ? "No pipeline runs yet." : `No pipeline runs of ${service} yet.`}</p>
        ) : (
          <RunList api={api} runs={data.runs} now={now} onUnauthorized={onUnauthorized} />
        )}
        {data !== undefined && data.runs.length >= limit && limit < MAX_RUNS ? (
          <button type="button" class="quiet" onClick={() => setLimit(Math.min(limit + PAGE, MAX_RUNS))}>
            Show more runs
          </button>
        ) : null}
      </section>
    </div>
  );
}

/** The time now, every second while `ticking` (a running stage's clock); fixed otherwise. */
function useNow(ticking: boolean): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (!ticking) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [ticking]);
  return now;
}

type Busy = { action: string; progress: string } | undefined;

/** A service's release and rollout, and the actions the token may take on it; their outcomes are announced here. */
function ServiceCard(props: { api: Api; service: ServiceStatus; detail: RolloutDetail | undefined; running: PipelineRun | undefined; mayAct: boolean }) {
  const { api, service, detail, running, mayAct } = props;
  const name = service.name;
  const [busy, setBusy] = useState<Busy>(undefined);
  const [outcome, setOutcome] = useState<ActionOutcome | undefined>(undefined);
  const rollout = detail?.rollout ?? undefined;
  const moving = rollout !== undefined && service.rollout !== undefined;

  async function act(action: string, progress: string, run: (onProgress: (text: string) => void) => Promise<ActionOutcome>): Promise<void> {
    setOutcome(undefined);
    setBusy({ action, progress });
    try {
      setOutcome(await run((text) => setBusy({ action, progress: text })));
    } catch (err) {
      // A refused token logs out through the next load; anything else is this action's failure.
      setOutcome({ ok: false, text: (err as Error).message });
    }
    setBusy(undefined);
  }

  const headingId = `deploys-service-${name}`;
  return (
    <li class="deploys-service" data-service-card={name}>
      <h3 id={headingId}>
        <a href={serviceHref(name)}>{name}</a>
      </h3>
      <p class="deploys-facts">
        <span>
          Release {service.release === undefined ? <span class="muted">none</span> : <code title={service.release}>{shortId(service.release)}</code>}
        </span>
        <span>
          {service.replicas.ready}/{service.replicas.desired} replicas ready
        </span>
        <span class="muted">owner {service.owner}</span>
        {running === undefined ? null : (
          <span class="deploys-building">
            pipeline <code>{running.run}</code> running
          </span>
        )}
      </p>
      {moving && rollout ? (
        <div class="deploys-rollout" data-phase={rollout.phase}>
          <p>
            <strong>{rollout.strategy === "rollback" ? "Rollback" : `${rollout.strategy} rollout`}</strong> <code title={rollout.id}>{rollout.id}</code>:{" "}
            {rollout.from === undefined ? null : (
              <>
                <code title={rollout.from}>{shortId(rollout.from)}</code> →{" "}
              </>
            )}
            <code title={rollout.to}>{shortId(rollout.to)}</code>
          </p>
          <p>
            <span class={`deploys-phase ${rollout.phase}`} data-field="phase">
              {rollout.phase}
            </span>{" "}
            · {rollout.weight}% of traffic on the new release
            {detail && canaryPosition(detail) ? <> · {canaryPosition(detail)}</> : null}
          </p>
          {rollout.message === undefined ? null : <p class="muted">{firstLine(rollout.message)}</p>}
          <p class="muted">
            Started by {rollout.actor} at <time dateTime={rollout.startedAt}>{new Date(rollout.startedAt).toLocaleTimeString()}</time>
          </p>
        </div>
      ) : null}
      {mayAct ? (
        <div class="deploys-actions" role="group" aria-label={`Actions on ${name}`}>
          {moving && isPromotable(rollout) ? (
            <ConfirmButton
              label="Promote"
              target={name}
              busy={busy?.action === "promote"}
              disabled={busy !== undefined}
              question={`Promote ${name} past this step?`}
              confirmLabel="Confirm promote"
              onConfirm={() => act("promote", "Promoting…", () => promote(api, name))}
            />
          ) : null}
          {moving && isAbortable(rollout) ? (
            <ConfirmButton
              label="Abort"
              target={name}
              busy={busy?.action === "abort"}
              disabled={busy !== undefined}
              question={`Abort the rollout of ${name} and go back to ${rollout?.from === undefined ? "its previous release" : shortId(rollout.from)}?`}
              confirmLabel="Confirm abort"
              onConfirm={() => act("abort", "Aborting…", () => abort(api, name))}
            />
          ) : null}
          {moving && isAbortable(rollout) ? null : (
            <ConfirmButton
              label="Deploy"
              target={name}
              busy={busy?.action === "deploy"}
              disabled={busy !== undefined}
              question={`Deploy ${name} from its working tree? Its pipeline runs, then the new release rolls out.`}
              confirmLabel="Confirm deploy"
              onConfirm={() => act("deploy", "Starting the deploy…", (onProgress) => deploy(api, name, onProgress))}
            />
          )}
          <ConfirmButton
            label="Roll back"
            target={name}
            busy={busy?.action === "rollback"}
            disabled={busy !== undefined}
            question={`Roll ${name} back to its previous release?`}
            confirmLabel="Confirm roll back"
            onConfirm={() =>
              act("rollback", "Rolling back…", async () => {
                const r = await api.rollback(name);
                return r.ok ? { ok: true, text: `Rolling ${name} back to ${shortId(r.release)}.` } : { ok: false, text: r.message };
              })
            }
          />
        </div>
      ) : null}
      {/* Always in the page, so that screen readers announce what is written into them. */}
      <p class="deploys-outcome ok" role="status">
        {busy?.progress ?? (outcome?.ok ? outcome.text : "")}
      </p>
      <p class="deploys-outcome error" role="alert">
        {busy === undefined && outcome !== undefined && !outcome.ok ? outcome.text : ""}
      </p>
    </li>
  );
}

/** A button that asks inline before it acts; focus goes to the confirmation, and back when it is done. */
function ConfirmButton(props: { label: string; target: string; question: string; confirmLabel: string; busy: boolean; disabled: boolean; onConfirm: () => Promise<void> }) {
  const { label, target, question, confirmLabel, busy, disabled, onConfirm } = props;
  const [asking, setAsking] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const returnFocus = useRef(false);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
    else if (returnFocus.current) {
      returnFocus.current = false;
      buttonRef.current?.focus();
    }
  }, [asking]);
  if (asking) {
    return (
      <span class="deploys-confirm" role="group" aria-label={`Confirm: ${label} ${target}`}>
        <span>{question}</span>{" "}
        <button
          type="button"
          ref={confirmRef}
          onClick={() => {
            returnFocus.current = true;
            setAsking(false);
            void onConfirm();
          }}
        >
          {confirmLabel}
        </button>{" "}
        <button
          type="button"
          class="quiet"
          onClick={() => {
            returnFocus.current = true;
            setAsking(false);
          }}
        >
          Cancel
        </button>
      </span>
    );
  }
  return (
    // The visible label first in the name (WCAG 2.5.3), the service after it for screen reader users.
    <button type="button" ref={buttonRef} class="quiet" aria-label={`${label} ${target}`} disabled={disabled} onClick={() => setAsking(true)}>
      {busy ? `${label}…` : label}
    </button>
  );
}

function RunList(props: { api: Api; runs: PipelineRun[]; now: number; onUnauthorized: () => void }) {
  const { api, runs, now, onUnauthorized } = props;
  const [open, setOpen] = useState<string | undefined>(undefined);
  return (
    <ol class="deploys-runs" aria-label="Pipeline runs, newest first">
      {runs.map((run) => (
        <RunItem key={run.run} api={api} run={run} now={now} open={open === run.run} onToggle={() => setOpen(open === run.run ? undefined : run.run)} onUnauthorized={onUnauthorized} />
      ))}
    </ol>
  );
}

const STAGE_MARK: Record<StageRow["state"], string> = { queued: "○", running: "●", passed: "✓", failed: "✕", skipped: "–", interrupted: "!" };

function RunItem(props: { api: Api; run: PipelineRun; now: number; open: boolean; onToggle: () => void; onUnauthorized: () => void }) {
  const { api, run, now, open, onToggle, onUnauthorized } = props;
  const rows = stageRows(run);
  const took = run.durationMs ?? (run.status === "running" ? now - Date.parse(run.startedAt) : undefined);
  const logId = `deploys-log-${run.run}`;
  const headingId = `deploys-run-${run.run}`;
  return (
    <li class="deploys-run" data-run={run.run} data-service={run.service} data-status={run.status}>
      <div class="deploys-run-head">
        <h3 id={headingId}>
          {run.service} <code class="muted">{run.run}</code>
        </h3>
        <span class={`deploys-run-status ${run.status}`} data-field="status">
          {runStateLabel(run.status)}
        </span>
      </div>
      <p class="deploys-run-meta">
        {run.commit === undefined ? (
          <span class="muted">no commit (not in git)</span>
        ) : (
          <span>
            commit <code title={run.commit}>{shortId(run.commit, 10)}</code>
            {run.commitSubject === undefined ? null : <> “{run.commitSubject}”</>}
            {run.commitAuthor === undefined ? null : <span class="muted"> by {run.commitAuthor}</span>}
          </span>
        )}
        <span>
          {run.trigger ?? "run"} by {run.actor}
        </span>
        <span>
          <time dateTime={run.startedAt}>{new Date(run.startedAt).toLocaleString()}</time>
          {took === undefined ? null : <> · {run.status === "running" ? `${formatMs(took)} so far` : `took ${formatMs(took)}`}</>}
        </span>
      </p>
      {rows.length === 0 ? (
        <p class="muted">{run.status === "running" ? "Preparing the workspace…" : "No stages ran."}</p>
      ) : (
        <ol class="deploys-stages" aria-label={`Stages of ${run.service} ${run.run}`}>
          {rows.map((s, i) => (
            <li key={`${i}-${s.name}`} class={`deploys-stage ${s.state}`} data-stage={s.name} data-state={s.state}>
              <span class="deploys-stage-mark" aria-hidden="true">
                {STAGE_MARK[s.state]}
              </span>
              <span class="deploys-stage-name">{s.name}</span> <span class="deploys-stage-state">{s.cached ? `${s.state} (cached)` : s.state}</span>
              {s.durationMs !== undefined ? (
                <span class="deploys-stage-time">{formatMs(s.durationMs)}</span>
              ) : s.state === "running" && s.startedAt !== undefined ? (
                <span class="deploys-stage-time">{formatMs(now - Date.parse(s.startedAt))}</span>
              ) : null}
            </li>
          ))}
        </ol>
      )}
      {run.status === "failed" && run.message !== undefined ? <p class="error deploys-run-message">{firstLine(run.message)}</p> : null}
      <button type="button" class="quiet deploys-log-toggle" aria-expanded={open} aria-controls={logId} onClick={onToggle}>
        {open ? "Hide log" : run.status === "running" ? "Follow log" : "Show log"}
      </button>
      {open ? <RunLog id={logId} api={api} run={run.run} running={run.status === "running"} onUnauthorized={onUnauthorized} /> : null}
    </li>
  );
}

interface LogState {
  text: string;
  omitted: number;
  phase: "loading" | "following" | "done" | "failed";
  error: string | undefined;
}

/**
 * A run's log: followed while the run runs (lines arrive as the stage prints them), read whole
 * once it has ended. It scrolls with new lines unless the reader has scrolled up.
 */
function RunLog(props: { id: string; api: Api; run: string; running: boolean; onUnauthorized: () => void }) {
  const { id, api, run, running, onUnauthorized } = props;
  const [log, setLog] = useState<LogState>({ text: "", omitted: 0, phase: "loading", error: undefined });
  const pre = useRef<HTMLPreElement>(null);
  const atBottom = useRef(true);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    void (async () => {
      let shown = 0;
      // While the run runs: follow; when a follow ends first (its time limit, a dropped
      // connection), follow again. Once the run has ended (the list says so), one whole read.
      for (let attempt = 0; !signal.aborted; attempt++) {
        let text = "";
        let omitted = 0;
        try {
          await readRunLog(api, run, {
            follow: running,
            signal,
            onText: (chunk) => {
              const kept = capLog(text + chunk);
              text = kept.text;
              omitted += kept.omitted;
              // A follow again starts from the top: show it once it has caught up.
              if (text.length + omitted >= shown) {
                shown = text.length + omitted;
                setLog({ text, omitted, phase: running ? "following" : "loading", error: undefined });
              }
            },
          });
          if (signal.aborted) return;
          setLog({ text, omitted, phase: running ? "following" : "done", error: undefined });
          if (!running) return;
        } catch (err) {
          if (signal.aborted) return;
          if (err instanceof UnauthorizedError) {
            onUnauthorized();
            return;
          }
          setLog((prev) => ({ ...prev, phase: "failed", error: (err as Error).message }));
          if (!running) return;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, attempt === 0 ? 1000 : 3000);
          signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
        });
      }
    })();
    return () => controller.abort();
  }, [api, run, running, onUnauthorized]);

  useLayoutEffect(() => {
    const el = pre.current;
    if (el !== null && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [log.text]);

  return (
    <div class="deploys-log" id={id}>
      <p class="meta" aria-live="polite">
        {log.phase === "loading" ? "Loading the log…" : log.phase === "following" ? "Following the log live…" : log.phase === "done" ? "The run has ended." : <span class="error">Log not loaded: {log.error}</span>}
        {log.omitted > 0 ? ` Earlier output not shown (${log.omitted} characters).` : ""}
      </p>
      <pre
        ref={pre}
        class="deploys-log-text"
        role="log"
        aria-label={`Log of ${run}`}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget as HTMLPreElement;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {log.text === "" && log.phase !== "loading" ? "(no output yet)" : log.text}
      </pre>
    </div>
  );
}
