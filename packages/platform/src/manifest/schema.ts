// The keelson.yaml schema: one zod schema that validates, defaults and documents the
// manifest; `keelson schema` prints the JSON Schema generated from it for editors.
import { FLAG_ATTRIBUTE_PATTERN, FLAG_KEY_PATTERN, FLAG_TYPES } from "@keelson/protocol";
import { z } from "zod";

/**
 * Plain words for what a value must look like, for error messages where the schema's
 * structure reads poorly ("duration like …" rather than "integer >= 0 or string matching /…/").
 * Internal to the manifest domain; error reporting looks schemas up here before describing them.
 */
export const expectedText = z.registry<{ expected: string }>();

// RFC 1123 labels, so names also work as Kubernetes object and DNS names (no trailing "-").
const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NAME_RULE = 'lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters';
/** Whether `text` is a valid name of a service, team, stage or template (see NAME_RULE). */
export function isName(text: string): boolean {
  return NAME.test(text);
}
const name = (what: string) =>
  z.string().regex(NAME, { message: `${what} must be ${NAME_RULE}` }).register(expectedText, { expected: `${what} (${NAME_RULE})` });

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envName = (what: string) =>
  z
    .string()
    .regex(ENV_NAME, { message: `${what} must be letters, digits and "_", not starting with a digit` })
    .register(expectedText, { expected: `${what} (letters, digits and "_", not starting with a digit)` });

/**
 * A duration: a number of milliseconds or a string such as "500ms", "10s", "2m", "1h", "30d".
 * Parsed to milliseconds.
 */
export const Duration = z
  .union([z.number().int().nonnegative(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, { message: 'duration like "500ms", "10s", "2m", "1h" or "30d"' })])
  .transform((v) => (typeof v === "number" ? v : parseDuration(v)))
  .register(expectedText, { expected: 'duration like "500ms", "10s", "2m", "1h" or "30d" (or a number of milliseconds)' });

/**
 * Milliseconds in a duration string.
 *
 * @example
 * parseDuration("1.5s"); // 1500
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return Math.round(n * unit);
}

// Defaults of transformed fields use `prefault` (a default *input*, parsed like any value)
// so that the JSON Schema, generated from the input side, can still show them to editors.

const Port = z.number().int().min(1).max(65535);
const HttpPath = z
  .string()
  .startsWith("/", { message: 'path must start with "/"' })
  .register(expectedText, { expected: 'path starting with "/"' });

const Probe = z.strictObject({
  path: HttpPath.describe("HTTP path to GET; any 2xx answer counts as healthy."),
  interval: Duration.prefault(500).describe("Time between checks."),
  timeout: Duration.prefault(1000).describe("Per-check timeout."),
  failureThreshold: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(3)
    .describe("Consecutive failures before the replica is considered unready (readiness) or restarted (liveness)."),
});
/** A probe may be written as just its path. */
const ProbeOrPath = z
  .union([HttpPath.transform((path) => Probe.parse({ path })), Probe])
  .register(expectedText, { expected: 'path like "/health" or a mapping with path, interval, timeout, failureThreshold' });

/**
 * A size: a number of bytes or a string such as "512kb", "10mb", "1gb" (binary units).
 * Parsed to bytes.
 */
export const ByteSize = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?(b|kb|mb|gb)$/i, { message: 'size like "512kb", "10mb" or "1gb"' })])
  .transform((v) => (typeof v === "number" ? v : parseByteSize(v)))
  .register(expectedText, { expected: 'size like "512kb", "10mb" or "1gb" (or a number of bytes)' });

/**
 * Bytes in a size string (binary units: 1kb = 1024 bytes).
 *
 * @example
 * parseByteSize("10mb"); // 10485760
 */
export function parseByteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(b|kb|mb|gb)$/i.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[2] as string).toLowerCase() as "b" | "kb" | "mb" | "gb"];
  return Math.round(Number(m[1]) * unit);
}

const FallbackSpec = z
  .strictObject({
    status: z.number().int().min(200).max(599).default(200).describe("HTTP status of the fallback answer."),
    contentType: z.string().min(1).optional().describe('Content type; default "application/json" for a mapping or list body, else "text/plain; charset=utf-8".'),
    body: z
      .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
      .describe("Static body: a string, or a mapping/list sent as JSON."),
  })
  .transform((f) => ({
    status: f.status,
    contentType: f.contentType ?? (typeof f.body === "string" ? "text/plain; charset=utf-8" : "application/json"),
    body: typeof f.body === "string" ? f.body : JSON.stringify(f.body),
  }));

const FLAG_KEY_RULE = 'letters, digits, "_", "." and "-", starting with a letter or digit, at most 128 characters';
const flagKey = z
  .string()
  .regex(FLAG_KEY_PATTERN, { message: `flag key must be ${FLAG_KEY_RULE}` })
  .register(expectedText, { expected: `flag key (${FLAG_KEY_RULE})` });

/** A request header or cookie a flag's evaluation context attribute is read from. */
const RequestValueSpec = z
  .union([
    z.strictObject({ header: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: "not a valid header name" }).describe("Request header (any case), e.g. x-user-id.") }),
    z.strictObject({ cookie: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: "not a valid cookie name" }).describe("Cookie name, e.g. shop-visitor.") }),
  ])
  .register(expectedText, { expected: "a mapping with one of header, cookie" });

const RouteFlagSpec = z.strictObject({
  key: flagKey.describe("The flag to evaluate, from `flags` or managed live with `keelson flags`."),
  context: z
    .record(
      z
        .string()
        .regex(FLAG_ATTRIBUTE_PATTERN, { message: 'attribute name must be letters, digits, "_" and "-", starting with a letter or "_"' })
        .refine((k) => k !== "__proto__", { message: '"__proto__" is not an attribute name' }),
      RequestValueSpec,
    )
    .default({})
    .describe("Evaluation context: attribute name → where its value comes from. targetingKey is what fractional splits bucket by."),
  variants: z
    .record(
      z.string().min(1),
      z
        .strictObject({
          service: name("service name").optional().describe("Send the request to this service (declared in services) instead of the route's."),
          version: z.string().min(1).optional().describe('Pin the request to this release id or split label (e.g. "canary"), as x-keelson-version does.'),
        })
        .refine((v) => v.service !== undefined || v.version !== undefined, { message: "a variant needs service, version or both" }),
    )
    .refine((v) => Object.keys(v).length > 0, { message: "list at least one variant" })
    .describe("Variant name → where requests that get it go; any other outcome keeps the route as without flag."),
});

const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/** How the gateway checks a request on an external route before it reaches the service. */
const RouteAuthSpec = z
  .union([
    z.literal("public"),
    z.strictObject({
      apiKey: z
        .strictObject({
          secret: envName("secret name").describe("A secret of this service (keelson secrets set) holding the accepted keys, one per line or comma-separated."),
          header: z.string().regex(/^[a-z0-9-]+$/, { message: "header must be a lowercase header name" }).default("x-api-key").describe("Header that carries the key."),
        })
        .describe("Requests must carry one of the keys; the gateway keeps only their SHA-256 hashes."),
    }),
    z.strictObject({
      jwt: z
        .strictObject({
          issuer: z.string().min(1).describe("Required `iss` claim."),
          audience: z.string().min(1).optional().describe("Required `aud` claim."),
          jwksUrl: z.url({ protocol: /^https?$/ }).optional().describe("Where the issuer publishes its public keys (JWKS)."),
          jwksFile: z.string().min(1).optional().describe("A JWKS file (public keys), relative to the manifest."),
          algorithms: z.array(z.enum(["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"])).optional().describe("Accepted signature algorithms (default: all asymmetric ones listed)."),
        })
        .refine((j) => (j.jwksUrl === undefined) !== (j.jwksFile === undefined), { message: "give exactly one of jwksUrl and jwksFile" })
        .describe("Requests must carry `authorization: Bearer <JWT>` signed by one of the issuer's keys, unexpired."),
    }),
  ])
  .register(expectedText, { expected: '"public", a mapping with apiKey, or a mapping with jwt' });

const RouteSpec = z.strictObject({
  path: HttpPath.default("/").describe('Path prefix this service answers; "/" for everything.'),
  host: z.string().min(1).optional().describe("Only requests for this Host header match; any host when omitted."),
  stripPrefix: z.boolean().default(false).describe("Remove the prefix before forwarding to the service."),
  rateLimit: z
    .strictObject({
      rps: z.number().positive().describe("Requests per second allowed on average."),
      burst: z.number().int().positive().optional().describe("Requests allowed at once above the average (default: rps rounded up)."),
    })
    .optional()
    .describe("Token-bucket rate limit for this route; excess requests get 429 with retry-after."),
  maxBodySize: ByteSize.optional().describe('Largest request body accepted, e.g. "1mb"; larger ones get 413 (default 10mb).'),
  fallback: FallbackSpec.optional().describe("Static answer served while the service's circuit is open or it has no ready replica."),
  flag: RouteFlagSpec.optional().describe("Choose the service or version of each request with a feature flag evaluated on its headers and cookies."),
  auth: RouteAuthSpec.prefault("public").describe('Who may use this route from outside: "public" (anyone), an API key, or a JWT.'),
});
const RouteOrPath = z
  .union([HttpPath.transform((path) => RouteSpec.parse({ path })), RouteSpec])
  .register(expectedText, { expected: 'path like "/orders" or a mapping with path, host, stripPrefix, rateLimit, maxBodySize, fallback, flag, auth' });

const EnvValue = z
  .union([z.string(), z.number(), z.boolean()])
  .transform(String)
  .register(expectedText, { expected: "string, number or true/false" });

/** How a request header or cookie value is matched: exactly one of exact, prefix, regex. */
const StringMatchSpec = z
  .union([
    z.string().transform((exact) => ({ exact })),
    z.strictObject({ exact: z.string().describe("The whole value, exactly.") }),
    z.strictObject({ prefix: z.string().describe("The value starts with this.") }),
    z.strictObject({
      regex: z
        .string()
        .describe("A regular expression the whole value matches.")
        .refine(
        (r) => {
          try {
            new RegExp(r);
            return true;
          } catch {
            return false;
          }
        },
          { message: "not a valid regular expression" },
        ),
    }),
  ])
  .register(expectedText, { expected: 'a string (exact match) or a mapping with one of exact, prefix, regex' });

/** A custom analysis metric: a PromQL query about the canary that must stay within bounds. */
const AnalysisMetricSpec = z
  .union([
    z.enum(["errors", "latency"]),
    z
      .strictObject({
        name: name("metric name").describe("Name shown in the analysis result."),
        query: z.string().min(1).describe("PromQL returning one number; {{service}}, {{canary}} and {{baseline}} are replaced by the service and release ids."),
        max: z.number().optional().describe("Fail when the value is above this."),
        min: z.number().optional().describe("Fail when the value is below this."),
        failureLimit: z.number().int().min(1).max(100).default(2).describe("Looks in a row out of bounds that fail the analysis."),
      })
      .refine((m) => m.max !== undefined || m.min !== undefined, { message: "a metric needs max, min or both", path: ["max"] }),
  ])
  .register(expectedText, { expected: 'errors, latency, or a mapping with name, query and max and/or min' });

/** Settings of canary analysis; `deploy.analysis` gives defaults that each analysis step may override. */
const AnalysisSpec = z.strictObject({
  interval: Duration.optional().describe("How often the canary is compared with the baseline (default 5s)."),
  duration: Duration.optional().describe("How long the analysis runs before it can pass; it fails as soon as the evidence is enough (default 1m)."),
  metrics: z
    .array(AnalysisMetricSpec)
    .min(1, { message: "an analysis needs at least one metric: errors, latency or a PromQL query" })
    .optional()
    .describe("What is compared (default [errors, latency]): error ratio and latency of canary vs baseline, and PromQL metrics with bounds."),
  confidence: z.number().min(0.5).max(0.9999).optional().describe("1 - the chance of failing a good canary over the whole analysis (default 0.99)."),
  minRequests: z.number().int().min(1).optional().describe("Requests the canary and the baseline must each serve before the analysis can pass (default 50); fewer is Inconclusive."),
  maxErrorRatio: z.number().gt(0).lt(1).optional().describe("Absolute limit on the canary's error ratio (default: from the service's availability SLO)."),
  maxP99: Duration.optional().describe("Absolute limit on the canary's p99 latency (default: from the service's latency SLO)."),
  dryRun: z.boolean().optional().describe("Report what the analysis would decide, without failing or pausing the rollout."),
});

const DeployStep = z
  .union([
    z.strictObject({ setWeight: z.number().int().min(0).max(100).describe("Percent of traffic to send to the new version.") }),
    z.strictObject({ pause: z.union([Duration, z.literal("manual")]).describe('Wait this long, or until promoted by hand ("manual").') }),
    z.strictObject({
      analysis: AnalysisSpec.describe("Compare the new version against a baseline of the old one, getting the same traffic, before going on."),
    }),
    z.strictObject({
      match: z
        .strictObject({
          headers: z.record(z.string().min(1), StringMatchSpec).optional().describe("Request headers (case-insensitive names) and how their values must match."),
          cookies: z.record(z.string().min(1), StringMatchSpec).optional().describe("Cookies and how their values must match."),
        })
        .refine((m) => Object.keys(m.headers ?? {}).length + Object.keys(m.cookies ?? {}).length > 0, { message: "a match needs at least one header or cookie" })
        .describe("From this step on, requests that match (testers, a user segment) go to the new version, whatever the weights."),
    }),
  ])
  .register(expectedText, { expected: "mapping with exactly one of setWeight, pause, analysis, match" });

/** How a new release replaces the running one (rolling, blue-green or canary steps). */
const DeploySpec = z.strictObject({
  strategy: z.enum(["rolling", "blueGreen", "canary"]).default("rolling").describe("How a new version replaces the old one."),
  maxSurge: z.number().int().min(0).max(100).optional().describe("Rolling: percent of extra replicas allowed during the rollout (default 25, at least one replica)."),
  maxUnavailable: z.number().int().min(0).max(100).optional().describe("Rolling: percent of replicas that may be unavailable during the rollout (default 0)."),
  steps: z.array(DeployStep).optional().describe("Canary: the steps of the rollout, in order."),
  maxWeight: z.number().int().min(1).max(100).optional().describe("Canary: the highest weight a step may set; after the last step the new version gets all traffic."),
  analysis: AnalysisSpec.optional().describe("Canary: defaults for every analysis step."),
  affinity: z
    .union([
      z.strictObject({ header: z.string().min(1).describe("Request header holding the user or session id.") }),
      z.strictObject({ cookie: z.string().min(1).describe("Cookie holding the user or session id.") }),
    ])
    .optional()
    .describe("Canary: keep each user on one version, by a hash of this header or cookie (a user or session id)."),
  drain: Duration.prefault(1000).describe("Time between taking a replica out of the gateway's table and stopping it, so requests in flight finish."),
  rollbackWindow: Duration.prefault(600_000).describe("Blue-green: how long the previous set stays running after the switch, for an instant rollback."),
  timeout: Duration.prefault(600_000).describe("Longest a rollout may take (pauses for approval excluded) before it is rolled back."),
});

const PipelineStage = z
  .strictObject({
    name: name("stage name").describe('Stage name; "install" is cached by lockfile hash, "scan" may hold your own scanners (the built-in security stage runs after the last stage in any case).'),
    run: z.string().min(1).describe("Command to run (with a shell, in the service's folder of the run's workspace)."),
    timeout: Duration.optional().describe("Longest this stage may run (default: the pipeline's stageTimeout)."),
  })
  .register(expectedText, { expected: "mapping with name, run and optionally timeout" });

/** One service's change to one stage of its template. */
const StageOverride = z
  .strictObject({
    run: z.string().min(1).optional().describe("Command that replaces the template stage's run, for this service."),
    timeout: Duration.optional().describe("Timeout that replaces the template stage's, for this service."),
  })
  .refine((o) => o.run !== undefined || o.timeout !== undefined, { message: "an override needs run, timeout or both" })
  .register(expectedText, { expected: "mapping with run and/or timeout" });

const PIPELINE_TEMPLATE_NAME = "pipeline template name";

/** A pipeline defined once (in `pipelines` or a `pipelineFiles` file) and used by many services. */
const PipelineTemplate = z
  .strictObject({
    description: z.string().optional().describe("What the template is for."),
    stages: z
      .array(PipelineStage)
      .min(1, { message: "a pipeline template needs at least one stage" })
      .register(expectedText, { expected: "non-empty list of stages (mappings with name, run and optionally timeout)" })
      .describe("The stages every service using the template runs, in order."),
  })
  .superRefine((t, ctx) => {
    const seen = new Set<string>();
    t.stages.forEach((stage, i) => {
      if (seen.has(stage.name)) ctx.addIssue({ code: "custom", path: ["stages", i, "name"], message: `stage "${stage.name}" is listed twice` });
      seen.add(stage.name);
    });
  });

/** Named pipeline templates; the same shape in the manifest and in a shared file. */
const PipelineTemplates = z.record(name(PIPELINE_TEMPLATE_NAME), PipelineTemplate.describe("A pipeline template."));

/**
 * A shared file of pipeline templates (listed in a manifest's `pipelineFiles`): its own
 * `pipelines` mapping, as in keelson.yaml, so one file can serve several repositories.
 */
export const PipelineFileSchema = z.strictObject({
  version: z.literal(1).default(1).describe("Schema version of this file."),
  pipelines: PipelineTemplates.describe("Pipeline templates by name."),
});

/** The service's own pipeline: stages run in a clean workspace; success makes a release. */
const PipelineSpec = z.strictObject({
  template: name(PIPELINE_TEMPLATE_NAME)
    .optional()
    .describe("A template of `pipelines` (or of a `pipelineFiles` file) whose stages this service runs; `stages` then overrides single stages by name."),
  stages: z
    .union([
      z.array(PipelineStage),
      z.record(name("stage name"), StageOverride.describe("What changes in this stage of the template.")),
    ])
    .register(expectedText, { expected: "list of stages (mappings with name, run, timeout), or with template a mapping of stage name to { run, timeout }" })
    .optional()
    .describe(
      "Stages in order. Default: install (with the service's own lockfile), build (`build` or the package.json build script), test (`test` or the package.json test script). With `template`: a mapping of the template's stage names to overrides ({ run, timeout }).",
    ),
  include: z
    .array(z.string().min(1))
    .default([])
    .describe("Other paths (relative to the manifest) copied into the workspace beside the service, e.g. a shared tsconfig; changes to them trigger this service."),
  stageTimeout: Duration.prefault(600_000).describe("Default longest time per stage."),
  retainReleases: z.number().int().min(2).max(1000).default(10).describe("Releases kept per service; older ones and their artifacts are deleted (never the live or previous one)."),
});
/** A pipeline may be written as just the name of a template. */
const PipelineOrTemplate = z
  .union([name(PIPELINE_TEMPLATE_NAME).transform((template) => PipelineSpec.parse({ template })), PipelineSpec])
  .register(expectedText, { expected: "pipeline template name, or a mapping with template, stages, include, stageTimeout, retainReleases" });

/** A duration that must be more than 0; `why` says what 0 would mean, for the error. */
const positiveDuration = (why: string) => Duration.refine((ms) => ms > 0, { message: `must be more than 0 (${why})` });

/** One limit on how fast the autoscaler may change a service's replica count (HPA's scaling policies). */
const ScalingPolicySpec = z.strictObject({
  type: z.enum(["pods", "percent"]).describe("pods: at most `value` replicas per `period`; percent: at most `value` percent of the current count per `period`."),
  value: z.number().int().min(1).max(1000).describe("Replicas, or percent of the current count."),
  period: positiveDuration("a period of 0 would limit nothing").describe("The window the limit applies to."),
});

/** How the autoscaler moves in one direction: stabilization window and rate limits. */
const ScalingRulesSpec = z.strictObject({
  stabilization: Duration.optional().describe("Recommendations over this window are considered and the most conservative one wins (scale up: the lowest; scale down: the highest)."),
  policies: z.array(ScalingPolicySpec).min(1).optional().describe("Limits on the change per period."),
  select: z.enum(["max", "min", "disabled"]).optional().describe("With several policies: the one allowing the largest change (max, default), the smallest (min), or no scaling in this direction (disabled)."),
});

/** Autoscaling: replica counts driven by load, HPA's algorithm (see docs/concepts.md#autoscaling). */
const AutoscaleSpec = z
  .strictObject({
    min: z.number().int().min(0).max(1000).describe("Fewest replicas; 0 lets an idle service scale to zero (the gateway holds the first request while a replica starts)."),
    max: z.number().int().min(1).max(1000).describe("Most replicas; with `port`, the service reserves ports port .. port+max-1."),
    target: z
      .strictObject({
        inflight: z.number().positive().optional().describe("Target concurrent requests per replica (the default measure, 10)."),
        rps: z.number().positive().optional().describe("Target requests per second per replica."),
        p95: positiveDuration("no latency can meet a target of 0").optional().describe("Target 95th percentile latency of the service."),
        cpu: z.number().positive().max(100).optional().describe("Target CPU percent (of one core) per replica."),
      })
      .refine((t) => Object.values(t).some((v) => v !== undefined), { message: "give at least one of inflight, rps, p95, cpu" })
      .optional()
      .describe("Per-replica load to aim for; with several measures the largest replica count wins."),
    tolerance: z.number().min(0).max(1).optional().describe("Relative deviation from the target ignored before scaling (default 0.1 = 10%)."),
    window: Duration.refine((ms) => ms >= 1_000 && ms <= 60_000, { message: "must be 1s to 60s (the gateway keeps the last 60 seconds, in whole seconds)" })
      .optional()
      .describe("How far back load is averaged at each look (default 10s; 1s to 60s)."),
    interval: positiveDuration("the autoscaler would look without pause").optional().describe("Time between looks (default 2s)."),
    scaleUp: ScalingRulesSpec.optional().describe("How fast replicas are added (default: no stabilization; up to double or 4 more per 15s, whichever is more)."),
    scaleDown: ScalingRulesSpec.optional().describe("How fast replicas are removed (default: a 5 minute stabilization window; up to all extra replicas per 15s)."),
    scaleToZero: z
      .strictObject({
        idle: Duration.optional().describe("How long the service must see no request before its last replica stops (default 5m)."),
        holdTimeout: positiveDuration("a request would never wait for a replica").optional().describe("How long the gateway holds a request while the first replica starts (default 30s)."),
        activation: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .optional()
          .describe("Requests that wake the service from zero (default 1): arrived at the gateways within max(window, activation × holdTimeout), summed over gateways by the autoscaler; until then each is answered 503 after holdTimeout."),
      })
      .optional()
      .describe("With min: 0, when to stop the last replica, how long a request waits for a new one and how many requests wake it."),
  })
  .refine((a) => a.min <= a.max, { message: "must not exceed autoscale.max", path: ["min"] })
  .refine((a) => a.scaleToZero === undefined || a.min === 0, { message: "needs autoscale.min: 0", path: ["scaleToZero"] });

/** What each replica may use. */
const ResourcesSpec = z.strictObject({
  memory: ByteSize.refine((v) => v >= 1024 * 1024, { message: "must be at least 1mb" })
    .optional()
    .describe('Memory limit per replica, e.g. "256mb" (resident set of its whole process group); a replica over it is restarted and the restart recorded.'),
});

/** Resilience policies the gateway applies to every request to the service (defaults in docs/manifest.md). */
const ResilienceSpec = z.strictObject({
  timeout: Duration.optional().describe("Deadline for a whole request, retries included (default 30s)."),
  perTryTimeout: Duration.optional().describe("Deadline for each attempt (default: the timeout)."),
  retries: z
    .strictObject({
      attempts: z.number().int().min(0).max(10).describe("Retries after the first attempt (default 2)."),
      budgetPercent: z.number().min(0).max(100).optional().describe("Retries may add at most this percent to the request load (default 20)."),
      minPerSecond: z.number().min(0).optional().describe("Retries always allowed per second on top of the budget (default 10)."),
      backoff: Duration.optional().describe("First backoff before a retry, doubled each time, with jitter (default 25ms)."),
      maxBackoff: Duration.optional().describe("Longest backoff (default 250ms)."),
    })
    .optional()
    .describe("Retry failed idempotent requests, and any request that never reached a replica."),
  circuitBreaker: z
    .union([
      z.literal(false),
      z.strictObject({
        failureRatio: z.number().gt(0).max(1).describe("Open the circuit when this share of requests fails (default 0.5)."),
        minRequests: z.number().int().min(1).optional().describe("Fewest requests in the window before the ratio counts (default 20)."),
        window: Duration.optional().describe("Window the failure ratio is measured over (default 10s)."),
        openFor: Duration.optional().describe("How long the circuit stays open before probing (default 5s)."),
        halfOpenProbes: z.number().int().min(1).optional().describe("Successful probes that close it again (default 3)."),
      }),
    ])
    .optional()
    .describe("Stop sending requests to a failing service for a while (on by default; false turns it off)."),
  outlierEjection: z
    .strictObject({
      consecutiveFailures: z.number().int().min(1).describe("Failures in a row that eject a replica from load balancing (default 5)."),
      baseEjectionTime: Duration.optional().describe("First ejection time, doubled on each further ejection (default 30s)."),
      maxEjectionTime: Duration.optional().describe("Longest ejection (default 5m)."),
      maxEjectedPercent: z.number().min(0).max(100).optional().describe("Never eject more than this percent of replicas (default 50)."),
    })
    .optional()
    .describe("Take misbehaving replicas out of load balancing."),
  maxConcurrent: z.number().int().min(1).optional().describe("Most requests in flight to the service (no limit by default)."),
  maxQueue: z.number().int().min(0).optional().describe("With maxConcurrent: requests that may wait for a slot; more get 503 (default 0)."),
  queueTimeout: Duration.optional().describe("With maxConcurrent: longest wait for a slot (default 1s)."),
  loadBalancer: z.enum(["p2c-ewma", "round-robin", "least-request"]).optional().describe("How the gateway picks a replica (default p2c-ewma)."),
});

/** Service level objectives (acted on by the telemetry issue; validated now). */
const SloSpec = z
  .strictObject({
    name: name("SLO name").describe("Name of the objective, unique within the service."),
    availability: z.number().gt(0).lt(100).optional().describe("Percent of requests that must succeed, e.g. 99.9."),
    latency: z
      .strictObject({
        threshold: Duration.describe("Requests faster than this are good."),
        percentile: z.number().gt(0).lt(100).describe("Percent of requests that must be faster than the threshold, e.g. 95."),
      })
      .optional()
      .describe("Latency objective."),
    window: Duration.prefault(30 * 24 * 3_600_000).describe("Rolling window the objective is measured over."),
  })
  // An SLO with neither objective would measure nothing.
  .refine((s) => s.availability !== undefined || s.latency !== undefined, { message: "an SLO needs availability, latency or both" });

/** One allowed call: a service name, or a service with the path prefixes and methods allowed. */
const CallSpec = z
  .union([
    name("service name").transform((service) => ({ service })),
    z.strictObject({
      service: name("service name").describe("The service called."),
      paths: z.array(HttpPath).min(1).optional().describe('Path prefixes allowed, e.g. ["/charges"] (default: all).'),
      methods: z.array(z.enum(HTTP_METHODS)).min(1).optional().describe("Methods allowed (default: all)."),
    }),
  ])
  .register(expectedText, { expected: "service name, or a mapping with service, paths, methods" });

/** What a notification webhook may be told about (the names teams subscribe to). */
export const NOTIFICATION_KINDS = ["deploy.started", "deploy.succeeded", "deploy.failed", "canary.rolled-back", "incident.opened", "incident.resolved", "security.blocked"] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

const WebhookUrl = z.url({ protocol: /^https?$/ });
const WebhookSpec = z
  .union([
    WebhookUrl,
    z.strictObject({
      url: WebhookUrl.describe("Where to POST."),
      format: z.enum(["json", "slack"]).default("json").describe('"json": Keelson\'s generic event JSON; "slack": a Slack-compatible incoming-webhook message (text + blocks).'),
      events: z.array(z.enum(NOTIFICATION_KINDS)).min(1).optional().describe(`Which notifications to send (default: all of ${NOTIFICATION_KINDS.join(", ")}).`),
    }),
  ])
  .register(expectedText, { expected: "http(s) URL, or a mapping with url, format (json|slack), events" });

const LINK_NAME = /^[a-z][a-z0-9-]{0,39}$/;
const TAG = /^[a-z0-9][a-z0-9.-]{0,39}$/;

export const ServiceSpecSchema = z.strictObject({
  owner: name("team name").describe("Team that owns the service (a key of `teams` when teams are declared)."),
  description: z.string().optional().describe("What the service does, for the catalog."),
  lifecycle: z.enum(["experimental", "production", "deprecated"]).optional().describe("Where the service is in its life, for the catalog (Backstage's spec.lifecycle)."),
  links: z
    .record(
      z.string().regex(LINK_NAME).register(expectedText, { expected: 'link name like "repo", "runbook", "docs" (lowercase letters, digits, "-")' }),
      z.string().min(1).describe("A URL, or a path relative to the manifest."),
    )
    .optional()
    .describe("Links shown in the catalog, by name: repo, runbook, docs, dashboard, ..."),
  tags: z
    .array(z.string().regex(TAG).register(expectedText, { expected: 'tag like "payments" or "pci" (lowercase letters, digits, ".", "-")' }))
    .optional()
    .describe("Labels for finding services in the catalog."),
  openapi: z.string().min(1).optional().describe("The OpenAPI file of the service's API, relative to its `path` (default: openapi.yaml, openapi.yml or openapi.json there, if present)."),
  path: z.string().min(1).describe("Folder of the service, relative to the manifest."),
  build: z.string().min(1).optional().describe("Command that builds the service (run in `path` with a shell); skipped when the sources did not change."),
  test: z.string().min(1).optional().describe("Command that runs the service's tests (run in `path` with a shell)."),
  start: z.string().min(1).describe("Command that starts one replica (run in `path` with a shell); it must listen on $PORT."),
  port: Port.optional().describe("First port; replica i listens on port + i. Omit to let Keelson pick free ports."),
  replicas: z.number().int().min(0).max(100).default(1).describe("How many replicas to run."),
  readiness: ProbeOrPath.optional().describe("HTTP check that a replica is ready for traffic."),
  liveness: ProbeOrPath.optional().describe("HTTP check that a replica is alive; failing replicas are restarted."),
  routes: z.array(RouteOrPath).prefault([]).describe("Gateway routes that reach this service."),
  calls: z
    .array(CallSpec)
    .default([])
    .describe("Services this one may call through the gateway; every other call is denied (403). A name allows every path and method."),
  env: z.record(envName("environment variable name"), EnvValue).prefault({}).describe("Environment variables for each replica."),
  stopTimeout: Duration.prefault(10_000).describe("How long a replica may take to stop after SIGTERM before it is killed."),
  startTimeout: Duration.prefault(30_000).describe("How long a new replica may take to become ready."),
  pipeline: PipelineOrTemplate.optional().describe("The service's pipeline: a template name, or stages (or a template with overrides), shared paths, timeouts and release retention."),
  deploy: DeploySpec.optional().describe("How new versions roll out: rolling (default), blue-green or canary steps."),
  autoscale: AutoscaleSpec.optional().describe("Replica counts driven by load; `replicas` is then the starting count, kept within min..max."),
  resources: ResourcesSpec.optional().describe("Limits per replica."),
  resilience: ResilienceSpec.optional().describe("Timeouts, retries and circuit breaking in the gateway."),
  slos: z.array(SloSpec).optional().describe("Service level objectives."),
  secrets: z.array(envName("secret name")).optional().describe("Names of secrets from the vault, given to replicas as environment variables."),
  tls: z
    .boolean()
    .default(false)
    .describe("Replicas serve HTTPS with their certificate and accept only the gateway and the control plane (needs security.mtls; @keelson/sdk's serve() does it)."),
});

/**
 * A flag in flagd's format plus Keelson's extensions: the structure only. What a schema cannot
 * say (one value type for all variants, names that must exist, targeting operators, cycles) is
 * checked by the protocol's checkFlagSet, run by the manifest rules.
 */
const FlagSpec = z.strictObject({
  state: z.enum(["ENABLED", "DISABLED"]).describe("ENABLED: the flag is evaluated; DISABLED: everyone gets safeVariant (else defaultVariant) with reason DISABLED."),
  variants: z
    .record(z.string().min(1), z.unknown().describe("A value: boolean, string, number or mapping/list; all variants of a flag have one type."))
    .describe("Variant name → value."),
  defaultVariant: z.string().min(1).describe("The variant served when targeting returns nothing (a key of variants)."),
  targeting: z
    .unknown()
    .optional()
    .describe('JsonLogic rule (free-form JSON) returning a variant name, with flagd\'s operators fractional, sem_ver, starts_with, ends_with and {"$ref": "<flagEvaluators key>"}; absent or {} for none.'),
  metadata: z
    .record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()]))
    .optional()
    .describe("Free key → string, number or boolean, returned with every evaluation."),
  type: z.enum(FLAG_TYPES).optional().describe("What the flag is for: release, experiment, operational, kill-switch or permission."),
  owner: z.string().min(1).optional().describe("Team or person responsible for the flag."),
  description: z.string().optional().describe("What the flag does."),
  prerequisites: z
    .array(
      z.strictObject({
        flag: z.string().min(1).describe("Key of another flag."),
        variant: z.string().min(1).describe("The variant that flag must evaluate to."),
      }),
    )
    .optional()
    .describe("Flags that must evaluate to given variants; otherwise this flag serves defaultVariant."),
  safeVariant: z.string().min(1).optional().describe("What `keelson flags kill` and DISABLED serve (default: defaultVariant)."),
});

const SEVERITIES = ["critical", "high", "moderate", "low"] as const;

const SecuritySpec = z.strictObject({
  mtls: z
    .boolean()
    .optional()
    .describe("Services reach the gateway's mesh listener over mutual TLS with certificates from the control plane's CA (default: on for the docker and kubernetes runtimes, off for local processes)."),
  certTtl: Duration.prefault("24h").describe("Lifetime of each service's certificate and identity token; both are renewed when two thirds of it has passed."),
  scan: z
    .strictObject({
      secrets: z.enum(["block", "warn", "off"]).default("block").describe("What a secret found in a service's files or new commits does: block the release, only report it, or skip the scan."),
      allowlist: z.string().min(1).optional().describe('File (relative to the manifest) of findings to ignore, one per line: a fingerprint, or "path:line", or a path glob.'),
      vulnerabilities: z
        .strictObject({
          block: z.enum([...SEVERITIES, "none"]).default("critical").describe("Block the release for a vulnerable dependency of this severity or worse (none: only report)."),
          advisories: z.array(z.string().min(1)).default([]).describe("OSV-format advisory files or folders (relative to the manifest), checked offline against each service's package-lock.json."),
          npmAudit: z.boolean().default(false).describe("Also run `npm audit` when the registry answers (skipped with a note when it does not)."),
        })
        .prefault({})
        .describe("Dependency vulnerability audit."),
      licenses: z
        .strictObject({ deny: z.array(z.string().min(1)).default([]).describe('SPDX ids that block a release, e.g. ["AGPL-3.0-only", "GPL-3.0-only"].') })
        .prefault({})
        .describe("Dependency licenses."),
    })
    .prefault({})
    .describe("The pipeline's security stage: secret scanning, dependency audit, SBOM, and what blocks a release."),
  api: z
    .strictObject({
      tls: z
        .strictObject({
          cert: z.string().min(1).describe("PEM certificate file (relative to the manifest)."),
          key: z.string().min(1).describe("PEM private key file (relative to the manifest)."),
        })
        .optional()
        .describe("Serve the control-plane API over HTTPS."),
    })
    .optional()
    .describe("The control-plane API."),
});

const Listen = z.strictObject({
  host: z.string().default("127.0.0.1").describe("Address to listen on."),
  port: Port,
});

export const ManifestSchema = z.strictObject({
  version: z.literal(1).default(1).describe("Schema version of this file."),
  project: name("project").describe("Project name; state is kept per project."),
  controlPlane: Listen.extend({ port: Port.default(7070).describe("Port of the control plane's HTTP API and dashboard.") })
    .default({ host: "127.0.0.1", port: 7070 })
    .describe("Where `keelson serve` listens."),
  gateway: Listen.extend({
    port: Port.default(8080).describe("Port clients send requests to."),
    adminPort: Port.default(8081).describe("Port of the gateway's own health, /metrics and admin endpoints (kept apart from app routes)."),
    meshPort: Port.optional().describe("Port of the gateway's mesh listener, where services call each other with their verified identity (default: port + 2)."),
  })
    .default({ host: "127.0.0.1", port: 8080, adminPort: 8081 })
    .describe("Where the gateway listens."),
  runtime: z.enum(["process", "docker", "kubernetes"]).default("process").describe("How replicas are run."),
  teams: z
    .record(
      name("team name"),
      z
        .strictObject({
          members: z.array(z.string()).default([]).describe("People in the team."),
          contact: z.string().optional().describe("Where to reach the team (chat channel, email)."),
          notifications: z.array(WebhookSpec).optional().describe("Webhooks (e.g. the team's chat) told about the team's services: deploys, rollbacks, incidents, blocked releases."),
        })
        .describe("A team."),
    )
    .optional()
    .describe("Teams that own services; when declared, every service's owner must be one of them."),
  telemetry: z
    .strictObject({
      prometheus: z
        .strictObject({
          url: z.url({ protocol: /^https?$/ }).describe("Base URL of the Prometheus server, e.g. http://127.0.0.1:9090."),
          scrapeInterval: positiveDuration("Prometheus would never take a new sample")
            .optional()
            .describe("How often this Prometheus scrapes the gateway, e.g. 15s. Canary analysis treats request counts that stand still for less than 2.5 of these (and at least 30 s) as a late scrape, not a stopped source; without it, 30s is assumed."),
        })
        .optional()
        .describe("Read metrics (canary analysis, SLOs, autoscaling) from this Prometheus with PromQL instead of the built-in store."),
      incidentWebhooks: z
        .array(z.url({ protocol: /^https?$/ }))
        .optional()
        .describe("URLs that receive a JSON POST when an incident opens or resolves."),
      tracesForwardUrl: z
        .url({ protocol: /^https?$/ })
        .optional()
        .describe("Also send every trace received on to this OTLP/HTTP traces endpoint (Jaeger, Tempo, a collector), e.g. http://127.0.0.1:4318/v1/traces."),
    })
    .optional()
    .describe("Where metrics come from and where incidents are sent."),
  notifications: z
    .strictObject({
      webhooks: z
        .array(WebhookSpec)
        .default([])
        .describe("Project-wide webhooks told about every service: deploys started, succeeded and failed, canaries rolled back, incidents, blocked releases."),
      attempts: z.number().int().min(1).max(20).default(8).describe("Tries per delivery before it goes to the dead-letter list."),
      backoff: Duration.prefault(1000).describe("Wait before the first retry; it doubles after each try."),
      maxBackoff: Duration.prefault(300_000).describe("Longest wait between two tries."),
    })
    .optional()
    .describe("Who hears about deploys, rollbacks, incidents and blocked releases (besides each team's own `notifications`)."),
  security: SecuritySpec.prefault({}).describe("Service identity, mTLS, and the pipeline's security gate."),
  pipelines: PipelineTemplates.optional().describe("Pipeline templates by name: stages defined once and used by many services (`pipeline: <name>`)."),
  pipelineFiles: z
    .array(z.string().min(1))
    .optional()
    .describe("Shared files of pipeline templates (relative to the manifest), each with its own `pipelines` mapping; several repositories can use one file."),
  services: z.record(name("service name"), ServiceSpecSchema.describe("A service.")).describe("The services of the project, by name."),
  flags: z
    .record(flagKey, FlagSpec.describe("A feature flag, in flagd's format plus Keelson's fields."))
    .optional()
    .describe("Feature flags as desired state: `keelson up` sets each to this definition; flags not listed here are managed live with `keelson flags`."),
  flagEvaluators: z
    .record(z.string().min(1), z.unknown().describe("A JsonLogic rule (free-form JSON)."))
    .optional()
    .describe('Shared targeting rules (flagd\'s $evaluators), used in a flag\'s targeting as {"$ref": "<name>"}.'),
});

/** The gateway's mesh port: `gateway.meshPort`, else two above the public port (8082 beside 8080). */
export function meshPortOf(gateway: Pick<Manifest["gateway"], "port" | "meshPort">): number {
  return gateway.meshPort ?? (gateway.port + 2 <= 65535 ? gateway.port + 2 : gateway.port - 2);
}

/** Whether services reach the gateway's mesh listener over mTLS: `security.mtls`, else on for the docker and kubernetes runtimes. */
export function mtlsEnabled(manifest: Pick<Manifest, "security" | "runtime">): boolean {
  return manifest.security.mtls ?? manifest.runtime !== "process";
}

/** The manifest as written (before defaults). */
export type ManifestInput = z.input<typeof ManifestSchema>;
/** The manifest after validation and defaults, as written: pipelines still name their templates. */
export type ManifestWritten = z.output<typeof ManifestSchema>;
/** A service after validation and defaults, as written. */
export type ServiceSpecWritten = z.output<typeof ServiceSpecSchema>;
export type PipelineStageOut = z.output<typeof PipelineStage>;
export type PipelineTemplateOut = z.output<typeof PipelineTemplate>;
export type StageOverrideOut = z.output<typeof StageOverride>;

/**
 * A service's pipeline with its template resolved: `stages` are concrete (the template's,
 * with the service's overrides applied) and `template` names where they came from.
 */
export interface PipelineSpecOut {
  template?: string;
  stages?: PipelineStageOut[];
  include: string[];
  stageTimeout: number;
  retainReleases: number;
}
/** A service as the rest of Keelson works with it: its pipeline resolved. */
export type ServiceSpec = Omit<ServiceSpecWritten, "pipeline"> & { pipeline?: PipelineSpecOut };
/**
 * The manifest after validation, defaults and pipeline resolution: what the rest of Keelson
 * works with. `pipelines` holds every template, the shared files' included.
 */
export type Manifest = Omit<ManifestWritten, "services"> & { services: Record<string, ServiceSpec> };
export type ProbeSpec = z.output<typeof Probe>;
export type RouteSpecOut = z.output<typeof RouteSpec>;
export type ResilienceSpecOut = z.output<typeof ResilienceSpec>;
export type DeploySpecOut = z.output<typeof DeploySpec>;
export type AnalysisSpecOut = z.output<typeof AnalysisSpec>;
export type DeployStepOut = z.output<typeof DeployStep>;
export type FlagSpecOut = z.output<typeof FlagSpec>;
export type SecuritySpecOut = z.output<typeof SecuritySpec>;
export type RouteAuthOut = z.output<typeof RouteAuthSpec>;
export type CallSpecOut = z.output<typeof CallSpec>;
export type AutoscaleSpecOut = z.output<typeof AutoscaleSpec>;
export type WebhookSpecOut = z.output<typeof WebhookSpec>;
export type ScalingRulesSpecOut = z.output<typeof ScalingRulesSpec>;
