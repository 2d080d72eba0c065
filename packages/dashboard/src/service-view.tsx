// The Service view (#/services/<name>): owner and contact, description, lifecycle and links from
// the catalog; release and replicas from GET /v1/status; the scorecard; the last deploys and
// rollbacks; and Roll back for a token that may deploy the service (the API enforces it anyway).
import { useCallback, useState } from "preact/hooks";
import type { ReplicaStatus } from "@keelson/protocol";
import { ApiError, type Api, type CatalogService, type DeployRecord, type Principal, type RuleOutcome } from "./api.js";
import { Replicas, shortRelease } from "./overview.js";
import { mayDeploy } from "./permissions.js";
import { useLiveLoad } from "./use-live.js";

const DEPLOYS = 10;

export function ServiceView(props: { api: Api; name: string; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { api, name, principal, revision, onUnauthorized } = props;
  const load = useCallback(async (signal: AbortSignal) => {
    const [status, entry] = await Promise.all([api.status(signal), api.catalogService(name, signal)]);
    return { status: status.services.find((s) => s.name === name), entry };
  }, [api, name]);
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
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
            {mayDeploy(principal, entry.owner.team) ? <Rollback api={api} name={name} /> : null}
            {status ? <ReplicaTable instances={status.instances} /> : null}
          </section>
          <Scorecard entry={entry} />
          <Deploys deploys={entry.deploys.slice(0, DEPLOYS)} />
        </>
      ) : null}
    </>
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

function ReplicaTable(props: { instances: ReplicaStatus[] }) {
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
            <th scope="col">PID</th>
          </tr>
        </thead>
        <tbody>
          {props.instances.map((r) => (
            <tr key={r.id} data-replica={r.id}>
              <th scope="row">
                <code>{r.id}</code>
              </th>
              <td>
                <code title={r.release}>{shortRelease(r.release)}</code>
              </td>
              <td data-field="state">
                <span class={`state ${r.state}`}>{r.state}</span>
              </td>
              <td data-field="restarts">{r.restarts}</td>
              <td data-field="pid">{r.pid ?? <span class="muted">none</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
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
  const [step, setStep] = useState<"idle" | "confirm" | "busy">("idle");
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  async function confirm() {
    setStep("busy");
    try {
      const result = await props.api.rollback(props.name);
      setOutcome(result.ok ? { ok: true, text: `Rolling back to ${shortRelease(result.release)}.` } : { ok: false, text: result.message });
    } catch (err) {
      setOutcome({ ok: false, text: (err as Error).message });
    }
    setStep("idle");
  }
  return (
    <div class="actions">
      {step === "confirm" ? (
        <p role="group" aria-label="Confirm the rollback">
          Roll {props.name} back to its previous release?{" "}
          <button type="button" onClick={() => void confirm()}>
            Confirm roll back
          </button>{" "}
          <button type="button" class="quiet" onClick={() => setStep("idle")}>
            Cancel
          </button>
        </p>
      ) : (
        <button type="button" disabled={step === "busy"} onClick={() => (setOutcome(undefined), setStep("confirm"))}>
          {step === "busy" ? "Rolling back…" : "Roll back"}
        </button>
      )}
      {outcome === undefined ? null : (
        <p class={outcome.ok ? "ok" : "error"} role={outcome.ok ? "status" : "alert"}>
          {outcome.text}
        </p>
      )}
    </div>
  );
}
