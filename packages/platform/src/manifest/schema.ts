// The keelson.yaml schema: one zod schema that validates, defaults and documents the
// manifest; `keelson schema` prints the JSON Schema generated from it for editors.
import { z } from "zod";

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const name = (what: string) =>
  z.string().regex(NAME, { message: `${what} must be lowercase letters, digits and "-", starting with a letter (max 63)` });

/**
 * A duration: a number of milliseconds or a string such as "500ms", "10s", "2m", "1h", "30d".
 * Parsed to milliseconds.
 */
export const Duration = z
  .union([z.number().int().nonnegative(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, { message: 'duration like "500ms", "10s", "2m", "1h" or "30d"' })])
  .transform((v) => (typeof v === "number" ? v : parseDuration(v)));

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return Math.round(n * unit);
}

const Port = z.number().int().min(1).max(65535);
const HttpPath = z.string().startsWith("/", { message: 'path must start with "/"' });

const Probe = z.strictObject({
  path: HttpPath,
  /** Time between checks. */
  interval: Duration.default(500),
  /** Per-check timeout. */
  timeout: Duration.default(1000),
  /** Consecutive failures before the replica is considered unready (readiness) or restarted (liveness). */
  failureThreshold: z.number().int().min(1).max(100).default(3),
});
/** A probe may be written as just its path. */
const ProbeOrPath = z.union([HttpPath.transform((path) => Probe.parse({ path })), Probe]);

const RouteSpec = z.strictObject({
  /** Path prefix, "/" for everything. */
  path: HttpPath.default("/"),
  host: z.string().min(1).optional(),
  /** Remove the prefix before forwarding to the service. */
  stripPrefix: z.boolean().default(false),
});
const RouteOrPath = z.union([HttpPath.transform((path) => RouteSpec.parse({ path })), RouteSpec]);

const EnvValue = z.union([z.string(), z.number(), z.boolean()]).transform(String);

/** Deploy strategy (acted on by the delivery issue; validated now). */
const DeploySpec = z.strictObject({
  strategy: z.enum(["rolling", "blueGreen", "canary"]).default("rolling"),
  maxSurge: z.number().int().min(0).max(100).optional(),
  maxUnavailable: z.number().int().min(0).max(100).optional(),
  steps: z
    .array(
      z.union([
        z.strictObject({ setWeight: z.number().int().min(0).max(100) }),
        z.strictObject({ pause: z.union([Duration, z.literal("manual")]) }),
        z.strictObject({ analysis: z.strictObject({ interval: Duration.optional(), metrics: z.array(z.string()).optional() }) }),
      ]),
    )
    .optional(),
});

/** Autoscaling (acted on by the autoscaling issue; validated now). */
const AutoscaleSpec = z
  .strictObject({
    min: z.number().int().min(0).max(1000),
    max: z.number().int().min(1).max(1000),
    target: z
      .strictObject({
        inflight: z.number().positive().optional(),
        rps: z.number().positive().optional(),
        p95: Duration.optional(),
        cpu: z.number().positive().max(100).optional(),
      })
      .optional(),
    tolerance: z.number().min(0).max(1).optional(),
    scaleDownStabilization: Duration.optional(),
  })
  .refine((a) => a.min <= a.max, { message: "autoscale.min must not exceed autoscale.max", path: ["min"] });

/** Resilience policies (acted on by the gateway issue; validated now). */
const ResilienceSpec = z.strictObject({
  timeout: Duration.optional(),
  perTryTimeout: Duration.optional(),
  retries: z.strictObject({ attempts: z.number().int().min(0).max(10), budgetPercent: z.number().min(0).max(100).optional() }).optional(),
  circuitBreaker: z
    .strictObject({ failureRatio: z.number().min(0).max(1), minRequests: z.number().int().min(1).optional(), window: Duration.optional() })
    .optional(),
  outlierEjection: z.strictObject({ consecutiveFailures: z.number().int().min(1), maxEjectedPercent: z.number().min(0).max(100).optional() }).optional(),
  maxConcurrent: z.number().int().min(1).optional(),
  loadBalancer: z.enum(["p2c-ewma", "round-robin", "least-request"]).optional(),
});

/** Service level objectives (acted on by the telemetry issue; validated now). */
const SloSpec = z.strictObject({
  name: name("SLO name"),
  availability: z.number().gt(0).lt(100).optional(),
  latency: z.strictObject({ threshold: Duration, percentile: z.number().gt(0).lt(100) }).optional(),
  window: Duration.default(30 * 24 * 3_600_000),
});

export const ServiceSpecSchema = z.strictObject({
  /** Team that owns the service. */
  owner: name("owner"),
  description: z.string().optional(),
  /** Folder of the service, relative to the manifest. */
  path: z.string().min(1),
  /** Command that builds the service (run in `path` with a shell); skipped when the sources did not change. */
  build: z.string().min(1).optional(),
  /** Command that runs the service's tests. */
  test: z.string().min(1).optional(),
  /** Command that starts one replica; it must listen on $PORT. */
  start: z.string().min(1),
  /** First port; replica i listens on port + i. Omit to let Keelson pick free ports. */
  port: Port.optional(),
  replicas: z.number().int().min(0).max(100).default(1),
  readiness: ProbeOrPath.optional(),
  liveness: ProbeOrPath.optional(),
  routes: z.array(RouteOrPath).default([]),
  /** Services this one may call (through the gateway). */
  calls: z.array(name("service name")).default([]),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "environment variable name" }), EnvValue).default({}),
  /** How long a replica may take to stop after SIGTERM before it is killed. */
  stopTimeout: Duration.default(10_000),
  /** How long a new replica may take to become ready. */
  startTimeout: Duration.default(30_000),
  deploy: DeploySpec.optional(),
  autoscale: AutoscaleSpec.optional(),
  resilience: ResilienceSpec.optional(),
  slos: z.array(SloSpec).optional(),
  secrets: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).optional(),
});

const Listen = z.strictObject({
  host: z.string().default("127.0.0.1"),
  port: Port,
});

export const ManifestSchema = z.strictObject({
  /** Schema version of this file. */
  version: z.literal(1).default(1),
  /** Project name; state is kept per project. */
  project: name("project"),
  controlPlane: Listen.extend({ port: Port.default(7070) }).default({ host: "127.0.0.1", port: 7070 }),
  gateway: Listen.extend({
    port: Port.default(8080),
    /** Port of the gateway's own health, /metrics and admin endpoints (kept apart from app routes). */
    adminPort: Port.default(8081),
  }).default({ host: "127.0.0.1", port: 8080, adminPort: 8081 }),
  runtime: z.enum(["process", "docker", "kubernetes"]).default("process"),
  teams: z.record(name("team"), z.strictObject({ members: z.array(z.string()).default([]), contact: z.string().optional() })).optional(),
  services: z.record(name("service name"), ServiceSpecSchema),
});

/** The manifest as written (before defaults). */
export type ManifestInput = z.input<typeof ManifestSchema>;
/** The manifest after validation and defaults: what the rest of Keelson works with. */
export type Manifest = z.output<typeof ManifestSchema>;
export type ServiceSpec = z.output<typeof ServiceSpecSchema>;
export type ProbeSpec = z.output<typeof Probe>;
export type RouteSpecOut = z.output<typeof RouteSpec>;
