// Keeps the routing table the gateways follow: rebuilt from the stored services, the driver's
// ready replicas and the flags routes name after every change, versioned (the version survives restarts).
import type { FlagSet, RoutingTable } from "@keelson/protocol";
import type { RuntimeDriver } from "../runtime/index.js";
import type { Store } from "../store/index.js";
import type { ServiceSpec } from "../manifest/index.js";
import { buildRoutingTable } from "./routing-table.js";
import { routeExtras, servicePolicy } from "./service-policy.js";
import { readTrafficSplit } from "./traffic-splits.js";

export interface RoutingPublisher {
  /** The current table (built on first use). */
  current(): Promise<RoutingTable>;
  /** Rebuilds; when anything changed, bumps the version and tells subscribers. */
  refresh(): Promise<RoutingTable>;
  subscribe(listener: (table: RoutingTable) => void): () => void;
}

const VERSION_KEY = "routing.version";

export function createRoutingPublisher(options: {
  store: Store;
  driver: RuntimeDriver;
  project: string;
  /** Replicas left out although ready (being drained before they stop). */
  exclude?: (replicaId: string) => boolean;
  /**
   * The project's flag set, read when a route names a flag (the flag service's snapshot).
   * Call `refresh()` when it changes; a change to flags no route names makes no new table.
   */
  flags?: () => Promise<{ revision: number; set: FlagSet }>;
}): RoutingPublisher {
  const { store, driver, project } = options;
  const listeners = new Set<(t: RoutingTable) => void>();
  let table: RoutingTable | undefined;
  let fingerprint = "";
  let chain: Promise<RoutingTable> | undefined;

  async function rebuild(): Promise<RoutingTable> {
    const services = await store.listServices(project);
    const endpoints = driver
      .list()
      .filter((r) => r.spec.project === project && r.state === "ready" && !(options.exclude?.(r.spec.id) ?? false))
      .map((r) => ({ service: r.spec.service, replicaId: r.spec.id, url: `http://127.0.0.1:${r.spec.port}`, release: r.spec.release }));
    const routed = await Promise.all(
      services.map(async (s) => {
        const spec = s.spec as unknown as ServiceSpec;
        const split = await readTrafficSplit(store, project, s.name);
        return {
          name: s.name,
          routes: (spec.routes ?? []).map((r) => ({
            path: r.path,
            ...(r.host === undefined ? {} : { host: r.host }),
            stripPrefix: r.stripPrefix,
            ...routeExtras(r),
          })),
          policy: servicePolicy(spec.resilience),
          ...(split ? { split } : {}),
        };
      }),
    );
    const flagged = options.flags !== undefined && routed.some((s) => s.routes.some((r) => r.flag !== undefined));
    const flags = flagged ? await options.flags!() : undefined;
    const candidate = buildRoutingTable({ project, version: 0, services: routed, endpoints, ...(flags === undefined ? {} : { flags: { revision: flags.revision, set: flags.set } }) });
    // The flags' revision is left out: it moves with flags no route names.
    const fp = JSON.stringify({ routes: candidate.routes, services: candidate.services, flags: candidate.flags?.set });
    if (table && fp === fingerprint) return table;
    const version = Number((await store.getSetting(VERSION_KEY)) ?? "0") + 1;
    await store.setSetting(VERSION_KEY, String(version));
    table = { ...candidate, version };
    fingerprint = fp;
    for (const l of listeners) l(table);
    return table;
  }

  function refresh(): Promise<RoutingTable> {
    // Serialize rebuilds so versions are assigned in order.
    const next = (chain ?? Promise.resolve(undefined as unknown as RoutingTable)).then(rebuild, rebuild);
    chain = next.catch(() => table as RoutingTable);
    return next;
  }

  return {
    async current() {
      return table ?? refresh();
    },
    refresh,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
