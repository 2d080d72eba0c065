// The routing table: built by the control plane from services, routes and ready endpoints
// (`buildRoutingTable`), and compiled by the gateway into the matcher it runs on every request.
import type { Activation, CallerRule, Fallback, Fault, FlagSet, IdentityTrust, RateLimit, RouteAuth, RouteFlag, RoutingTable, ServicePolicy, TrafficSplit } from "@keelson/protocol";
import { KeelsonError, RoutingTableSchema } from "@keelson/protocol";

/** One route of a service as the control plane declares it. */
export interface RouteInput {
  path: string;
  host?: string;
  stripPrefix: boolean;
  /** Token bucket per gateway process (429 beyond it). */
  rateLimit?: RateLimit;
  /** Largest request body (413 beyond it); the gateway's default when absent. */
  maxBodyBytes?: number;
  /** Answer used while the service's circuit is open or it has no ready endpoint. */
  fallback?: Fallback;
  /** Service or version chosen per request by a feature flag. */
  flag?: RouteFlag;
  auth?: RouteAuth;
}

/** What the control plane knows when it publishes a table. */
export interface RoutingTableInput {
  project: string;
  version: number;
  services: Array<{
    name: string;
    routes: RouteInput[];
    /** Resolved resilience policy; absent: the gateway's default (DEFAULT_SERVICE_POLICY). */
    policy?: ServicePolicy;
    /** Weighted split across releases; absent: every ready endpoint takes traffic. */
    split?: TrafficSplit;
    /** Services allowed to call this one on the mesh listener. */
    callers?: CallerRule[];
    /** Faults injected by chaos experiments. */
    faults?: Fault[];
    /** Present when the service may scale to zero: the gateway holds requests while a replica starts. */
    activation?: Activation;
  }>;
  /** Ready replicas. An endpoint of a service missing from `services` still gets a service entry. */
  endpoints: Array<{ service: string; replicaId: string; url: string; release: string }>;
  /** ISO time stamp of the table; defaults to now. Pass it to get byte-identical output. */
  generatedAt?: string;
  /**
   * The project's flag set; the table carries the flags its routes name (and their
   * prerequisites), so gateways evaluate them locally. Without it, or without a route naming a
   * flag, the table has no `flags`.
   */
  flags?: { revision: number; set: FlagSet };
  /** How the mesh listener verifies callers. */
  identity?: IdentityTrust;
}

/**
 * Builds the table a gateway serves. Output is sorted (routes in match order, services by
 * name, endpoints by replica id), so the same input always gives the same table.
 * Throws `KEELSON_ERR_INVALID_INPUT` for a malformed path, host or URL and for two services
 * claiming the same host and path.
 *
 * @example
 * buildRoutingTable({ project: "shop", version: 3,
 *   services: [{ name: "web", routes: [{ path: "/", stripPrefix: false }] }],
 *   endpoints: [{ service: "web", replicaId: "web-1", url: "http://127.0.0.1:41234", release: "r1" }] });
 */
export function buildRoutingTable(input: RoutingTableInput): RoutingTable {
  const routes: RoutingTable["routes"] = [];
  const claimed = new Map<string, { service: string; stripPrefix: boolean }>();
  for (const service of input.services) {
    for (const r of service.routes) {
      const pathPrefix = normalizePrefix(r.path, `services.${service.name}.routes.path`);
      const host = r.host === undefined ? undefined : normalizeRouteHost(r.host, `services.${service.name}.routes.host`);
      const key = `${host ?? "*"} ${pathPrefix}`;
      const owner = claimed.get(key);
      if (owner !== undefined) {
        // The same route listed twice for one service is harmless; anything else is ambiguous.
        if (owner.service === service.name && owner.stripPrefix === r.stripPrefix) continue;
        throw new KeelsonError(
          "KEELSON_ERR_INVALID_INPUT",
          `route ${host ?? "(any host)"} ${pathPrefix} is claimed by both "${owner.service}" and "${service.name}"`,
          { details: { host, pathPrefix, services: [owner.service, service.name] } },
        );
      }
      claimed.set(key, { service: service.name, stripPrefix: r.stripPrefix });
      routes.push({
        service: service.name,
        pathPrefix,
        ...(host === undefined ? {} : { host }),
        stripPrefix: r.stripPrefix,
        ...(r.rateLimit === undefined ? {} : { rateLimit: r.rateLimit }),
        ...(r.maxBodyBytes === undefined ? {} : { maxBodyBytes: r.maxBodyBytes }),
        ...(r.fallback === undefined ? {} : { fallback: r.fallback }),
        ...(r.flag === undefined ? {} : { flag: r.flag }),
        ...(r.auth === undefined || r.auth === "public" ? {} : { auth: r.auth }),
      });
    }
  }
  routes.sort(compareRoutes);

  const byService = new Map<string, RoutingTable["services"][number]["endpoints"]>();
  const extras = new Map<string, { policy?: ServicePolicy; split?: TrafficSplit; callers?: CallerRule[]; faults?: Fault[]; activation?: Activation }>();
  for (const s of input.services) {
    byService.set(s.name, []);
    extras.set(s.name, {
      ...(s.policy === undefined ? {} : { policy: s.policy }),
      ...(s.split === undefined ? {} : { split: s.split }),
      ...(s.callers === undefined || s.callers.length === 0 ? {} : { callers: s.callers }),
      ...(s.faults === undefined || s.faults.length === 0 ? {} : { faults: s.faults }),
      ...(s.activation === undefined ? {} : { activation: s.activation }),
    });
  }
  for (const e of input.endpoints) {
    let url: URL;
    try {
      url = new URL(e.url);
    } catch {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `endpoint ${e.replicaId} of "${e.service}": not a URL: ${JSON.stringify(e.url)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `endpoint ${e.replicaId} of "${e.service}": expected an http(s) URL, got ${JSON.stringify(e.url)}`);
    }
    let list = byService.get(e.service);
    if (list === undefined) {
      list = [];
      byService.set(e.service, list);
    }
    if (list.some((x) => x.replicaId === e.replicaId)) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `endpoint ${e.replicaId} of "${e.service}" is listed twice`);
    }
    list.push({ replicaId: e.replicaId, url: e.url, release: e.release });
  }
  const services = [...byService.entries()]
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([name, endpoints]) => ({
      name,
      endpoints: endpoints.sort((a, b) => compareStrings(a.replicaId, b.replicaId) || compareStrings(a.url, b.url)),
      ...extras.get(name),
    }));

  const flags = input.flags === undefined ? undefined : routedFlags(routes, input.flags);
  const table = {
    version: input.version,
    project: input.project,
    generatedAt: input.generatedAt ?? new Date().toISOString(),
    routes,
    services,
    ...(flags === undefined ? {} : { flags }),
    ...(input.identity === undefined ? {} : { identity: input.identity }),
  };
  const parsed = RoutingTableSchema.safeParse(table);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `routing table: ${first ? `${first.path.join(".")}: ${first.message}` : "invalid"}`, {
      details: parsed.error.issues,
    });
  }
  return parsed.data;
}

/**
 * The part of a flag set the routes need: the flags they name and, transitively, those flags'
 * prerequisites, plus the shared evaluators and set metadata. Undefined when no route names a flag.
 */
function routedFlags(routes: RoutingTable["routes"], flags: { revision: number; set: FlagSet }): RoutingTable["flags"] {
  const pending = routes.flatMap((r) => (r.flag === undefined ? [] : [r.flag.key]));
  if (pending.length === 0) return undefined;
  const picked: Record<string, unknown> = {};
  for (let key = pending.pop(); key !== undefined; key = pending.pop()) {
    if (Object.hasOwn(picked, key) || !Object.hasOwn(flags.set.flags, key)) continue;
    const def = flags.set.flags[key]!;
    picked[key] = def;
    for (const p of def.prerequisites ?? []) pending.push(p.flag);
  }
  // Sorted, so the same flags always give the same table (and fingerprint).
  const sorted = Object.fromEntries(Object.keys(picked).sort(compareStrings).map((k) => [k, picked[k]]));
  return {
    revision: flags.revision,
    set: {
      flags: sorted,
      ...(flags.set.$evaluators === undefined ? {} : { $evaluators: flags.set.$evaluators }),
      ...(flags.set.metadata === undefined ? {} : { metadata: flags.set.metadata }),
    },
  };
}

/** A route ready for matching: host lower-cased without port, prefix without trailing "/". */
export interface CompiledRoute {
  readonly service: string;
  readonly host: string | undefined;
  readonly prefix: string;
  readonly stripPrefix: boolean;
  /** Position of the route in the table's `routes`, to find per-route state in O(1). */
  readonly index: number;
}

/** The per-request matcher the gateway builds once per table. */
export interface RouteMatcher {
  /**
   * The route for a request: exact host (port ignored, case-insensitive) before any-host,
   * then the longest path prefix on a segment boundary. `target` is the request target as
   * received (path plus query); it is never copied.
   */
  match(hostHeader: string | undefined, target: string): CompiledRoute | undefined;
}

/** Compiles a table's routes into a matcher; all sorting and normalising happens here, once. */
export function compileRoutes(table: Pick<RoutingTable, "routes">): RouteMatcher {
  const byHost = new Map<string, CompiledRoute[]>();
  const anyHost: CompiledRoute[] = [];
  for (let index = 0; index < table.routes.length; index++) {
    const r = table.routes[index]!;
    const compiled: CompiledRoute = {
      service: r.service,
      host: r.host === undefined ? undefined : normalizeHost(r.host),
      prefix: trimTrailingSlash(r.pathPrefix),
      stripPrefix: r.stripPrefix,
      index,
    };
    if (compiled.host === undefined) {
      anyHost.push(compiled);
    } else {
      let list = byHost.get(compiled.host);
      if (list === undefined) byHost.set(compiled.host, (list = []));
      list.push(compiled);
    }
  }
  // Longest prefix first, so the first hit in a scan is the most specific. A stable sort keeps
  // the table's own order (the first listed wins) between equal prefixes.
  const longestFirst = (a: CompiledRoute, b: CompiledRoute) => b.prefix.length - a.prefix.length;
  anyHost.sort(longestFirst);
  for (const list of byHost.values()) list.sort(longestFirst);

  // Route counts are small (tens), so a linear scan of a pre-sorted array beats a trie here
  // and allocates nothing per request.
  const hasHostRoutes = byHost.size > 0;
  return {
    match(hostHeader, target) {
      if (hasHostRoutes && hostHeader !== undefined) {
        const list = byHost.get(normalizeHost(hostHeader));
        if (list !== undefined) {
          const hit = scan(list, target);
          if (hit !== undefined) return hit;
        }
      }
      return scan(anyHost, target);
    },
  };
}

function scan(list: readonly CompiledRoute[], target: string): CompiledRoute | undefined {
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    if (prefixMatches(r.prefix, target)) return r;
  }
  return undefined;
}

/** `/api` matches `/api`, `/api/x` and `/api?q`, not `/apix`; `/` matches everything. */
function prefixMatches(prefix: string, target: string): boolean {
  if (prefix.length === 1) return true;
  if (!target.startsWith(prefix)) return false;
  if (target.length === prefix.length) return true;
  const c = target.charCodeAt(prefix.length);
  return c === 47 /* / */ || c === 63 /* ? */;
}

/**
 * The path to forward for a request that matched `route`: the prefix removed when the route
 * says so (`/api/users?x=1` → `/users?x=1`, `/api` → `/`), else the target unchanged.
 */
export function forwardPath(route: CompiledRoute, target: string): string {
  if (!route.stripPrefix || route.prefix.length === 1) return target;
  const rest = target.slice(route.prefix.length);
  if (rest.length === 0) return "/";
  return rest.charCodeAt(0) === 63 /* ? */ ? `/${rest}` : rest;
}

/** A Host header or route host as the matcher compares it: lower case, no port, no trailing dot. */
export function normalizeHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf("]");
    if (close !== -1) end = close + 1;
  } else {
    const colon = host.lastIndexOf(":");
    if (colon !== -1) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--;
  const bare = end === host.length ? host : host.slice(0, end);
  return bare.toLowerCase();
}

function normalizeRouteHost(host: string, where: string): string {
  const h = normalizeHost(host.trim());
  if (h.length === 0 || /[\s/?#@]/.test(h)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${where}: expected a host name, got ${JSON.stringify(host)}`);
  }
  return h;
}

function normalizePrefix(path: string, where: string): string {
  if (!path.startsWith("/") || /[?#\s]/.test(path)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${where}: expected a path starting with "/" (no query or fragment), got ${JSON.stringify(path)}`);
  }
  return trimTrailingSlash(path);
}

function trimTrailingSlash(path: string): string {
  let end = path.length;
  while (end > 1 && path.charCodeAt(end - 1) === 47) end--;
  return end === path.length ? path : path.slice(0, end);
}

/** Match order: host routes before any-host, then longer prefixes, then by text. */
function compareRoutes(a: RoutingTable["routes"][number], b: RoutingTable["routes"][number]): number {
  if (a.host !== b.host) {
    if (a.host === undefined) return 1;
    if (b.host === undefined) return -1;
    return compareStrings(a.host, b.host);
  }
  return b.pathPrefix.length - a.pathPrefix.length || compareStrings(a.pathPrefix, b.pathPrefix) || compareStrings(a.service, b.service);
}

// Locale-independent, so the order is the same on every machine.
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
