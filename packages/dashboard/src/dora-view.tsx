// The DORA and teams view (#/dora): the four keys with the buckets the API computes, their weekly
// trend as charts (and as a table), per service and per team, for the whole project, one team or
// one service over a chosen window. Two requests per reload (GET /v1/dora without the deployment
// list, GET /v1/teams); read-only, so every role sees the same page.
import { useCallback, useMemo, useState } from "preact/hooks";
import type { Api, Principal } from "./api.js";
import { Chart } from "./chart.js";
import { DORA_WINDOWS, loadDora, type DoraReport, type DoraScope, type DoraWindow, type Team } from "./dora-api.js";
import { bucketLabel, describeScope, formatDuration, formatRate, keyFigures, parseScope, plural, reportMatches, scopeOf, scopeOptions, scopeValue, teamTotals, weeklySeries, type KeyFigure } from "./dora-format.js";
import { serviceHref } from "./router.js";
import { useLiveLoad } from "./use-live.js";
import "./dora-view.css";

const WINDOW_DAYS: Record<DoraWindow, number> = { "30d": 30, "90d": 90, "180d": 180, "365d": 365 };
const COUNT = (v: number) => String(Math.round(v));

export function DoraView(props: { api: Api; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { api, revision, onUnauthorized } = props;
  const [scope, setScope] = useState<DoraScope>({ kind: "all" });
  const [span, setSpan] = useState<DoraWindow>("90d");
  const load = useCallback((signal: AbortSignal) => loadDora(api, { scope, window: span }, signal), [api, scope, span]);
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  const report = data?.report;
  // The previous answer stays on screen, marked as such, until the one for the new choice arrives.
  const current = report !== undefined && reportMatches(report, scope) && report.window.days === WINDOW_DAYS[span];
  const options = scopeOptions(data?.teams ?? [], report);

  return (
    <>
      <div class="title">
        <h1>DORA and teams{report ? <span class="project"> · {report.scope.project}</span> : null}</h1>
        <p class="meta" aria-live="polite">
          {error ? <span class="error">Not updated: {error.message}. Retrying…</span> : current && updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : "Loading…"}
        </p>
      </div>
      <form class="filters" aria-label="What the figures cover" onSubmit={(e) => e.preventDefault()}>
        <label>
          Scope
          <select value={scopeValue(scope)} onChange={(e) => setScope(parseScope(e.currentTarget.value))}>
            <option value="all">All services</option>
            {options.teams.length === 0 ? null : (
              <optgroup label="Teams">
                {options.teams.map((t) => (
                  <option key={t} value={scopeValue({ kind: "team", name: t })}>
                    Team {t}
                  </option>
                ))}
              </optgroup>
            )}
            {options.services.length === 0 ? null : (
              <optgroup label="Services">
                {options.services.map((s) => (
                  <option key={s} value={scopeValue({ kind: "service", name: s })}>
                    Service {s}
                  </option>
                ))}
              </optgroup>
            )}
          </select>
        </label>
        <label>
          Window
          <select value={span} onChange={(e) => setSpan(e.currentTarget.value as DoraWindow)}>
            {DORA_WINDOWS.map((w) => (
              <option key={w.value} value={w.value}>
                {w.label}
              </option>
            ))}
          </select>
        </label>
      </form>
      {report ? (
        <div class={current ? undefined : "dora-stale"} aria-busy={current ? undefined : "true"}>
          <Report report={report} teams={data?.teams ?? []} />
        </div>
      ) : null}
    </>
  );
}

function Report(props: { report: DoraReport; teams: Team[] }) {
  const { report, teams } = props;
  const scope = scopeOf(report);
  const { counts } = report;
  return (
    <>
      <p class="dora-scope" aria-live="polite" data-field="scope">
        {capitalize(describeScope(scope))}, {new Date(report.window.from).toLocaleDateString()} to {new Date(report.window.to).toLocaleDateString()}: {plural(counts.deployments, "deployment")} ({counts.successful}{" "}
        successful, {counts.failed} failed), {plural(counts.blocked, "rollout")} blocked before taking traffic, {plural(counts.incidents, "incident")}.
      </p>
      <section aria-labelledby="keys-heading">
        <h2 id="keys-heading">The four keys</h2>
        <ul class="dora-keys">
          {keyFigures(report).map((k) => (
            <KeyCard key={k.key} figure={k} />
          ))}
        </ul>
      </section>
      <Trends report={report} />
      <ServiceTable report={report} />
      {scope.kind === "all" ? <TeamTable report={report} teams={teams} /> : null}
    </>
  );
}

function KeyCard(props: { figure: KeyFigure }) {
  const { key, title, value, bucket, detail } = props.figure;
  return (
    <li class="dora-key" data-key={key}>
      <h3>{title}</h3>
      <p class="dora-value" data-field="value">
        {value ?? <span class="muted">No data</span>}
      </p>
      <p>
        <span class={`bucket ${bucket ?? "none"}`} data-field="bucket">
          {bucketLabel(bucket)}
        </span>
      </p>
      <p class="muted" data-field="detail">
        {detail}
      </p>
    </li>
  );
}

function Trends(props: { report: DoraReport }) {
  const { weeks } = props.report;
  const s = useMemo(() => weeklySeries(weeks), [weeks]);
  const charts = useMemo(
    () => ({
      deployments: [
        { label: "Successful", values: s.successful, color: "#16a34a" },
        { label: "Failed", values: s.failed, color: "#dc2626" },
      ],
      lead: [{ label: "Median lead time", values: s.leadTimeMs }],
      cfr: [{ label: "Change failure rate", values: s.changeFailureRate, color: "#dc2626" }],
      recovery: [{ label: "Median time to restore", values: s.recoveryMs, color: "#9333ea" }],
    }),
    [s],
  );
  return (
    <section aria-labelledby="trends-heading">
      <h2 id="trends-heading">Weekly trends</h2>
      <div class="dora-charts">
        <figure>
          <figcaption>Deployments per week</figcaption>
          <Chart title="Successful and failed deployments per week" times={s.times} series={charts.deployments} format={COUNT} height={160} />
        </figure>
        <figure>
          <figcaption>Median lead time for changes</figcaption>
          <Chart title="Median lead time for changes per week" times={s.times} series={charts.lead} format={formatDuration} height={160} />
        </figure>
        <figure>
          <figcaption>Change failure rate</figcaption>
          <Chart title="Change failure rate per week" times={s.times} series={charts.cfr} format={formatRate} height={160} />
        </figure>
        <figure>
          <figcaption>Median time to restore</figcaption>
          <Chart title="Median time to restore per week" times={s.times} series={charts.recovery} format={formatDuration} height={160} />
        </figure>
      </div>
      <details class="dora-weeks">
        <summary>The weekly figures as a table</summary>
        <div class="table-wrap">
          <table class="dora-weeks-table">
            <thead>
              <tr>
                <th scope="col">Week</th>
                <th scope="col">Deployments</th>
                <th scope="col">Failed</th>
                <th scope="col">Median lead time</th>
                <th scope="col">Change failure rate</th>
                <th scope="col">Median time to restore</th>
              </tr>
            </thead>
            <tbody>
              {weeks.map((w) => (
                <tr key={w.week} data-week={w.week}>
                  <th scope="row">
                    {w.week} <span class="muted">({w.start})</span>
                  </th>
                  <td>{w.deployments}</td>
                  <td>{w.failed}</td>
                  <td>{orNone(w.medianLeadTimeMs, formatDuration)}</td>
                  <td>{orNone(w.changeFailureRate, formatRate)}</td>
                  <td>{orNone(w.medianRecoveryMs, formatDuration)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </section>
  );
}

function ServiceTable(props: { report: DoraReport }) {
  const { services } = props.report;
  return (
    <section aria-labelledby="by-service-heading">
      <h2 id="by-service-heading">By service</h2>
      {services.length === 0 ? (
        <p>No deployments in the window.</p>
      ) : (
        <div class="table-wrap">
          <table class="dora-services">
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Team</th>
                <th scope="col">Deployments</th>
                <th scope="col">Failed</th>
                <th scope="col">Change failure rate</th>
                <th scope="col">Median lead time</th>
                <th scope="col">Median time to restore</th>
              </tr>
            </thead>
            <tbody>
              {services.map((s) => (
                <tr key={s.service} data-service={s.service}>
                  <th scope="row">
                    <a href={serviceHref(s.service)}>{s.service}</a>
                  </th>
                  <td>{s.team ?? <span class="muted">none</span>}</td>
                  <td data-field="deployments">{s.deployments}</td>
                  <td>{s.failed}</td>
                  <td>{orNone(s.changeFailureRate, formatRate)}</td>
                  <td>{orNone(s.medianLeadTimeMs, formatDuration)}</td>
                  <td>{orNone(s.medianRecoveryMs, formatDuration)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function TeamTable(props: { report: DoraReport; teams: Team[] }) {
  const totals = teamTotals(props.teams, props.report.services);
  return (
    <section aria-labelledby="teams-heading">
      <h2 id="teams-heading">Teams</h2>
      <p class="hint">Deployments in the window summed over each team's services; choose a team above for its medians and buckets.</p>
      {totals.length === 0 ? (
        <p>No teams: declare them under <code>teams</code> in keelson.yaml, or give services an owner.</p>
      ) : (
        <div class="table-wrap">
          <table class="dora-teams">
            <thead>
              <tr>
                <th scope="col">Team</th>
                <th scope="col">Members</th>
                <th scope="col">Services</th>
                <th scope="col">Deployments</th>
                <th scope="col">Failed</th>
                <th scope="col">Change failure rate</th>
              </tr>
            </thead>
            <tbody>
              {totals.map((t) => (
                <tr key={t.team} data-team={t.team}>
                  <th scope="row">{t.team}</th>
                  <td>{t.members}</td>
                  <td>{t.services}</td>
                  <td data-field="deployments">{t.deployments}</td>
                  <td>{t.failed}</td>
                  <td>{orNone(t.changeFailureRate, formatRate)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function orNone(value: number | null, format: (v: number) => string) {
  return value === null ? <span class="muted">–</span> : format(value);
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
