// The Overview: every service with its owner, release, replicas and routes, and the latest events,
// from GET /v1/status and GET /v1/events, loaded again whenever the event stream reports a change.
import { useCallback } from "preact/hooks";
import type { KeelsonEvent, ServiceStatus } from "@keelson/protocol";
import type { Api } from "./api.js";
import { serviceHref } from "./router.js";
import { useLiveLoad } from "./use-live.js";

const EVENTS = 20;

export function Overview(props: { api: Api; revision: number; onUnauthorized: () => void }) {
  const { api, revision, onUnauthorized } = props;
  const load = useCallback((signal: AbortSignal) => Promise.all([api.status(signal), api.latestEvents(EVENTS, signal)]), [api]);
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  const [status, events] = data ?? [undefined, undefined];

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
        {status && status.services.length > 0 ? <ServiceTable services={status.services} /> : null}
      </section>
      <section aria-labelledby="events-heading">
        <h2 id="events-heading">Latest events</h2>
        {events ? <EventList events={events} /> : null}
      </section>
    </>
  );
}

function ServiceTable(props: { services: ServiceStatus[] }) {
  return (
    <div class="table-wrap">
      <table class="services">
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Owner</th>
            <th scope="col">Release</th>
            <th scope="col">Replicas ready</th>
            <th scope="col">Routes</th>
          </tr>
        </thead>
        <tbody>
          {props.services.map((s) => (
            <tr key={s.name} data-service={s.name}>
              <th scope="row" data-label="Service">
                <a href={serviceHref(s.name)}>{s.name}</a>
              </th>
              <td data-label="Owner">{s.owner}</td>
              <td data-label="Release">{s.release === undefined ? <span class="muted">none</span> : <code title={s.release}>{shortRelease(s.release)}</code>}</td>
              <td data-label="Replicas ready">
                <Replicas ready={s.replicas.ready} desired={s.replicas.desired} />
              </td>
              <td data-label="Routes">{s.routes.length === 0 ? <span class="muted">none</span> : s.routes.map((r) => <code key={r} class="route">{r}</code>)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
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
