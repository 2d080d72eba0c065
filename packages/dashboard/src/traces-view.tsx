// The Traces views: a search (#/traces) over GET /v1/traces, and one trace's waterfall
// (#/traces/<id>) from GET /v1/traces/:id, each span a row indented by depth with a bar placed by
// its start and duration, its attributes shown when selected, and under it the log lines that
// share the trace's id (GET /v1/traces/:id/logs), the selected span's lines highlighted.
import { Fragment } from "preact";
import { useCallback, useState } from "preact/hooks";
import { ApiError, type Api, type SpanRecord, type TraceSearch, type TraceSummary } from "./api.js";
import { traceHref } from "./router.js";
import { fetchTraceLogs, logRows } from "./trace-logs.js";
import { useLiveLoad } from "./use-live.js";
import "./traces-view.css";

const WINDOWS = [
  ["15m", "Last 15 minutes"],
  ["1h", "Last hour"],
  ["6h", "Last 6 hours"],
  ["24h", "Last 24 hours"],
] as const;

/** "850 µs", "12.3 ms", "1.52 s". */
export function formatDuration(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

function Status(props: { error: Error | undefined; updatedAt: Date | undefined }) {
  return (
    <p class="meta" aria-live="polite">
      {props.error ? <span class="error">Not updated: {props.error.message}</span> : props.updatedAt ? `Updated ${props.updatedAt.toLocaleTimeString()}` : "Loading…"}
    </p>
  );
}

export function TracesView(props: { api: Api; revision: number; onUnauthorized: () => void }) {
  const { api, revision, onUnauthorized } = props;
  const [search, setSearch] = useState<TraceSearch>({ since: "1h", limit: 50 });
  const load = useCallback((signal: AbortSignal) => api.searchTraces(search, signal), [api, search]);
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);

  function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setSearch({
      service: String(form.get("service") ?? ""),
      minDuration: String(form.get("minDuration") ?? ""),
      errorsOnly: form.get("errorsOnly") === "on",
      since: String(form.get("since") ?? "1h"),
      limit: 50,
    });
  }

  return (
    <>
      <div class="title">
        <h1>Traces</h1>
        <Status error={error} updatedAt={updatedAt} />
      </div>
      <form class="filters" role="search" aria-label="Search traces" onSubmit={submit}>
        <label>
          Service <input name="service" defaultValue={search.service ?? ""} autoComplete="off" />
        </label>
        <label>
          Min duration <input name="minDuration" defaultValue={search.minDuration ?? ""} placeholder="250ms" autoComplete="off" />
        </label>
        <label>
          Window{" "}
          <select name="since" defaultValue={search.since}>
            {WINDOWS.map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" name="errorsOnly" defaultChecked={search.errorsOnly === true} /> Errors only
        </label>
        <button type="submit">Search</button>
      </form>
      {data === undefined ? null : data.length === 0 ? <p>No traces match.</p> : <TraceTable traces={data} />}
    </>
  );
}

function TraceTable(props: { traces: TraceSummary[] }) {
  return (
    <div class="table-wrap">
      <table class="traces">
        <thead>
          <tr>
            <th scope="col">Root span</th>
            <th scope="col">Service</th>
            <th scope="col">Duration</th>
            <th scope="col">Spans</th>
            <th scope="col">Errors</th>
            <th scope="col">Started</th>
          </tr>
        </thead>
        <tbody>
          {props.traces.map((t) => (
            <tr key={t.traceId} data-trace={t.traceId}>
              <th scope="row">
                <a href={traceHref(t.traceId)}>{t.rootName}</a>
              </th>
              <td data-field="service">{t.rootService}</td>
              <td data-field="duration">{formatDuration(t.durationUs)}</td>
              <td data-field="spans">{t.spanCount}</td>
              <td data-field="errors">{t.errorCount > 0 ? <span class="bad">✕ {t.errorCount}</span> : <span class="muted">none</span>}</td>
              <td>
                <time dateTime={new Date(t.startTimeUs / 1000).toISOString()}>{new Date(t.startTimeUs / 1000).toLocaleString()}</time>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export interface WaterfallRow {
  span: SpanRecord;
  depth: number;
}

/** Spans depth first, children by start time; a span whose parent is missing starts a new root. */
export function waterfallRows(spans: readonly SpanRecord[]): WaterfallRow[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | undefined, SpanRecord[]>();
  for (const s of spans) {
    const parent = s.parentSpanId !== undefined && ids.has(s.parentSpanId) ? s.parentSpanId : undefined;
    children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const rows: WaterfallRow[] = [];
  const visit = (parent: string | undefined, depth: number) => {
    for (const s of [...(children.get(parent) ?? [])].sort((a, b) => a.startTimeUs - b.startTimeUs)) {
      rows.push({ span: s, depth });
      visit(s.spanId, depth + 1);
    }
  };
  visit(undefined, 0);
  return rows;
}

export function TraceView(props: { api: Api; traceId: string; onUnauthorized: () => void }) {
  const { api, traceId, onUnauthorized } = props;
  const load = useCallback((signal: AbortSignal) => api.trace(traceId, signal), [api, traceId]);
  // Spans do not change once stored: no reload on events (revision fixed at 0).
  const { data, error, updatedAt } = useLiveLoad(load, 0, onUnauthorized);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const crumbs = (
    <nav aria-label="Breadcrumb" class="crumbs">
      <a href="#/traces">Traces</a>
    </nav>
  );
  if (error instanceof ApiError && error.status === 404) {
    return (
      <>
        {crumbs}
        <h1>No trace {traceId}</h1>
        <p>The control plane stores no spans for that trace (it may have aged out).</p>
      </>
    );
  }
  const rows = data === undefined ? [] : waterfallRows(data);
  const start = Math.min(...rows.map((r) => r.span.startTimeUs));
  const end = Math.max(...rows.map((r) => r.span.startTimeUs + r.span.durationUs));
  const total = Math.max(end - start, 1);
  const chosen = rows.find((r) => r.span.spanId === selected)?.span;
  return (
    <>
      {crumbs}
      <div class="title">
        <h1 class="trace-title">
          Trace <code>{traceId}</code>
        </h1>
        <Status error={error} updatedAt={updatedAt} />
      </div>
      {rows.length === 0 ? null : (
        <>
          <p data-field="trace-summary">
            {rows.length} spans · {formatDuration(total)}
          </p>
          <ol class="waterfall" aria-label="Spans">
            {rows.map(({ span, depth }) => (
              <li key={span.spanId} data-span={span.spanId}>
                <button
                  type="button"
                  class={`span-row${span.status === "error" ? " failed" : ""}`}
                  aria-pressed={span.spanId === selected}
                  onClick={() => setSelected(span.spanId === selected ? undefined : span.spanId)}
                >
                  {/* Inline styles through the CSSOM (Preact sets style objects property by property), which style-src 'self' allows. */}
                  <span class="span-name" style={{ paddingLeft: `${depth * 1.25}rem` }}>
                    {span.status === "error" ? <span class="bad">✕ </span> : null}
                    <span class="muted">{span.service}</span> {span.name}
                  </span>
                  <span class="span-track">
                    <span
                      class="span-bar"
                      style={{ left: `${((span.startTimeUs - start) / total) * 100}%`, width: `${Math.max((span.durationUs / total) * 100, 0.5)}%` }}
                    />
                  </span>
                  <span class="span-duration">{formatDuration(span.durationUs)}</span>
                </button>
              </li>
            ))}
          </ol>
          {chosen === undefined ? <p class="hint">Select a span to see its attributes.</p> : <SpanDetails span={chosen} />}
          <TraceLogs api={api} traceId={traceId} startUs={start} selected={chosen} onUnauthorized={onUnauthorized} />
        </>
      )}
    </>
  );
}

/** "+12.3 ms" from the trace's start ("−" for a line stamped before it: clocks differ). */
function offsetText(us: number): string {
  return us < 0 ? `−${formatDuration(-us)}` : `+${formatDuration(us)}`;
}

function TraceLogs(props: { api: Api; traceId: string; startUs: number; selected: SpanRecord | undefined; onUnauthorized: () => void }) {
  const { api, traceId, startUs, selected, onUnauthorized } = props;
  // Lines may be collected a moment after the spans arrive: Refresh asks again (a new load function runs at once).
  const [asked, setAsked] = useState(0);
  const load = useCallback((signal: AbortSignal) => fetchTraceLogs(api, traceId, signal), [api, traceId, asked]);
  const { data, error } = useLiveLoad(load, 0, onUnauthorized);
  const [onlySelected, setOnlySelected] = useState(false);
  const rows = logRows(data?.logs ?? [], selected);
  const shown = selected !== undefined && onlySelected ? rows.filter((r) => r.relation !== "other") : rows;
  return (
    <section aria-labelledby="trace-logs-heading" class="trace-logs">
      <div class="title">
        <h2 id="trace-logs-heading">Logs</h2>
        <button type="button" class="quiet" onClick={() => setAsked((n) => n + 1)}>
          Refresh logs
        </button>
      </div>
      {error ? <p class="error">Logs not loaded: {error.message}</p> : null}
      {data === undefined ? (
        error ? null : <p class="hint">Loading logs…</p>
      ) : (
        <>
          <p class="hint" data-field="log-summary">
            {data.logs.length === 0 ? "No lines" : `${data.logs.length} ${data.logs.length === 1 ? "line" : "lines"}`} with this trace's id in the logs of{" "}
            {data.services.length === 0 ? "no service of the project" : data.services.join(", ")}
            {data.truncated ? ` (the first ${data.logs.length} shown)` : ""}. Services write it on each line with @keelson/sdk's logger.
          </p>
          {selected === undefined || rows.length === 0 ? null : (
            <label class="check log-filter">
              <input type="checkbox" checked={onlySelected} onChange={(e) => setOnlySelected((e.currentTarget as HTMLInputElement).checked)} /> Only lines of{" "}
              {selected.service}
            </label>
          )}
          {shown.length === 0 ? null : (
            <ol class="log-lines" aria-label="Log lines">
              {shown.map(({ index, log, entry, relation }) => (
                <li key={index} class={`log-line ${relation} ${log.stream}`} data-service={log.service} data-span={log.spanId} data-relation={relation}>
                  <span class="log-when">
                    <time dateTime={new Date(entry.atMs).toISOString()} title={new Date(entry.atMs).toISOString()}>
                      {new Date(entry.atMs).toLocaleTimeString(undefined, { hour12: false, hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3 })}
                    </time>{" "}
                    <span class="muted">{offsetText(entry.atMs * 1000 - startUs)}</span>
                  </span>
                  <span class="log-source">
                    <span class="log-service">{log.service}</span> <span class="muted">{log.replica}</span>
                    {relation === "span" ? <span class="log-mark"> · this span</span> : null}
                  </span>
                  <span class="log-text">
                    {entry.level === undefined ? null : <span class={`log-level ${entry.level}`}>{entry.level} </span>}
                    <span class="log-message">{entry.message}</span>
                    {entry.fields === "" ? null : <span class="muted"> {entry.fields}</span>}
                  </span>
                </li>
              ))}
            </ol>
          )}
        </>
      )}
    </section>
  );
}

function SpanDetails(props: { span: SpanRecord }) {
  const { span } = props;
  const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  return (
    <section aria-labelledby="span-heading" class="span-details">
      <h2 id="span-heading">
        {span.service}: {span.name}
      </h2>
      <dl class="facts">
        <dt>Span id</dt>
        <dd>
          <code>{span.spanId}</code>
        </dd>
        <dt>Kind</dt>
        <dd>{span.kind}</dd>
        <dt>Status</dt>
        <dd>
          {span.status}
          {span.statusMessage ? `: ${span.statusMessage}` : ""}
        </dd>
        <dt>Duration</dt>
        <dd>{formatDuration(span.durationUs)}</dd>
        {Object.entries(span.attributes).map(([k, v]) => (
          <Fragment key={k}>
            <dt>
              <code>{k}</code>
            </dt>
            <dd data-attribute={k}>{show(v)}</dd>
          </Fragment>
        ))}
      </dl>
    </section>
  );
}
