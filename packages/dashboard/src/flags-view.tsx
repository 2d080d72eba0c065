// The Flags views: the list (#/flags) of every flag with its type, owner, state, default variant,
// evaluations and stale marker, filtered in the page; and one flag (#/flags/<key>) with its
// definition, the editor, Enable/Disable and the kill switch for roles that may change it, the
// change history with diffs and rollback, and the experiment's results for an experiment flag.
import type { FlagDefinition } from "@keelson/protocol";
import { Fragment } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, UnauthorizedError, type Api, type Principal } from "./api.js";
import { ConfirmAction } from "./confirm-action.js";
import { ExperimentSection } from "./experiment-results.js";
import { formatValue } from "./flag-diff.js";
import { isKilled, isNoTargeting } from "./flag-draft.js";
import { FlagEditor } from "./flag-editor.js";
import { FlagHistory } from "./flag-history.js";
import { filterFlags, flagRows, type FlagRow } from "./flag-list.js";
import { flagsApi } from "./flags-api.js";
import { mayChangeFlag } from "./permissions.js";
import { flagHref } from "./router.js";
import { useLiveLoad } from "./use-live.js";
import "./flags-view.css";

/** A secondary read (stale flags, usage) that may fail without failing the page; a refused token still logs out. */
function optional<T>(promise: Promise<T>): Promise<T | undefined> {
  return promise.catch((err: unknown) => {
    if (err instanceof UnauthorizedError) throw err;
    return undefined;
  });
}

function Updated(props: { error: Error | undefined; updatedAt: Date | undefined }) {
  return (
    <p class="meta" aria-live="polite">
      {props.error ? <span class="error">Not updated: {props.error.message}. Retrying…</span> : props.updatedAt ? `Updated ${props.updatedAt.toLocaleTimeString()}` : "Loading…"}
    </p>
  );
}

export function FlagsView(props: { api: Api; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { api, revision, onUnauthorized } = props;
  const calls = useMemo(() => flagsApi(api), [api]);
  const load = useCallback(
    async (signal: AbortSignal) => {
      const [set, stale, usage] = await Promise.all([calls.list(signal), optional(calls.stale(signal)), optional(calls.usage(signal))]);
      return { rows: flagRows(set, stale, usage), staleDays: stale?.days };
    },
    [calls],
  );
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  const [filter, setFilter] = useState("");
  const rows = data === undefined ? [] : filterFlags(data.rows, filter);
  const total = data?.rows.length ?? 0;

  return (
    <>
      <div class="title">
        <h1>Flags</h1>
        <Updated error={error} updatedAt={updatedAt} />
      </div>
      <form class="filters" role="search" aria-label="Filter the flags" onSubmit={(e) => e.preventDefault()}>
        <label>
          Filter <input type="search" name="filter" value={filter} onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} placeholder="key, owner, type, stale…" autoComplete="off" />
        </label>
        <p class="meta" aria-live="polite" data-testid="flag-count">
          {data === undefined ? "" : filter.trim() === "" ? `${total} ${total === 1 ? "flag" : "flags"}` : `${rows.length} of ${total} flags`}
        </p>
      </form>
      {data !== undefined && total === 0 ? (
        <p>
          No flags yet: declare them under <code>flags</code> in keelson.yaml, or create one with <code>keelson flags set</code>.
        </p>
      ) : null}
      {data !== undefined && total > 0 && rows.length === 0 ? <p>No flags match.</p> : null}
      {rows.length > 0 ? <FlagTable rows={rows} staleDays={data?.staleDays} /> : null}
    </>
  );
}

function FlagTable(props: { rows: FlagRow[]; staleDays: number | undefined }) {
  return (
    <div class="table-wrap">
      <table class="flag-table">
        <thead>
          <tr>
            <th scope="col">Flag</th>
            <th scope="col">Type</th>
            <th scope="col">Owner</th>
            <th scope="col">State</th>
            <th scope="col">Default</th>
            <th scope="col">Evaluations</th>
            <th scope="col">Stale</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => (
            <tr key={r.key} data-flag={r.key}>
              <th scope="row" data-label="Flag">
                <a href={flagHref(r.key)}>{r.key}</a>
                {r.flag.description === undefined || r.flag.description === "" ? null : <span class="flag-description muted">{r.flag.description}</span>}
              </th>
              <td data-label="Type" data-field="type">
                {r.flag.type ?? <span class="muted">unset</span>}
              </td>
              <td data-label="Owner" data-field="owner">
                {r.flag.owner ?? <span class="muted">none</span>}
              </td>
              <td data-label="State" data-field="state">
                <FlagState flag={r.flag} />
              </td>
              <td data-label="Default" data-field="default">
                <code>{r.flag.defaultVariant}</code> <span class="muted">= {formatValue(r.flag.variants[r.flag.defaultVariant])}</span>
              </td>
              <td data-label="Evaluations" data-field="usage">
                <Usage usage={r.usage} />
              </td>
              <td data-label="Stale" data-field="stale">
                {r.stale === undefined ? (
                  <span class="muted">no</span>
                ) : (
                  <span class="flag-stale" title={r.stale.why.join("; ")}>
                    stale<span class="muted"> · {r.stale.why.join("; ")}</span>
                  </span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.staleDays === undefined ? null : <p class="hint">Stale: no evaluation for {props.staleDays} days, or no change for months (kill switches and permissions excepted).</p>}
    </div>
  );
}

function FlagState(props: { flag: FlagDefinition }) {
  const { flag } = props;
  return (
    <>
      <span class={`flag-state ${flag.state === "ENABLED" ? "enabled" : "disabled"}`}>{flag.state}</span>
      {isKilled(flag) ? (
        <span class="flag-killed" title={`killed ${String(flag.metadata?.killedAt ?? "")} by ${String(flag.metadata?.killedBy ?? "")}`}>
          {" "}
          killed
        </span>
      ) : null}
    </>
  );
}

function Usage(props: { usage: FlagRow["usage"] }) {
  const { usage } = props;
  if (usage === undefined) return <span class="muted">–</span>;
  if (usage.evaluations === 0 || usage.lastEvaluatedAt === undefined) return <span class="muted">none counted</span>;
  return (
    <>
      {usage.evaluations.toLocaleString()}{" "}
      <span class="muted">
        · last <time dateTime={usage.lastEvaluatedAt}>{new Date(usage.lastEvaluatedAt).toLocaleString()}</time>
      </span>
    </>
  );
}

function Crumbs() {
  return (
    <nav aria-label="Breadcrumb" class="crumbs">
      <a href="#/flags">Flags</a>
    </nav>
  );
}

export function FlagView(props: { api: Api; flagKey: string; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { api, flagKey, principal, revision, onUnauthorized } = props;
  const calls = useMemo(() => flagsApi(api), [api]);
  // Bumped after a change made here, so the page does not wait for the event stream.
  const [tick, setTick] = useState(0);
  const load = useCallback(
    async (signal: AbortSignal) => {
      const [detail, history, usage] = await Promise.all([calls.flag(flagKey, signal), calls.history(flagKey, signal), optional(calls.usage(signal))]);
      return { detail, history, usage: usage?.flags[flagKey] };
    },
    // tick: a new function is a new load.
    [calls, flagKey, tick],
  );
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  const [editing, setEditing] = useState(false);
  const editButton = useRef<HTMLButtonElement>(null);
  const wasEditing = useRef(false);
  useEffect(() => {
    // The editor closed (saved or cancelled): the focus goes back to Edit.
    if (!editing && wasEditing.current) editButton.current?.focus();
    wasEditing.current = editing;
  }, [editing]);
  const [notice, setNotice] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const reload = () => setTick((t) => t + 1);

  if (error instanceof ApiError && error.status === 404) {
    return (
      <>
        <Crumbs />
        <h1>No flag “{flagKey}”</h1>
        <p>The project has no flag by that key (it may have been deleted).</p>
      </>
    );
  }
  const flag = data?.detail.flag;
  const may = flag !== undefined && mayChangeFlag(principal, flag.owner);
  const safe = flag === undefined ? "" : (flag.safeVariant ?? flag.defaultVariant);

  return (
    <>
      <Crumbs />
      <div class="title">
        <h1>{flagKey}</h1>
        <Updated error={error} updatedAt={updatedAt} />
      </div>
      {flag === undefined || data === undefined ? null : (
        <>
          {data.detail.declared === true ? (
            <p class="flag-notice" data-field="declared">
              Declared in keelson.yaml: a change made here lasts until the next <code>keelson up</code>, which puts the manifest's definition back.
            </p>
          ) : null}
          {notice === undefined ? null : (
            <p class={notice.ok ? "ok" : "error"} role={notice.ok ? "status" : "alert"} data-field="notice">
              {notice.text}
            </p>
          )}
          {may ? (
            <div class="flag-actions">
              {editing ? null : (
                <button
                  type="button"
                  ref={editButton}
                  onClick={() => {
                    setNotice(undefined);
                    setEditing(true);
                  }}
                >
                  Edit
                </button>
              )}
              <ConfirmAction
                label={flag.state === "ENABLED" ? "Disable" : "Enable"}
                question={
                  flag.state === "ENABLED" ? (
                    <>
                      Disable {flagKey}? Everyone gets <code>{safe}</code> without targeting until it is enabled again.
                    </>
                  ) : (
                    <>Enable {flagKey}? Its targeting and default variant apply again.</>
                  )
                }
                confirmLabel={flag.state === "ENABLED" ? "Confirm disable" : "Confirm enable"}
                busyLabel="Saving…"
                announce={setNotice}
                run={async () => {
                  const state = flag.state === "ENABLED" ? "DISABLED" : "ENABLED";
                  // From the flag as it is now, not as this page last loaded it: only the state changes.
                  const current = await calls.flag(flagKey);
                  const r = await calls.put(flagKey, { ...current.flag, state }, current.tag);
                  reload();
                  return `${flagKey} is ${state} from revision ${r.revision}.`;
                }}
              />
              <ConfirmAction
                danger
                label="Kill switch"
                question={
                  <>
                    Kill {flagKey}? Everyone gets <code>{safe}</code> ({formatValue(flag.variants[safe])}) at once and its targeting is dropped. The history can roll it back.
                  </>
                }
                confirmLabel="Kill the flag"
                busyLabel="Killing…"
                announce={setNotice}
                run={async () => {
                  const r = await calls.kill(flagKey);
                  reload();
                  return `Killed: everyone gets ${r.flag.defaultVariant} from revision ${r.revision}.`;
                }}
              />
            </div>
          ) : principal === undefined ? null : (
            <p class="muted" data-field="read-only">
              Read only: changing this flag takes an admin token{flag.owner === undefined ? "" : ` or a deployer token of team ${flag.owner}`}.
            </p>
          )}
          {editing && may ? (
            <FlagEditor
              flagKey={flagKey}
              flag={flag}
              tag={data.detail.tag}
              save={(definition, ifMatch) => calls.put(flagKey, definition, ifMatch)}
              onClose={(saved) => {
                setEditing(false);
                if (saved !== undefined) {
                  setNotice({ ok: true, text: saved });
                  reload();
                }
              }}
            />
          ) : null}
          <Definition flag={flag} declared={data.detail.declared} usage={data.usage} />
          {flag.type === "experiment" ? <ExperimentSection calls={calls} flagKey={flagKey} revision={revision} onUnauthorized={onUnauthorized} /> : null}
          <section aria-labelledby="history-heading">
            <h2 id="history-heading">Change history</h2>
            <FlagHistory
              flagKey={flagKey}
              changes={data.history}
              rollback={
                may
                  ? async (seq) => {
                      const r = await calls.rollback(flagKey, seq);
                      reload();
                      return `Rolled back to change ${seq}: revision ${r.revision}.`;
                    }
                  : undefined
              }
            />
          </section>
        </>
      )}
    </>
  );
}

function Definition(props: { flag: FlagDefinition; declared: boolean | undefined; usage: { evaluations: number; lastEvaluatedAt: string } | undefined }) {
  const { flag, declared, usage } = props;
  const metadata = Object.entries(flag.metadata ?? {});
  return (
    <section aria-labelledby="definition-heading">
      <h2 id="definition-heading">Definition</h2>
      {flag.description === undefined || flag.description === "" ? null : <p class="description">{flag.description}</p>}
      <dl class="facts">
        <dt>State</dt>
        <dd data-field="state">
          <FlagState flag={flag} />
        </dd>
        <dt>Default variant</dt>
        <dd data-field="defaultVariant">
          <code>{flag.defaultVariant}</code>
        </dd>
        {flag.safeVariant === undefined ? null : (
          <>
            <dt>Safe variant</dt>
            <dd data-field="safeVariant">
              <code>{flag.safeVariant}</code>
            </dd>
          </>
        )}
        <dt>Type</dt>
        <dd data-field="type">{flag.type ?? <span class="muted">unset</span>}</dd>
        <dt>Owner</dt>
        <dd data-field="owner">{flag.owner ?? <span class="muted">none</span>}</dd>
        {declared === undefined ? null : (
          <>
            <dt>Managed</dt>
            <dd data-field="managed">{declared ? "in keelson.yaml" : "live (not in keelson.yaml)"}</dd>
          </>
        )}
        <dt>Evaluations</dt>
        <dd data-field="usage">
          {usage === undefined ? (
            <span class="muted">none counted</span>
          ) : (
            <>
              {usage.evaluations.toLocaleString()}, last <time dateTime={usage.lastEvaluatedAt}>{new Date(usage.lastEvaluatedAt).toLocaleString()}</time>
            </>
          )}
        </dd>
        {flag.prerequisites === undefined || flag.prerequisites.length === 0 ? null : (
          <>
            <dt>Prerequisites</dt>
            <dd data-field="prerequisites">
              {flag.prerequisites.map((p, i) => (
                <span key={p.flag}>
                  {i > 0 ? ", " : null}
                  <a href={flagHref(p.flag)}>{p.flag}</a> is <code>{p.variant}</code>
                </span>
              ))}
            </dd>
          </>
        )}
      </dl>
      <h3>Variants</h3>
      <div class="table-wrap">
        <table class="flag-variants">
          <thead>
            <tr>
              <th scope="col">Variant</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(flag.variants).map(([name, value]) => (
              <tr key={name} data-variant={name}>
                <th scope="row">
                  <code>{name}</code>
                  {name === flag.defaultVariant ? <span class="muted"> (default)</span> : null}
                </th>
                <td>
                  <code class="flag-value">{formatValue(value)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Targeting</h3>
      {isNoTargeting(flag.targeting) ? (
        <p data-field="targeting">None: everyone gets the default variant.</p>
      ) : (
        <pre class="flag-json" data-field="targeting">
          {JSON.stringify(flag.targeting, null, 2)}
        </pre>
      )}
      {metadata.length === 0 ? null : (
        <>
          <h3>Metadata</h3>
          <dl class="facts">
            {metadata.map(([k, v]) => (
              <Fragment key={k}>
                <dt>{k}</dt>
                <dd>
                  <code>{String(v)}</code>
                </dd>
              </Fragment>
            ))}
          </dl>
        </>
      )}
    </section>
  );
}
