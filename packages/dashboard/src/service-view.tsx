// The Service view (#/services/<name>): owner, contact, description, lifecycle and links from the
// catalog; the last rollout with its traffic, canary analysis and outcome (rollout-panel.tsx);
// release and replicas from GET /v1/status, with Roll back for a token that may deploy the service
// (the API enforces it anyway); the releases with who deployed them, when, from which commit; the
// logs tail (service-logs.tsx); the autoscaler's decisions; the scorecard; the last deploys.
import { useCallback, useEffect, useState } from "preact/hooks";
import type { KeelsonEvent, ReplicaStatus } from "@keelson/protocol";
import { ApiError, type Api, type CatalogService, type DeployRecord, type Principal, type RuleOutcome } from "./api.js";
import { ConfirmAction } from "./confirm-action.js";
import { Replicas, shortRelease } from "./overview.js";
import { mayDeploy } from "./permissions.js";
import { RolloutPanel } from "./rollout-panel.js";
import { isActive, releaseRoles } from "./rollout-summary.js";
import { loadAutoscale, loadDelivery, loadReleases, type AutoscaleView, type Release } from "./service-api.js";
import { ServiceLogs } from "./service-logs.js";
import { useLiveLoad } from "./use-live.js";
import "./service-view.css";

const DEPLOYS = 10;
const RELEASES = 10;
const DECISIONS = 10;
/** While a rollout runs its analysis looks record no events: the panel asks this often (only while the tab is visible). */
export const ROLLOUT_POLL_MS = 2_000;

/** Calls `tick` every `ms` while `on` and the page is visible. */
function useInterval(on: boolean, ms: number, tick: () => void): void {
  useEffect(() => {
    if (!on) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") tick();
    }, ms);
    return () => clearInterval(timer);
  }, [on, ms, tick]);
}

export function ServiceView(props: { api: Api; name: string; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { api, name, principal, revision, onUnauthorized } = props;
  const load = useCallback(async (signal: AbortSignal) => {
    const [status, entry] = await Promise.all([api.status(signal), api.catalogService(name, signal)]);
    return { status: status.services.find((s) => s.name === name), entry };
  }, [api, name]);
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  // The rollout reloads with events, after a promote or abort, and every ROLLOUT_POLL_MS while one runs.
  const [nudges, setNudges] = useState(0);
  const nudge = useCallback(() => setNudges((n) => n + 1), []);
  const delivery = useLiveLoad(useCallback((signal: AbortSignal) => loadDelivery(api, name, signal), [api, name]), revision + nudges, onUnauthorized);
  const rollout = delivery.data?.view.rollout ?? null;
  useInterval(isActive(rollout), ROLLOUT_POLL_MS, nudge);
  const releases = useLiveLoad(useCallback((signal: AbortSignal) => loadReleases(api, name, signal), [api, name]), revision, onUnauthorized);
  const autoscale = useLiveLoad(useCallback((signal: AbortSignal) => loadAutoscale(api, name, DECISIONS, signal), [api, name]), revision, onUnauthorized);
  const notFound = error instanceof ApiError && error.status === 404;

  if (notFound) {
    return (
      <>
        <Crumbs />
        <h1>No service “{name}”</h1>
        <p>The project has no service by that name.</p>
      </>
    );
  }
  const entry = data?.entry;
  const status = data?.status;
  const mayAct = entry !== undefined && mayDeploy(principal, entry.owner.team);
  return (
    <>
      <Crumbs />
      <div class="title">
        <h1>{name}</h1>
        <p class="meta" aria-live="polite">
          {error ? <span class="error">Not updated: {error.message}. Retrying…</span> : updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : "Loading…"}
        </p>
      </div>
      {entry ? (
        <>
          <About entry={entry} />
          {delivery.data ? (
            <RolloutPanel api={api} name={name} view={delivery.data.view} split={delivery.data.split} release={entry.release} mayAct={mayAct} onChanged={nudge} />
          ) : delivery.error ? (
            <Unavailable id="rollout-heading" title="Rollout" error={delivery.error} />
          ) : null}
          <section aria-labelledby="release-heading">
            <h2 id="release-heading">Release and replicas</h2>
            <p>
              Release {entry.release === undefined ? <span class="muted">none</span> : <code title={entry.release}>{shortRelease(entry.release)}</code>}
              {status ? (
                <>
                  {" · "}
                  <Replicas ready={status.replicas.ready} desired={status.replicas.desired} />
                </>
              ) : null}
            </p>
            {mayAct ? <Rollback api={api} name={name} /> : null}
            {status ? <ReplicaTable instances={status.instances} roles={releaseRoles(rollout)} /> : null}
          </section>
          {releases.data ? <Releases releases={releases.data.slice(0, RELEASES)} /> : releases.error ? <Unavailable id="releases-heading" title="Releases" error={releases.error} /> : null}
          <ServiceLogs api={api} name={name} onUnauthorized={onUnauthorized} />
          {autoscale.data ? <Autoscaler name={name} view={autoscale.data} /> : autoscale.error ? <Unavailable id="autoscale-heading" title="Autoscaler" error={autoscale.error} /> : null}
          <Scorecard entry={entry} />
          <Deploys deploys={entry.deploys.slice(0, DEPLOYS)} />
        </>
      ) : null}
    </>
  );
}

/** A section whose load failed: its title and the API's message (e.g. a control plane without an autoscaler). */
function Unavailable(props: { id: string; title: string; error: Error }) {
  return (
    <section aria-labelledby={props.id}>
      <h2 id={props.id}>{props.title}</h2>
      <p class="muted">Not available: {props.error.message}</p>
    </section>
  );
}

function Crumbs() {
  return (
    <nav aria-label="Breadcrumb" class="crumbs">
      <a href="#/">Overview</a>
    </nav>
  );
}

function About(props: { entry: CatalogService }) {
  const { entry } = props;
  return (
    <section aria-labelledby="about-heading">
      <h2 id="about-heading">About</h2>
      {entry.description === undefined ? null : <p class="description">{entry.description}</p>}
      <dl class="facts">
        <dt>Owner</dt>
        <dd data-field="owner">{entry.owner.team}</dd>
        <dt>Contact</dt>
        <dd data-field="contact">{entry.owner.contact ?? <span class="muted">none declared</span>}</dd>
        <dt>Lifecycle</dt>
        <dd data-field="lifecycle">{entry.lifecycle ?? <span class="muted">not declared</span>}</dd>
        {entry.tags.length > 0 ? (
          <>
            <dt>Tags</dt>
            <dd>{entry.tags.join(", ")}</dd>
          </>
        ) : null}
        <dt>Links</dt>
        <dd data-field="links">
          {entry.links.length === 0 ? (
            <span class="muted">none</span>
          ) : (
            <ul class="links">
              {entry.links.map((l) => (
                <li key={l.name}>
                  {/* A file link names a path on the control plane's machine: shown, not linked. */}
                  {l.kind === "url" ? (
                    <a href={l.href} rel="noopener noreferrer">
                      {l.name}
                    </a>
                  ) : (
                    <>
                      {l.name}: <code>{l.target}</code>
                    </>
                  )}
                </li>
              ))}
            </ul>
          )}
        </dd>
      </dl>
    </section>
  );
}

/** The replicas with their state, restarts and last exit; during a canary, which role each one's release plays. */
function ReplicaTable(props: { instances: ReplicaStatus[]; roles: Map<string, string> }) {
  if (props.instances.length === 0) return <p>No replicas run.</p>;
  return (
    <div class="table-wrap">
      <table class="replica-table">
        <thead>
          <tr>
            <th scope="col">Replica</th>
            <th scope="col">Release</th>
            <th scope="col">State</th>
            <th scope="col">Restarts</th>
            <th scope="col">Up since</th>
            <th scope="col">Last exit</th>
            <th scope="col">PID</th>
          </tr>
        </thead>
        <tbody>
          {props.instances.map((r) => {
            const role = props.roles.get(r.release);
            return (
              <tr key={r.id} data-replica={r.id}>
                <th scope="row">
                  <code>{r.id}</code>
                </th>
                <td data-field="release">
                  <code title={r.release}>{shortRelease(r.release)}</code>
                  {role === undefined ? null : <span class={`role ${role}`}>{role}</span>}
                </td>
                <td data-field="state">
                  <span class={`state ${r.state}`}>{r.state}</span>
                </td>
                <td data-field="restarts">{r.restarts}</td>
                <td data-field="started">{r.startedAt === undefined ? <span class="muted">–</span> : <time dateTime={r.startedAt}>{new Date(r.startedAt).toLocaleTimeString()}</time>}</td>
                <td data-field="last-exit">
                  {r.lastExit === undefined ? (
                    <span class="muted">none</span>
                  ) : (
                    <span title={new Date(r.lastExit.at).toLocaleString()}>{r.lastExit.signal ?? `code ${r.lastExit.code ?? "?"}`}</span>
                  )}
                </td>
                <td data-field="pid">{r.pid ?? <span class="muted">none</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** The releases, newest first: what each is now, who deployed it, when, and from which commit. */
function Releases(props: { releases: Release[] }) {
  return (
    <section aria-labelledby="releases-heading">
      <h2 id="releases-heading">Releases</h2>
      {props.releases.length === 0 ? (
        <p>No releases yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="releases">
            <thead>
              <tr>
                <th scope="col">Release</th>
                <th scope="col">Status</th>
                <th scope="col">Commit</th>
                <th scope="col">Deployed by</th>
                <th scope="col">When</th>
                <th scope="col">Ready replicas</th>
              </tr>
            </thead>
            <tbody>
              {props.releases.map((r) => {
                const when = r.deployedAt ?? r.createdAt;
                return (
                  <tr key={r.id} data-release={r.id}>
                    <th scope="row">
                      <code title={r.id}>{shortRelease(r.id)}</code>
                    </th>
                    <td data-field="status">
                      <span class={`release-status ${r.status}`}>{r.status}</span>
                    </td>
                    <td data-field="commit">{r.commit === undefined ? <span class="muted">working tree</span> : <code title={r.commit}>{r.commit.slice(0, 10)}</code>}</td>
                    <td data-field="deployed-by">{r.deployedBy ?? <span class="muted">not deployed</span>}</td>
                    <td data-field="when">
                      <time dateTime={when} title={r.deployedAt === undefined ? "built" : "deployed"}>
                        {new Date(when).toLocaleString()}
                      </time>
                    </td>
                    <td data-field="replicas">{r.replicas}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

const round = (n: number | undefined) => (n === undefined ? "–" : Number.isInteger(n) ? String(n) : n.toFixed(2));

/** The details the autoscaler records with a decision (autoscale.scaled/held, service.activated). */
interface DecisionDetails {
  from?: number;
  to?: number;
  reason?: string;
  message?: string;
  metrics?: Array<{ measure: string; current?: number; target?: number; proposal?: number }>;
  replicas?: { total: number; ready: number };
  requests?: number;
  windowMs?: number;
}

/** What the autoscaler sees now, and its last decisions with the numbers they were made on. */
function Autoscaler(props: { name: string; view: AutoscaleView }) {
  const s = props.view.status;
  const last = s?.evaluations.at(-1);
  return (
    <section aria-labelledby="autoscale-heading" class="autoscale">
      <h2 id="autoscale-heading">Autoscaler</h2>
      {s === null ? (
        <p>
          The autoscaler has not looked at {props.name}: it needs <code>autoscale:</code> in keelson.yaml and a release.
        </p>
      ) : (
        <>
          <p data-field="autoscale-summary">
            {s.current} {s.current === 1 ? "replica" : "replicas"} (min {s.min}, max {s.max}), desired {s.desired}
            {s.lastEvaluationAt === undefined ? null : (
              <span class="muted">
                {" "}
                · last look <time dateTime={s.lastEvaluationAt}>{new Date(s.lastEvaluationAt).toLocaleTimeString()}</time>
              </span>
            )}
          </p>
          {s.held === undefined ? null : (
            <p class="warn">
              Holding since <time dateTime={s.held.since}>{new Date(s.held.since).toLocaleTimeString()}</time>: {s.held.message}
            </p>
          )}
          {s.metrics.length === 0 ? null : (
            <div class="table-wrap">
              <table class="measures">
                <thead>
                  <tr>
                    <th scope="col">Measure</th>
                    <th scope="col">Current</th>
                    <th scope="col">Target</th>
                    <th scope="col">Proposal</th>
                    <th scope="col">Note</th>
                  </tr>
                </thead>
                <tbody>
                  {s.metrics.map((m) => (
                    <tr key={m.measure} data-measure={m.measure}>
                      <th scope="row">{m.measure}</th>
                      <td>{m.current === undefined ? <span class="muted">no data</span> : round(m.current)}</td>
                      <td>{round(m.target)}</td>
                      <td>{m.proposal ?? "–"}</td>
                      <td class="muted">{m.invalid ?? m.note ?? ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {last === undefined ? null : <p class="muted" data-field="last-look">Last look: {last.message}</p>}
        </>
      )}
      <h3>Decisions</h3>
      {props.view.events.length === 0 ? <p>No scaling decisions recorded yet.</p> : <Decisions events={props.view.events} />}
    </section>
  );
}

function Decisions(props: { events: KeelsonEvent[] }) {
  return (
    <ol class="events decisions">
      {props.events.map((e) => {
        const d = e.details as DecisionDetails;
        const what = e.kind === "autoscale.scaled" ? `scaled ${d.from ?? "?"} → ${d.to ?? "?"}` : e.kind === "service.activated" ? `activated ${d.from ?? 0} → ${d.to ?? "?"}` : `held at ${d.from ?? "?"}`;
        const inputs = [
          ...(d.metrics ?? []).map((m) => `${m.measure} ${round(m.current)} of target ${round(m.target)}`),
          ...(d.requests === undefined ? [] : [`${round(d.requests)} requests${d.windowMs === undefined ? "" : ` in ${Math.round(d.windowMs / 1000)} s`}`]),
          ...(d.replicas === undefined ? [] : [`${d.replicas.ready} of ${d.replicas.total} replicas ready`]),
        ];
        return (
          <li key={e.seq} data-kind={e.kind}>
            <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time>
            <span class="kind">{what}</span>
            <span>{d.message ?? d.reason}</span>
            {inputs.length === 0 ? null : <span class="muted inputs">{inputs.join(" · ")}</span>}
          </li>
        );
      })}
    </ol>
  );
}

function Scorecard(props: { entry: CatalogService }) {
  const { scorecard, scorecardResults } = props.entry;
  return (
    <section aria-labelledby="scorecard-heading">
      <h2 id="scorecard-heading">Scorecard</h2>
      <p data-field="score">
        {scorecard.score === undefined ? "No score yet" : `Score ${scorecard.score}`} · {scorecard.passed} passed, {scorecard.failed} failed, {scorecard.unknown} unknown
      </p>
      <ul class="rules">
        {scorecardResults.map((r: RuleOutcome) => (
          <li key={r.rule} data-rule={r.rule}>
            <span class={`rule-status ${r.status}`}>{r.status}</span> <strong>{r.title}</strong> <span class="muted">{r.reason}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Deploys(props: { deploys: DeployRecord[] }) {
  const words: Record<DeployRecord["kind"], string> = { "rollout.succeeded": "deployed", "rollout.failed": "failed", "rollback.succeeded": "rolled back" };
  return (
    <section aria-labelledby="deploys-heading">
      <h2 id="deploys-heading">Deploys and rollbacks</h2>
      {props.deploys.length === 0 ? (
        <p>No deploys yet.</p>
      ) : (
        <ol class="events deploys">
          {props.deploys.map((d) => (
            <li key={`${d.at}-${d.kind}`}>
              <time dateTime={d.at}>{new Date(d.at).toLocaleString()}</time>
              <span class="kind">{words[d.kind]}</span>
              <span>
                {d.release === undefined ? null : <code>{shortRelease(d.release)}</code>}
                {d.from === undefined ? null : (
                  <>
                    {" "}
                    from <code>{shortRelease(d.from)}</code>
                  </>
                )}
              </span>
              <span class="actor">by {d.actor}</span>
              {d.why === undefined ? null : <span class="muted">{d.why}</span>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

/** Roll back with an inline confirmation; the result (or the API's refusal) is announced. */
function Rollback(props: { api: Api; name: string }) {
  const { api, name } = props;
  return (
    <div class="actions">
      <ConfirmAction
        label="Roll back"
        question={`Roll ${name} back to its previous release?`}
        confirmLabel="Confirm roll back"
        busyLabel="Rolling back…"
        run={async () => {
          const result = await api.rollback(name);
          if (!result.ok) throw new Error(result.message);
          return `Rolling back to ${shortRelease(result.release)}.`;
        }}
      />
    </div>
  );
}
