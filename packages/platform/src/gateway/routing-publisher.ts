// Keeps the routing table the gateways follow: rebuilt from the stored services, the driver's
// ready replicas and the flags routes name after every change, versioned (the version survives restarts).
// With several control-plane instances on one store, only the leader builds tables: it stores each
// one, and the other instances serve the stored table to the gateways that follow them (ADR 0020).
import { DEFAULT_ACTIVATION_WINDOW_MS, KeelsonError } from "@keelson/protocol";
import type { Activation, CallerRule, Fault, FlagSet, IdentityTrust, RouteAuth, RoutingTable } from "@keelson/protocol";
import type { RuntimeDriver } from "../runtime/index.js";
import type { Store } from "../store/index.js";
import type { RouteAuthOut, ServiceSpec } from "../manifest/index.js";
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
/** The last table built, as JSON: what instances that do not lead serve. */
export const ROUTING_TABLE_SETTING = "routing.table";

/** How long a gateway holds a request for a service scaled to zero when `scaleToZero.holdTimeout` is not set. */
export const DEFAULT_HOLD_TIMEOUT_MS = 30_000;

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
  /** What the mesh listener trusts (the CA's public keys); without it the mesh listener refuses every call. */
  identity?: () => IdentityTrust;
  /**
   * A route's auth as the gateway checks it: API keys read from the vault and hashed, a JWKS file
   * read. Without it, a route that asks for an API key or a JWT admits no one (fail closed).
   */
  routeAuth?: (service: string, auth: Exclude<RouteAuthOut, "public">) => Promise<RouteAuth>;
  /** Faults of running chaos experiments, by service (call `refresh()` when they change). */
  faults?: (service: string) => Fault[];
  /**
   * No table is built before this settles: a restarted control plane passes the end of its
   * re-adoption of running replicas. A table built earlier would name no replica, and every
   * gateway that took it would refuse every request until the next one.
   */
  ready?: Promise<unknown>;
  /**
   * Whether this instance follows another that leads (default: never). A follower builds nothing:
   * `refresh()` reads the table the leader stored, and tells subscribers when it is newer.
   */
  following?: () => boolean;
  /** Called after a table is built and stored (the leader tells the other instances). */
  announce?: (table: RoutingTable) => Promise<void>;
}): RoutingPublisher {
  const { store, driver, project } = options;
  const faults = options.faults ?? (() => []);
  const listeners = new Set<(t: RoutingTable) => void>();
  let table: RoutingTable | undefined;
  let fingerprint = "";
  let chain: Promise<RoutingTable> | undefined;

  /** A follower's refresh: the leader's last stored table, when newer than the one served. */
  async function reload(): Promise<RoutingTable> {
    const text = await store.getSetting(ROUTING_TABLE_SETTING);
    const stored = text === undefined ? undefined : (JSON.parse(text) as RoutingTable);
    if (stored === undefined) {
      if (table !== undefined) return table;
      throw new KeelsonError("KEELSON_ERR_NO_LEADER", "no routing table yet: the leading control plane has not published one");
    }
    if (table === undefined || stored.version > table.version) {
      table = stored;
      fingerprint = "";
      for (const l of listeners) l(table);
    }
    return table;
  }

  async function rebuild(): Promise<RoutingTable> {
    if (options.following?.() === true) return reload();
    if (options.ready !== undefined) await options.ready.catch(() => undefined);
    const services = await store.listServices(project);
    const endpoints = driver
      .list()
      .filter((r) => r.spec.project === project && r.state === "ready" && !(options.exclude?.(r.spec.id) ?? false))
      // The scheme comes from how the replica was started, not from the service's current spec:
      // a replica started before `tls` was turned on still serves plain HTTP until it is replaced.
      .map((r) => ({ service: r.spec.service, replicaId: r.spec.id, url: `${r.spec.tls === undefined ? "http" : "https"}://127.0.0.1:${r.spec.port}`, release: r.spec.release }));
    const callers = callerRules(services.map((s) => ({ name: s.name, spec: s.spec as unknown as ServiceSpec })));
    const routed = await Promise.all(
      services.map(async (s) => {
        const spec = s.spec as unknown as ServiceSpec;
        const split = await readTrafficSplit(store, project, s.name);
        return {
          name: s.name,
          routes: await Promise.all(
            (spec.routes ?? []).map(async (r) => ({
              path: r.path,
              ...(r.host === undefined ? {} : { host: r.host }),
              stripPrefix: r.stripPrefix,
              ...routeExtras(r),
              ...(r.auth === undefined || r.auth === "public" ? {} : { auth: await resolveAuth(s.name, r.auth) }),
            })),
          ),
          policy: servicePolicy(spec.resilience),
          ...(split ? { split } : {}),
          ...(callers.has(s.name) ? { callers: callers.get(s.name) } : {}),
          ...(faults(s.name).length > 0 ? { faults: faults(s.name) } : {}),
          // min: 0 means the service may be scaled to zero: gateways hold requests while it wakes.
          ...(spec.autoscale?.min === 0 ? { activation: activationOf(spec.autoscale.scaleToZero, spec.autoscale.window) } : {}),
        };
      }),
    );
    const flagged = options.flags !== undefined && routed.some((s) => s.routes.some((r) => r.flag !== undefined));
    const flags = flagged ? await options.flags!() : undefined;
    const identity = options.identity?.();
    const candidate = buildRoutingTable({
      project,
      version: 0,
      services: routed,
      endpoints,
      ...(flags === undefined ? {} : { flags: { revision: flags.revision, set: flags.set } }),
      ...(identity === undefined ? {} : { identity }),
    });
    // The flags' revision is left out: it moves with flags no route names.
    const fp = JSON.stringify({ routes: candidate.routes, services: candidate.services, flags: candidate.flags?.set, identity: candidate.identity });
    if (table && fp === fingerprint) return table;
    const version = Number((await store.getSetting(VERSION_KEY)) ?? "0") + 1;
    await store.setSetting(VERSION_KEY, String(version));
    table = { ...candidate, version };
    fingerprint = fp;
    if (options.following !== undefined) await store.setSetting(ROUTING_TABLE_SETTING, JSON.stringify(table));
    for (const l of listeners) l(table);
    if (options.announce !== undefined) await options.announce(table).catch(() => undefined);
    return table;
  }

  async function resolveAuth(service: string, auth: Exclude<RouteAuthOut, "public">): Promise<RouteAuth> {
    if (options.routeAuth !== undefined) return options.routeAuth(service, auth);
    // Nothing can check the credential: admit no one rather than everyone.
    return "apiKey" in auth ? { apiKey: { header: auth.apiKey.header, sha256: [] } } : { jwt: { issuer: auth.jwt.issuer, jwks: { keys: [] } } };
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

/**
 * The routing table's `activation` of a service that may scale to zero. With a threshold above
 * 1 it carries the window over which gateways count held arrivals: the autoscale `window`, or
 * longer when `threshold` hold timeouts do not fit in it, so that a client sending one request
 * at a time and again after each 503 still adds up to the threshold. Both are left out at the
 * default threshold (1), so such tables stay what gateways before them accept.
 */
export function activationOf(scaleToZero: { holdTimeout?: number | undefined; activation?: number | undefined } | undefined, autoscaleWindowMs?: number): Activation {
  const threshold = scaleToZero?.activation ?? 1;
  const holdTimeoutMs = scaleToZero?.holdTimeout ?? DEFAULT_HOLD_TIMEOUT_MS;
  if (threshold <= 1) return { holdTimeoutMs };
  const windowMs = Math.max(autoscaleWindowMs ?? DEFAULT_ACTIVATION_WINDOW_MS, threshold * holdTimeoutMs);
  return { holdTimeoutMs, threshold, windowMs };
}

/** Each service's allowed callers, from every service's `calls` (the manifest says who calls whom; the table, who may be called by whom). */
export function callerRules(services: ReadonlyArray<{ name: string; spec: ServiceSpec }>): Map<string, CallerRule[]> {
  const out = new Map<string, CallerRule[]>();
  for (const { name, spec } of services) {
    for (const call of spec.calls ?? []) {
      // Specs stored before calls took mappings hold plain names.
      const c: { service: string; paths?: string[]; methods?: readonly string[] } = typeof call === "string" ? { service: call as string } : call;
      const list = out.get(c.service) ?? [];
      list.push({ service: name, ...(c.paths ? { paths: c.paths } : {}), ...(c.methods ? { methods: [...c.methods] } : {}) });
      out.set(c.service, list);
    }
  }
  for (const list of out.values()) list.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  return out;
}
