// The routing table the control plane streams to every gateway: routes and ready endpoints.
import { z } from "zod";
import { FLAG_KEY_PATTERN } from "./flags/flag-set.js";

/** Token-bucket rate limit of a route: `rps` tokens per second, bursts up to `burst`. */
export const RateLimitSchema = z.strictObject({
  rps: z.number().positive(),
  burst: z.number().int().positive(),
});
export type RateLimit = z.infer<typeof RateLimitSchema>;

/** What a route answers instead of an error while its service's circuit is open (or it has no endpoint). */
export const FallbackSchema = z.strictObject({
  status: z.number().int().min(200).max(599),
  contentType: z.string(),
  body: z.string(),
});
export type Fallback = z.infer<typeof FallbackSchema>;

/** An HTTP token (RFC 9110 §5.6.2): what a header or cookie name may be made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const nameError = (what: string) => (issue: { code?: string }) =>
  issue.code === "invalid_key" ? `not a valid ${what} name (letters, digits and !#$%&'*+.^_\`|~-)` : undefined;

/** Where a request attribute comes from: exactly one of a header or a cookie. */
export const RequestValueSourceSchema = z
  .strictObject({
    /** Request header (case-insensitive), e.g. "x-user-id". */
    header: z.string().regex(TOKEN, "not a valid header name").optional(),
    /** Cookie name, e.g. "uid". */
    cookie: z.string().regex(TOKEN, "not a valid cookie name").optional(),
  })
  .refine((a) => (a.header === undefined) !== (a.cookie === undefined), { message: "give exactly one of header, cookie" });
export type RequestValueSource = z.infer<typeof RequestValueSourceSchema>;

/** Names a flag evaluation context attribute may have: an identifier (JsonLogic `var` reads dots as nesting). */
export const FLAG_ATTRIBUTE_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Where a route's flag variant sends a request: another service, a version (release id or split label), or both. */
export const RouteFlagTargetSchema = z
  .strictObject({
    /** Service the request goes to instead of the route's own. */
    service: z.string().min(1).optional(),
    /** Release id or split label the request is pinned to, as with VERSION_HEADER. */
    version: z.string().min(1).optional(),
  })
  .refine((t) => t.service !== undefined || t.version !== undefined, { message: "give service, version or both" });
export type RouteFlagTarget = z.infer<typeof RouteFlagTargetSchema>;

/**
 * Routing by feature flag: the gateway evaluates flag `key` on a context read from the request
 * (`context`: attribute → header or cookie; `targetingKey` is what `fractional` buckets by) and,
 * when the variant is listed in `variants`, sends the request where it says. Any other outcome
 * (unknown flag, error, disabled, unlisted variant) leaves the route as it is without `flag`.
 */
export const RouteFlagSchema = z.strictObject({
  key: z.string().regex(FLAG_KEY_PATTERN, "not a valid flag key"),
  context: z
    .record(
      z
        .string()
        .regex(FLAG_ATTRIBUTE_PATTERN)
        .refine((k) => k !== "__proto__"),
      RequestValueSourceSchema,
      { error: (issue) => (issue.code === "invalid_key" ? "not a valid attribute name (letters, digits, _ and -, not starting with a digit or -)" : undefined) },
    )
    .default({}),
  variants: z
    .record(z.string().min(1), RouteFlagTargetSchema)
    .refine((v) => Object.keys(v).length > 0, { message: "list at least one variant" }),
});
export type RouteFlag = z.infer<typeof RouteFlagSchema>;

/** One externally reachable route: requests whose host and path match go to `service`. */
/** One JSON Web Key (public keys only travel in the table). */
const JwkSchema = z.looseObject({ kty: z.string(), kid: z.string().optional() });

/**
 * How the gateway checks a request on an external route: `public`, an API key (only the keys'
 * SHA-256 hashes travel), or a JWT verified against the issuer's public keys (inline or fetched).
 */
export const RouteAuthSchema = z.union([
  z.literal("public"),
  z.strictObject({ apiKey: z.strictObject({ header: z.string().min(1), sha256: z.array(z.string().regex(/^[0-9a-f]{64}$/)) }) }),
  z.strictObject({
    jwt: z.strictObject({
      issuer: z.string().min(1),
      audience: z.string().min(1).optional(),
      jwks: z.strictObject({ keys: z.array(JwkSchema) }).optional(),
      jwksUrl: z.string().url().optional(),
      algorithms: z.array(z.string()).optional(),
    }),
  }),
]);
export type RouteAuth = z.infer<typeof RouteAuthSchema>;

/** A service allowed to call another through the mesh listener, optionally only some paths and methods. */
export const CallerRuleSchema = z.strictObject({
  service: z.string().min(1),
  /** Path prefixes; absent: every path. */
  paths: z.array(z.string().startsWith("/")).optional(),
  /** Methods; absent: every method. */
  methods: z.array(z.string().min(1)).optional(),
});
export type CallerRule = z.infer<typeof CallerRuleSchema>;

/** What the gateway needs to verify services' identities (public material only). */
export const IdentityTrustSchema = z.strictObject({
  /** SPIFFE trust domain: the project's name. */
  trustDomain: z.string().min(1),
  /** The CA's public keys, which verify identity tokens (JWT-SVIDs). */
  jwks: z.strictObject({ keys: z.array(JwkSchema) }),
  /** The CA certificate (PEM): with mTLS, client certificates must chain to it. */
  caPem: z.string().min(1),
  /** Whether the mesh listener requires client certificates (TLS) instead of identity tokens. */
  mtls: z.boolean(),
});
export type IdentityTrust = z.infer<typeof IdentityTrustSchema>;

export const RouteSchema = z.strictObject({
  service: z.string(),
  /** Path prefix, always starting with "/"; "/" matches everything. */
  pathPrefix: z.string().startsWith("/"),
  /** Exact host to match (without port); undefined matches any host. */
  host: z.string().optional(),
  /** Remove the prefix before forwarding. */
  stripPrefix: z.boolean().default(false),
  rateLimit: RateLimitSchema.optional(),
  /** Largest request body accepted (413 beyond). */
  maxBodyBytes: z.number().int().positive().optional(),
  fallback: FallbackSchema.optional(),
  /** Send the request to a service or version chosen by a feature flag (the table's `flags` hold its definition). */
  flag: RouteFlagSchema.optional(),
  /** Absent: public. */
  auth: RouteAuthSchema.optional(),
});
export type Route = z.infer<typeof RouteSchema>;

/** A ready replica that may take traffic. */
export const EndpointSchema = z.strictObject({
  replicaId: z.string(),
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: z.string().url(),
  release: z.string(),
});
export type Endpoint = z.infer<typeof EndpointSchema>;

/**
 * How the gateway treats a service's traffic, every default resolved by the control
 * plane (durations in milliseconds). Absent in a table: the gateway uses DEFAULT_SERVICE_POLICY.
 */
export const ServicePolicySchema = z.strictObject({
  loadBalancer: z.enum(["p2c-ewma", "round-robin", "least-request"]),
  /** Deadline of a whole request, retries included; what is left is propagated downstream in DEADLINE_HEADER. */
  timeoutMs: z.number().int().positive(),
  /** Deadline of each attempt. */
  perTryTimeoutMs: z.number().int().positive(),
  retries: z.strictObject({
    /** Retries after the first attempt (idempotent requests, or any request that never reached an upstream). */
    attempts: z.number().int().min(0).max(10),
    /** Retries may add at most this percent of the service's request rate... */
    budgetPercent: z.number().min(0).max(100),
    /** ...plus this many retries per second, so low-traffic services can still retry. */
    minPerSecond: z.number().min(0),
    backoffBaseMs: z.number().int().min(0),
    backoffMaxMs: z.number().int().min(0),
  }),
  outlierEjection: z.strictObject({
    /** 5xx answers or connect failures in a row that eject a replica. */
    consecutiveFailures: z.number().int().min(1),
    /** First ejection time; each further ejection of the same replica doubles it, up to maxEjectionMs. */
    baseEjectionMs: z.number().int().positive(),
    maxEjectionMs: z.number().int().positive(),
    /** Never eject more than this share of a service's replicas. */
    maxEjectedPercent: z.number().min(0).max(100),
  }),
  /** Undefined: no breaker. */
  circuitBreaker: z
    .strictObject({
      /** Open when this share of requests in the window failed... */
      failureRatio: z.number().gt(0).max(1),
      /** ...and the window holds at least this many requests. */
      minRequests: z.number().int().min(1),
      windowMs: z.number().int().positive(),
      /** How long it stays open before letting probes through (half-open). */
      openMs: z.number().int().positive(),
      /** Successful probes in a row that close it again. */
      halfOpenProbes: z.number().int().min(1),
    })
    .optional(),
  /** Undefined: no limit. */
  bulkhead: z
    .strictObject({
      maxConcurrent: z.number().int().min(1),
      /** Requests that may wait for a slot; more are refused (503) at once. */
      maxQueue: z.number().int().min(0),
      queueTimeoutMs: z.number().int().positive(),
    })
    .optional(),
});
export type ServicePolicy = z.infer<typeof ServicePolicySchema>;

/** The policy of a service that declares no `resilience:` (Linkerd/Envoy-like defaults). */
export const DEFAULT_SERVICE_POLICY: ServicePolicy = {
  loadBalancer: "p2c-ewma",
  timeoutMs: 30_000,
  perTryTimeoutMs: 30_000,
  retries: { attempts: 2, budgetPercent: 20, minPerSecond: 10, backoffBaseMs: 25, backoffMaxMs: 250 },
  outlierEjection: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectedPercent: 50 },
  circuitBreaker: { failureRatio: 0.5, minRequests: 20, windowMs: 10_000, openMs: 5_000, halfOpenProbes: 3 },
  bulkhead: undefined,
};

/** How a header or cookie value is compared: exactly one of `exact`, `prefix`, `regex`. */
export const StringMatchSchema = z
  .strictObject({
    /** The whole value equals this. */
    exact: z.string().optional(),
    /** The value starts with this. */
    prefix: z.string().optional(),
    /** The whole value matches this JavaScript regular expression (no flags; anchored at both ends, as in Envoy and Istio). */
    regex: z.string().optional(),
  })
  .refine((m) => (m.exact === undefined ? 0 : 1) + (m.prefix === undefined ? 0 : 1) + (m.regex === undefined ? 0 : 1) === 1, {
    message: "give exactly one of exact, prefix, regex",
  });
export type StringMatch = z.infer<typeof StringMatchSchema>;

/**
 * A rule of an A/B split: a request that carries every listed header and cookie, each
 * matching, goes to `release` (while it has an available endpoint), whatever the weights.
 */
export const MatchRuleSchema = z
  .strictObject({
    /** Release id the matching requests go to; it may have weight 0 or be absent from `weights`. */
    release: z.string().min(1),
    /** Conditions on request headers; names are matched case-insensitively. */
    headers: z.record(z.string().regex(TOKEN), StringMatchSchema, { error: nameError("header") }).optional(),
    /** Conditions on cookies (names are case-sensitive). */
    cookies: z.record(z.string().regex(TOKEN), StringMatchSchema, { error: nameError("cookie") }).optional(),
  })
  .refine((r) => Object.keys(r.headers ?? {}).length + Object.keys(r.cookies ?? {}).length > 0, {
    message: "a match rule needs at least one header or cookie condition",
  });
export type MatchRule = z.infer<typeof MatchRuleSchema>;

/** Where the value that keeps one user on one release comes from: exactly one of a header or a cookie. */
export const AffinitySchema = RequestValueSourceSchema;
export type Affinity = RequestValueSource;

const trafficSplitShape = {
  weights: z
    .array(
      z.strictObject({
        release: z.string(),
        /** Share of requests, 0-100; the weights of a split add up to 100. */
        weight: z.number().min(0).max(100),
        /** A name a request can ask for with VERSION_HEADER (e.g. "stable", "canary"). */
        label: z.string().optional(),
      }),
    )
    .min(1),
  /** Pin each client to the release it first got, with a cookie (VERSION_COOKIE_PREFIX + service). */
  sticky: z.boolean(),
  /**
   * A/B routes, tried in order before the sticky cookie and the weights: the first rule a
   * request satisfies sends it to its release (internal testers, a user segment, `canary=always`).
   */
  match: z.array(MatchRuleSchema).optional(),
  /**
   * Choose by weight from a hash of this header or cookie instead of at random, so one user
   * stays on one release across requests and gateways. Without the value: at random.
   */
  affinity: AffinitySchema.optional(),
};

/**
 * Weighted traffic split across a service's releases (canary, blue-green), with optional
 * A/B routes and user affinity. Without a split, every ready endpoint of every release takes
 * traffic. Rejects a `regex` that does not compile, naming the rule.
 */
export const TrafficSplitSchema = z.strictObject(trafficSplitShape).superRefine((split, ctx) => {
  split.match?.forEach((rule, i) => {
    for (const kind of ["headers", "cookies"] as const) {
      for (const [name, m] of Object.entries(rule[kind] ?? {})) {
        if (m.regex === undefined) continue;
        try {
          new RegExp(m.regex);
        } catch (err) {
          ctx.addIssue({
            code: "custom",
            path: ["match", i, kind, name, "regex"],
            message: `match rule ${i}: ${kind === "headers" ? "header" : "cookie"} ${JSON.stringify(name)}: ${(err as Error).message}`,
          });
        }
      }
    }
  });
});
export type TrafficSplit = z.infer<typeof TrafficSplitSchema>;

/**
 * The split as a routing table carries it: the same shape, but a pattern this gateway cannot
 * compile (a table from a control plane on a newer engine) loses only its rule, with a warning
 * from the gateway, rather than the whole table.
 */
const RoutedTrafficSplitSchema = z.strictObject(trafficSplitShape);

/**
 * A fault the gateway injects into a share of a service's requests (`keelson chaos latency|error`):
 * a delay before the request goes upstream, an error answered instead of going upstream, or
 * both. Injected errors count as the service's failures (live stats, metrics, circuit breaker),
 * so canary analysis and breakers react to them as to real ones. Each fault carries its end
 * time: the gateway stops injecting it then, even if the control plane is gone.
 */
export const FaultSchema = z
  .strictObject({
    /** The chaos experiment that asked for it. */
    id: z.string().min(1),
    /** Release id or split label; absent: every version. */
    version: z.string().min(1).optional(),
    /** Share of requests affected, 0-1. */
    share: z.number().gt(0).max(1),
    /** Delay before the request is sent upstream. */
    delayMs: z.number().int().min(1).max(600_000).optional(),
    /** Status answered instead of sending the request upstream (KEELSON_ERR_FAULT_INJECTED). */
    abortStatus: z.number().int().min(400).max(599).optional(),
    /** ISO time after which the fault no longer applies. */
    until: z.string().min(1),
  })
  .refine((f) => f.delayMs !== undefined || f.abortStatus !== undefined, { message: "give delayMs, abortStatus or both" });
export type Fault = z.infer<typeof FaultSchema>;

/**
 * Scale from zero: while the service has no endpoint, the gateway holds a request up to
 * `holdTimeoutMs`, asks the control plane once to start a replica (POST
 * /v1/services/{name}/activate), and sends the request on when an endpoint appears.
 * With `threshold`, it asks only once that many requests are held at once, or have arrived
 * within the last `windowMs` (absent: see `activationWindowMs`), in that gateway process; every
 * gateway also reports those arrivals in its `/stats` (`held`), so the autoscaler can add up
 * arrivals split over processes and gateways (absent threshold: 1).
 */
export const ActivationSchema = z.strictObject({
  holdTimeoutMs: z.number().int().positive(),
  threshold: z.number().int().min(1).optional(),
  windowMs: z.number().int().positive().optional(),
});
export type Activation = z.infer<typeof ActivationSchema>;

/** The autoscaler's default `window`; the shortest activation window a gateway assumes when the table gives none. */
export const DEFAULT_ACTIVATION_WINDOW_MS = 10_000;

/**
 * How far back a gateway counts a service's held arrivals: `windowMs` when the table gives it,
 * else max(10 s, threshold × holdTimeoutMs). A client that sends one request at a time and
 * sends it again after each 503 (one per hold timeout, plus its own pause) must see `threshold`
 * of them fall within the window: the first is (threshold - 1) hold timeouts old when the last
 * arrives, so the window spans one more as slack.
 *
 * @example
 * activationWindowMs({ holdTimeoutMs: 30_000, threshold: 3 }); // 90_000
 */
export function activationWindowMs(activation: { holdTimeoutMs: number; threshold?: number | undefined; windowMs?: number | undefined }): number {
  return activation.windowMs ?? Math.max(DEFAULT_ACTIVATION_WINDOW_MS, (activation.threshold ?? 1) * activation.holdTimeoutMs);
}

export const RoutingServiceSchema = z.strictObject({
  name: z.string(),
  endpoints: z.array(EndpointSchema),
  policy: ServicePolicySchema.optional(),
  split: RoutedTrafficSplitSchema.optional(),
  /** Services that may call this one through the mesh listener (zero trust: absent or empty, none may). */
  callers: z.array(CallerRuleSchema).optional(),
  /** Faults injected by chaos experiments. */
  faults: z.array(FaultSchema).optional(),
  /** Present when the service may scale to zero. */
  activation: ActivationSchema.optional(),
});
export type RoutingService = z.infer<typeof RoutingServiceSchema>;

/**
 * The whole table. `version` increases with every change, so a gateway can tell a
 * newer table from an older one (and ignore a stale one after reconnecting).
 */
export const RoutingTableSchema = z.strictObject({
  version: z.number().int().nonnegative(),
  project: z.string(),
  generatedAt: z.string(),
  routes: z.array(RouteSchema),
  services: z.array(RoutingServiceSchema),
  /** How the mesh listener verifies callers; absent: the mesh listener refuses every call. */
  identity: IdentityTrustSchema.optional(),
  /** The flags the routes' `flag` settings name (with their prerequisites), at a revision of the flag set. */
  flags: z
    .strictObject({
      /** Revision of the flag set these definitions were taken from. */
      revision: z.number().int().nonnegative(),
      /**
       * A flag set (FlagSetSchema), each definition left unchecked here: the gateway checks and
       * compiles it, so one flag it cannot use costs only the routes that name it, not the table.
       */
      set: z.strictObject({
        flags: z.record(z.string(), z.unknown()),
        $evaluators: z.record(z.string(), z.unknown()).optional(),
        metadata: z.record(z.string(), z.unknown()).optional(),
      }),
    })
    .optional(),
});
export type RoutingTable = z.infer<typeof RoutingTableSchema>;

/** Header a caller sets to reach a service through the gateway without a public route. */
export const TARGET_SERVICE_HEADER = "x-keelson-service";
/** Header naming the calling service; the gateway overwrites it with the verified identity (mTLS certificate or IDENTITY_HEADER). */
export const CALLER_SERVICE_HEADER = "x-keelson-caller";
/** The calling service's identity token (JWT-SVID) on the gateway's mesh listener when it runs without mTLS. */
export const IDENTITY_HEADER = "x-keelson-identity";
/** Request id header, set by the gateway when absent and propagated by the SDK. */
export const REQUEST_ID_HEADER = "x-request-id";
/** Header that pins a request to a release by label or release id (`x-keelson-version: canary`). */
export const VERSION_HEADER = "x-keelson-version";
/** Cookie name prefix of sticky splits: `keelson-v-<service>=<release>`. */
export const VERSION_COOKIE_PREFIX = "keelson-v-";
/**
 * Time a request has left, in milliseconds, propagated to every hop (relative, like
 * grpc-timeout, so the hosts' clocks need not agree). A hop never waits longer than this.
 */
export const DEADLINE_HEADER = "x-keelson-timeout-ms";
/** Response header set when the gateway answered with a route's fallback: `circuit-open` or `no-endpoint`. */
export const FALLBACK_HEADER = "x-keelson-fallback";
