// The Audit log view (#/audit, admins only: the API answers 403 to other roles): who did what to
// which target and how it ended, newest first, filtered by actor, action and target through
// GET /v1/audit's query parameters.
import { useCallback, useState } from "preact/hooks";
import type { Api, AuditFilter, AuditRecord } from "./api.js";
import { useLiveLoad } from "./use-live.js";

const LIMIT = 100;

export function AuditView(props: { api: Api; revision: number; onUnauthorized: () => void }) {
  const { api, revision, onUnauthorized } = props;
  const [filter, setFilter] = useState<AuditFilter>({ limit: LIMIT });
  const load = useCallback((signal: AbortSignal) => api.audit(filter, signal), [api, filter]);
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);

  function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setFilter({ actor: String(form.get("actor") ?? ""), action: String(form.get("action") ?? ""), target: String(form.get("target") ?? ""), limit: LIMIT });
  }

  return (
    <>
      <div class="title">
        <h1>Audit log</h1>
        <p class="meta" aria-live="polite">
          {error ? <span class="error">Not updated: {error.message}</span> : updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : "Loading…"}
        </p>
      </div>
      <form class="filters" role="search" aria-label="Filter the audit log" onSubmit={submit}>
        <label>
          Actor <input name="actor" defaultValue={filter.actor ?? ""} placeholder="user:ci" autoComplete="off" />
        </label>
        <label>
          Action <input name="action" defaultValue={filter.action ?? ""} placeholder="POST /v1/services/:name/scale" autoComplete="off" />
        </label>
        <label>
          Target <input name="target" defaultValue={filter.target ?? ""} placeholder="service/orders" autoComplete="off" />
        </label>
        <button type="submit">Filter</button>
      </form>
      {data === undefined ? null : data.length === 0 ? <p>No records match.</p> : <AuditTable records={data} />}
    </>
  );
}

function AuditTable(props: { records: AuditRecord[] }) {
  return (
    <div class="table-wrap">
      <table class="audit">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">Result</th>
          </tr>
        </thead>
        <tbody>
          {props.records.map((r) => (
            <tr key={r.seq} data-seq={r.seq}>
              <td>
                <time dateTime={r.at}>{new Date(r.at).toLocaleString()}</time>
              </td>
              <td data-field="actor">{r.actor}</td>
              <td data-field="action">
                <code>{r.action}</code>
              </td>
              <td data-field="target">{r.target}</td>
              <td data-field="result">
                <span class={`result ${r.result}`}>{r.result}</span>
                {r.status === undefined ? null : <span class="muted"> ({r.status})</span>}
                {r.error === undefined ? null : <span class="muted"> {r.error}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
