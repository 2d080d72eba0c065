// The service map (#/map): who calls whom over a window, from GET /v1/service-map, drawn as an
// SVG graph laid out by dagre (boxes link to the service view, arrows colored by error ratio, dash
// patterns for calls the manifest does not declare or that nobody made), with the same calls as a table.
import { useCallback, useState } from "preact/hooks";
import type { Api, Principal } from "./api.js";
import { fetchServiceMap, type ServiceMapData } from "./map-api.js";
import type { MapLayout } from "./map-layout.js";
import { serviceHref } from "./router.js";
import { formatMs, formatRatio, mapLinks, pathThrough, type Declaration, type ErrorBucket, type MapLink } from "./service-map.js";
import { useLiveLoad } from "./use-live.js";
import "./service-map.css";

const WINDOWS = [
  ["5m", "Last 5 minutes"],
  ["15m", "Last 15 minutes"],
  ["1h", "Last hour"],
  ["6h", "Last 6 hours"],
  ["24h", "Last 24 hours"],
] as const;

const BUCKETS: ReadonlyArray<[ErrorBucket, string]> = [
  ["ok", "under 1 % errors"],
  ["warn", "1 % to 5 % errors"],
  ["bad", "5 % errors or more"],
  ["none", "no traffic"],
];

const DECLARATIONS: ReadonlyArray<[Declaration, string]> = [
  ["declared", "declared and called"],
  ["unused", "declared, not called"],
  ["undeclared", "called, not declared"],
];

interface LaidOutMap {
  data: ServiceMapData;
  links: MapLink[];
  layout: MapLayout;
}

/** The map and its layout; dagre comes in its own chunk, loaded with the first map. */
async function loadMap(api: Api, period: string, signal: AbortSignal): Promise<LaidOutMap> {
  const [data, { layoutMap }] = await Promise.all([fetchServiceMap(api, period, signal), import("./map-layout.js")]);
  const links = mapLinks(data);
  return { data, links, layout: layoutMap(data, links) };
}

export function ServiceMapView(props: { api: Api; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { api, revision, onUnauthorized } = props;
  const [period, setPeriod] = useState("15m");
  // Spans arrive without events: Refresh asks again now rather than at the next safety poll (a
  // new `asked` makes a new load function, which useLiveLoad runs at once).
  const [asked, setAsked] = useState(0);
  const load = useCallback((signal: AbortSignal) => loadMap(api, period, signal), [api, period, asked]);
  const { data, error, updatedAt } = useLiveLoad(load, revision, onUnauthorized);
  const windowText = WINDOWS.find(([w]) => w === period)?.[1].toLowerCase() ?? period;

  return (
    <>
      <div class="title">
        <h1>Service map</h1>
        <p class="meta" aria-live="polite">
          {error ? <span class="error">Not updated: {error.message}</span> : updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : "Loading…"}
        </p>
      </div>
      <div class="filters map-controls">
        <label>
          Window{" "}
          <select name="window" value={period} onChange={(e) => setPeriod((e.currentTarget as HTMLSelectElement).value)}>
            {WINDOWS.map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </select>
        </label>
        <button type="button" class="quiet" onClick={() => setAsked((n) => n + 1)}>
          Refresh
        </button>
      </div>
      {data === undefined ? null : <MapBody map={data} windowText={windowText} />}
    </>
  );
}

function MapBody(props: { map: LaidOutMap; windowText: string }) {
  const { map, windowText } = props;
  const { data, links, layout } = map;
  const calls = data.edges.reduce((n, e) => n + e.calls, 0);
  if (layout.boxes.length === 0) return <p>No services and no calls in the {windowText}.</p>;
  return (
    <>
      <p data-field="map-summary">
        {data.nodes.length} {data.nodes.length === 1 ? "service" : "services"} · {calls} {calls === 1 ? "call" : "calls"} in the {windowText}
        {data.edges.length === 0 ? ". Calls through the gateway show up here once their spans arrive." : ""}
      </p>
      <Legend />
      <MapGraph layout={layout} windowText={windowText} />
      <section aria-labelledby="map-edges-heading">
        <h2 id="map-edges-heading">Calls</h2>
        {links.length === 0 ? <p>No calls and none declared.</p> : <EdgeTable links={links} />}
      </section>
    </>
  );
}

function Legend() {
  return (
    <div class="map-legend">
      <p id="map-legend-colors">Color, by errors:</p>
      <ul aria-labelledby="map-legend-colors">
        {BUCKETS.map(([bucket, text]) => (
          <li key={bucket}>
            <Swatch bucket={bucket} declaration="declared" />
            {text}
          </li>
        ))}
      </ul>
      <p id="map-legend-lines">Line, by the manifest's calls:</p>
      <ul aria-labelledby="map-legend-lines">
        {DECLARATIONS.map(([declaration, text]) => (
          <li key={declaration}>
            <Swatch bucket="neutral" declaration={declaration} />
            {text}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Swatch(props: { bucket: ErrorBucket | "neutral"; declaration: Declaration }) {
  return (
    <svg class={`map-swatch map-edge ${props.bucket} ${props.declaration}`} viewBox="0 0 32 10" width="32" height="10" aria-hidden="true">
      <line x1="1" y1="5" x2="31" y2="5" />
    </svg>
  );
}

/** Stroke width by traffic: a busy edge reads heavier, within 1.5 to 5 units. */
function strokeWidth(link: MapLink): number {
  return link.calls === 0 ? 1.5 : Math.min(5, 1.5 + Math.log10(link.calls + 1));
}

function MapGraph(props: { layout: MapLayout; windowText: string }) {
  const { layout, windowText } = props;
  return (
    <figure class="map-figure">
      <svg
        class="map-svg"
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        // Never wider than laid out (small maps stay readable), narrower on small screens.
        style={{ maxWidth: `${layout.width}px` }}
        aria-labelledby="map-caption"
      >
        <defs>
          {(["ok", "warn", "bad", "none"] as const).map((bucket) => (
            <marker key={bucket} id={`map-arrow-${bucket}`} class={`map-arrow ${bucket}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" />
            </marker>
          ))}
        </defs>
        <g class="map-edges">
          {layout.routes.map(({ link, points }) => (
            <g key={link.id} class={`map-edge ${link.bucket} ${link.declaration}`} data-edge={link.id} data-bucket={link.bucket} data-declaration={link.declaration}>
              <title>{link.description}</title>
              <path d={pathThrough(points)} style={{ strokeWidth: strokeWidth(link) }} marker-end={`url(#map-arrow-${link.bucket})`} />
            </g>
          ))}
        </g>
        <g class="map-labels" aria-hidden="true">
          {layout.routes.map(({ link, labelAt }) =>
            labelAt === undefined ? null : (
              <text key={link.id} class={`map-label ${link.bucket} ${link.declaration}`} data-edge-label={link.id} x={labelAt.x} y={labelAt.y} text-anchor="middle" dominant-baseline="central">
                {link.label}
              </text>
            ),
          )}
        </g>
        <g class="map-nodes">
          {layout.boxes.map((box) => {
            const shape = (
              <>
                <rect x={box.x - box.width / 2} y={box.y - box.height / 2} width={box.width} height={box.height} rx="6" />
                <text x={box.x} y={box.y} text-anchor="middle" dominant-baseline="central">
                  {box.service}
                </text>
              </>
            );
            return box.external ? (
              <g key={box.service} class="map-node external" data-node={box.service}>
                <title>Requests from outside the project (browsers, scripts) or from callers that send no spans</title>
                {shape}
              </g>
            ) : (
              <a key={box.service} class="map-node" data-node={box.service} href={serviceHref(box.service)} aria-label={`${box.service}: open the service`}>
                {shape}
              </a>
            );
          })}
        </g>
      </svg>
      <figcaption id="map-caption" class="hint">
        Calls between services in the {windowText}, callers on the left. Each box opens its service; the table below lists the same calls.
      </figcaption>
    </figure>
  );
}

const DECLARATION_TEXT: Record<Declaration, string> = {
  declared: "declared",
  undeclared: "not declared",
  unused: "declared, unused",
  external: "from outside",
};

function ServiceName(props: { name: string }) {
  return props.name.startsWith("(") ? <span class="muted">{props.name}</span> : <a href={serviceHref(props.name)}>{props.name}</a>;
}

function EdgeTable(props: { links: MapLink[] }) {
  return (
    <div class="table-wrap">
      <table class="map-edges-table">
        <thead>
          <tr>
            <th scope="col">Caller</th>
            <th scope="col">Callee</th>
            <th scope="col">Calls</th>
            <th scope="col">Errors</th>
            <th scope="col">p95</th>
            <th scope="col">Manifest</th>
          </tr>
        </thead>
        <tbody>
          {props.links.map((l) => (
            <tr key={l.id} data-edge={l.id} data-bucket={l.bucket} data-declaration={l.declaration}>
              <th scope="row" data-label="Caller">
                <ServiceName name={l.from} />
              </th>
              <td data-label="Callee">
                <ServiceName name={l.to} />
              </td>
              <td data-label="Calls" data-field="calls">
                {l.calls}
                {l.ratePerSecond > 0 ? <span class="muted"> ({(l.ratePerSecond * 60).toFixed(1)}/min)</span> : null}
              </td>
              <td data-label="Errors" data-field="errors">
                {l.calls === 0 ? (
                  <span class="muted">no traffic</span>
                ) : (
                  <span class={`map-ratio ${l.bucket}`}>
                    {formatRatio(l.errorRatio)} <span class="muted">({l.errors} failed)</span>
                  </span>
                )}
              </td>
              <td data-label="p95" data-field="p95">
                {l.calls === 0 ? <span class="muted">–</span> : formatMs(l.p95Ms)}
              </td>
              <td data-label="Manifest" data-field="declaration">
                <span class={`map-declaration ${l.declaration}`}>{DECLARATION_TEXT[l.declaration]}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
