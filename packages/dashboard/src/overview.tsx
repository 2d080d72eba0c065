// The Overview: every service with its owner, release, replicas, traffic (request rate, error ratio,
// p99), error budget and routes; the rollouts under way, the open incidents and the latest events.
// Four requests per reload whatever the number of services (GET /v1/status, /v1/events,
// /v1/metrics, /v1/slo), loaded again whenever the event stream reports a change.
import { useCallback } from "preact/hooks";
import type { ActiveRollout, KeelsonEvent, ServiceStatus } from "@keelson/protocol";
import type { Api } from "./api.js";
import { isUnavailable, loadOverviewTelemetry, type OpenIncident, type OverviewTelemetry, type RedRow, type SloRow } from "./overview-api.js";
import { describeObjective, describeRollout, errorBudget, openIncidents, redByService, redCells, type Cell } from "./overview-metrics.js";
import { serviceHref } from "./router.js";
import { useLiveLoad } from "./use-live.js";
import "./overview.css";

const EVENTS = 20;

export function Overview(props: { api: Api; revision: number; onUnauthorized: () => void }) {
  const { api, revision, onUnauthorized } = props;
  const load = useCallback(
    (signal: AbortSignal) => Promise.all([api.status(signal), api.latestEvents(EVENTS, signal), loadOverviewTelemetry(api, signal)]),
    [api],
  );
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  const [status, events, telemetry] = data ?? [undefined, undefined, undefined];
  const rollouts = status?.services.flatMap((s) => (s.rollout === undefined ? [] : [{ service: s.name, rollout: s.rollout }])) ?? [];
  const incidents = telemetry && !isUnavailable(telemetry.slos) ? openIncidents(telemetry.slos) : undefined;

  return (
    <>
      <div class="title">
        <h1>Overview{status ? <span class="project"> · {status.project}</span> : null}</h1>
        <p class="meta" aria-live="polite">
          {error ? <span class="error">Not updated: {error.message}. Retrying…</span> : updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : "Loading…"}
        </p>
      </div>
      <section aria-labelledby="services-heading">
        <h2 id="services-heading">Services</h2>
        {status && status.services.length === 0 ? <p>No services yet: run <code>keelson up</code>.</p> : null}
        {status && telemetry && status.services.length > 0 ? (
          <>
            <TelemetryNote telemetry={telemetry} />
            <ServiceTable services={status.services} telemetry={telemetry} incidents={incidents ?? []} />
          </>
        ) : null}
      </section>
      <div class="overview-now">
        <section aria-labelledby="rollouts-heading" data-section="rollouts">
          <h2 id="rollouts-heading">Rollouts under way</h2>
          {status ? <RolloutList rollouts={rollouts} /> : null}
        </section>
        <section aria-labelledby="incidents-heading" data-section="incidents">
          <h2 id="incidents-heading">Open incidents</h2>
          {telemetry ? isUnavailable(telemetry.slos) ? <p class="muted">Not available: {telemetry.slos.unavailable}.</p> : <IncidentList incidents={incidents ?? []} slos={telemetry.slos} /> : null}
        </section>
      </div>
      <section aria-labelledby="events-heading">
        <h2 id="events-heading">Latest events</h2>
        {events ? <EventList events={events} /> : null}
      </section>
    </>
  );
}

function TelemetryNote(props: { telemetry: OverviewTelemetry }) {
  const { metrics, slos } = props.telemetry;
  return (
    <p class="hint" id="services-hint">
      Requests, errors (5xx) and p99 latency at the gateway over the last 5 minutes; error budget: what is left of the service's tightest SLO.
      {isUnavailable(metrics) ? <span class="error"> Metrics not available: {metrics.unavailable}.</span> : null}
      {isUnavailable(slos) ? <span class="error"> SLOs not available: {slos.unavailable}.</span> : null}
    </p>
  );
}

function ServiceTable(props: { services: ServiceStatus[]; telemetry: OverviewTelemetry; incidents: OpenIncident[] }) {
  const { metrics, slos } = props.telemetry;
  const red = isUnavailable(metrics) ? undefined : redByService(metrics);
  return (
    <div class="table-wrap">
      <table class="services" aria-describedby="services-hint">
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Owner</th>
            <th scope="col">Release</th>
            <th scope="col">Replicas ready</th>
            <th scope="col">Requests/s</th>
            <th scope="col">Errors</th>
            <th scope="col">p99</th>
            <th scope="col">Error budget</th>
            <th scope="col">Routes</th>
          </tr>
        </thead>
        <tbody>
          {props.services.map((s) => (
            <ServiceRow key={s.name} service={s} red={red} slos={isUnavailable(slos) ? undefined : slos} incidents={props.incidents.filter((i) => i.service === s.name).length} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function ServiceRow(props: { service: ServiceStatus; red: Map<string, RedRow> | undefined; slos: SloRow[] | undefined; incidents: number }) {
  const { service: s, red, slos, incidents } = props;
  const unknown: Cell = { text: "n/a", tone: "none", detail: "not available" };
  const cells = red === undefined ? { rate: unknown, errors: unknown, p99: unknown } : redCells(red.get(s.name));
  const budget = slos === undefined ? unknown : errorBudget(slos, s.name);
  return (
    <tr data-service={s.name}>
      <th scope="row" data-label="Service">
        <a href={serviceHref(s.name)}>{s.name}</a>
        {s.rollout === undefined ? null : (
          <span class="badge rollout" data-badge="rollout">
            {s.rollout.phase === "paused" ? "rollout paused" : "rolling out"}
          </span>
        )}
        {incidents === 0 ? null : (
          <span class="badge incident" data-badge="incident">
            {incidents === 1 ? "incident" : `${incidents} incidents`}
          </span>
        )}
      </th>
      <td data-label="Owner">{s.owner}</td>
      <td data-label="Release">{s.release === undefined ? <span class="muted">none</span> : <code title={s.release}>{shortRelease(s.release)}</code>}</td>
      <td data-label="Replicas ready">
        <Replicas ready={s.replicas.ready} desired={s.replicas.desired} />
      </td>
      <MetricCell label="Requests/s" field="rate" cell={cells.rate} />
      <MetricCell label="Errors" field="errors" cell={cells.errors} />
      <MetricCell label="p99" field="p99" cell={cells.p99} />
      <MetricCell label="Error budget" field="budget" cell={budget} />
      <td data-label="Routes">{s.routes.length === 0 ? <span class="muted">none</span> : s.routes.map((r) => <code key={r} class="route">{r}</code>)}</td>
    </tr>
  );
}

function MetricCell(props: { label: string; field: string; cell: Cell }) {
  const { label, field, cell } = props;
  return (
    <td data-label={label} data-field={field} class={`metric tone-${cell.tone}`} title={cell.detail}>
      {cell.text}
      {cell.detail === undefined ? null : <span class="visually-hidden"> ({cell.detail})</span>}
    </td>
  );
}

function RolloutList(props: { rollouts: Array<{ service: string; rollout: ActiveRollout }> }) {
  if (props.rollouts.length === 0) return <p>No rollouts under way.</p>;
  return (
    <ul class="now-list">
      {props.rollouts.map(({ service, rollout: r }) => (
        <li key={r.id} data-rollout={service}>
          <a href={serviceHref(service)}>{service}</a>
          <span class={`phase ${r.phase}`}>{describeRollout(r)}</span>
          <span class="muted">
            {r.from === undefined ? null : (
              <>
                <code title={r.from}>{shortRelease(r.from)}</code> →{" "}
              </>
            )}
            <code title={r.to}>{shortRelease(r.to)}</code> · since <time dateTime={r.startedAt}>{new Date(r.startedAt).toLocaleTimeString()}</time>
          </span>
          {r.message === undefined ? null : <span class="muted">{r.message}</span>}
        </li>
      ))}
      <li class="more">
        <a href="#/deploys">Pipelines and rollouts</a>
      </li>
    </ul>
  );
}

function IncidentList(props: { incidents: OpenIncident[]; slos: SloRow[] }) {
  if (props.incidents.length === 0) return <p>No open incidents.</p>;
  return (
    <ul class="now-list">
      {props.incidents.map((i) => {
        const objective = props.slos.find((s) => s.incident?.id === i.id);
        return (
          <li key={i.id} data-incident={i.service}>
            <a href={serviceHref(i.service)}>{i.service}</a>
            <span class={`severity ${i.severity}`}>{i.severity === "page" ? "Page" : "Ticket"}</span>
            <span>{objective ? describeObjective(objective) : `${i.slo} (${i.objective})`}: burning its error budget</span>
            <span class="muted">
              since <time dateTime={i.openedAt}>{new Date(i.openedAt).toLocaleString()}</time>
            </span>
          </li>
        );
      })}
    </ul>
  );
}

export function Replicas(props: { ready: number; desired: number }) {
  const { ready, desired } = props;
  const health = ready >= desired ? "ok" : ready === 0 && desired > 0 ? "down" : "partial";
  const words = { ok: "all ready", partial: "some not ready", down: "none ready" }[health];
  return (
    <span class={`replicas ${health}`} aria-label={`${ready} of ${desired} ready, ${words}`}>
      <span class="count">
        {ready}/{desired}
      </span>
    </span>
  );
}

export function EventList(props: { events: KeelsonEvent[] }) {
  if (props.events.length === 0) return <p>No events yet.</p>;
  return (
    <ol class="events">
      {props.events.map((e) => (
        <li key={e.seq}>
          <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time>
          <span class="kind">{e.kind}</span>
          <span class="subject">{e.subject}</span>
          <span class="actor">by {e.actor}</span>
        </li>
      ))}
    </ol>
  );
}

/** Releases are content hashes; the first 12 characters tell them apart. */
export function shortRelease(release: string): string {
  return release.length > 12 ? release.slice(0, 12) : release;
}
