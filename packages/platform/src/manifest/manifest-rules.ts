// Rules across fields and services that a schema cannot express: routes claimed twice, calls
// to unknown services (from `calls` or a route's flag), owners outside `teams`, overlapping
// ports, service folders that are not there, flags that would not compile. Each rule looks only
// at the fields it needs, so one bad field elsewhere in a service does not hide these problems
// until the next run.
import { readdirSync, statSync } from "node:fs";
import { dirname, posix, resolve, sep } from "node:path";
import { checkFlagSet, FLAG_KEY_PATTERN, FlagDefinitionSchema } from "@keelson/protocol";
import type { z } from "zod";
import { schemaAt } from "./describe-schema.js";
import { didYouMean } from "./did-you-mean.js";
import { formatIssuePath, type PathIssue, type PathSegment } from "./manifest-issue.js";
import { checkPipelineTemplateRules, collectPipelineTemplates, type PipelineTemplateSet } from "./pipeline-templates.js";
import { ManifestSchema, ServiceSpecSchema, meshPortOf, mtlsEnabled } from "./schema.js";

export interface ManifestRuleOptions {
  /** Folder of the manifest; service paths are relative to it. */
  dir: string;
  /** Check that every service `path` is an existing folder (off for text not on disk yet). */
  checkPaths: boolean;
  /** The pipeline templates the services may use; default: those the data defines and its pipelineFiles. */
  pipelineTemplates?: PipelineTemplateSet;
}

type Shape = typeof ServiceSpecSchema.shape;
type FieldValue<K extends keyof Shape> = z.output<Shape[K]>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** One field of a raw service, validated (defaults applied) on its own; undefined when invalid. */
function field<K extends keyof Shape>(service: unknown, key: K): FieldValue<K> | undefined {
  if (!isRecord(service)) return undefined;
  const schema: z.ZodType = ServiceSpecSchema.shape[key];
  const result = schema.safeParse(service[key]);
  return result.success ? (result.data as FieldValue<K>) : undefined;
}

/** The valid entries of a list field, with their indexes: one bad route must not hide another's clash. */
function validItems<K extends "routes" | "calls">(service: unknown, key: K): { index: number; value: FieldValue<K>[number] }[] {
  const list = isRecord(service) ? service[key] : undefined;
  if (!Array.isArray(list)) return [];
  const element = schemaAt(ServiceSpecSchema, [key, 0]) as z.ZodType | undefined;
  if (element === undefined) return [];
  return list.flatMap((item, index) => {
    const result = element.safeParse(item);
    return result.success ? [{ index, value: result.data as FieldValue<K>[number] }] : [];
  });
}

/**
 * Checks the cross-field rules on raw manifest data (as read from YAML, before the schema),
 * returning every violation with its path.
 */
export function checkManifestRules(data: unknown, options: ManifestRuleOptions): PathIssue[] {
  const root = isRecord(data) ? data : {};
  const services = isRecord(root.services) ? root.services : {};
  return [
    ...checkOwners(root, services),
    ...checkReservedNames(services),
    ...checkCalls(services),
    ...checkRoutes(services),
    ...checkRouteFlags(root, services),
    ...checkPorts(root, services),
    ...checkDelivery(root, services),
    ...checkPipelineTemplateRules(services, options.pipelineTemplates ?? collectPipelineTemplates(root, { dir: options.dir, manifestFile: "keelson.yaml" })),
    ...checkTls(root, services),
    ...checkFlags(root),
    ...checkFlagOwners(root, services),
    ...(options.checkPaths ? [...checkPaths(services, options.dir), ...checkIncludes(services, options.dir)] : []),
  ];
}

/** A replica serving TLS needs a certificate, and only mTLS gives replicas one. */
function checkTls(root: Record<string, unknown>, services: Record<string, unknown>): PathIssue[] {
  const security = ManifestSchema.shape.security.safeParse(root.security);
  const runtime = ManifestSchema.shape.runtime.safeParse(root.runtime);
  // A broken security or runtime section is reported by the schema; guessing here would add noise.
  if (!security.success || !runtime.success || mtlsEnabled({ security: security.data, runtime: runtime.data })) return [];
  const issues: PathIssue[] = [];
  for (const name of Object.keys(services)) {
    if (field(services[name], "tls") !== true) continue;
    issues.push({
      path: ["services", name, "tls"],
      message: "tls: true needs mTLS, which gives replicas their certificates: set security.mtls: true",
      found: "true",
    });
  }
  return issues;
}

function checkOwners(root: Record<string, unknown>, services: Record<string, unknown>): PathIssue[] {
  // Without a `teams` section owners are free text; with one, they must name a team.
  if (!isRecord(root.teams)) return [];
  const teams = Object.keys(root.teams);
  const issues: PathIssue[] = [];
  for (const [name, raw] of Object.entries(services)) {
    const owner = field(raw, "owner");
    if (owner === undefined || teams.includes(owner)) continue;
    const close = didYouMean(owner, teams);
    issues.push({
      path: ["services", name, "owner"],
      message: `team "${owner}" is not declared in teams`,
      found: JSON.stringify(owner),
      hint: close !== undefined ? `did you mean \`${close}\`?` : teams.length > 0 ? `declared teams: ${teams.join(", ")}` : "teams is empty",
    });
  }
  return issues;
}

/**
 * A flag's owner must be someone the manifest knows when it declares `teams`: a team, a member
 * of one, or a service (whom the catalog counts a stale flag against).
 */
function checkFlagOwners(root: Record<string, unknown>, services: Record<string, unknown>): PathIssue[] {
  if (!isRecord(root.teams) || !isRecord(root.flags)) return [];
  const teams = Object.keys(root.teams);
  const members = Object.values(root.teams).flatMap((t) => (isRecord(t) && Array.isArray(t.members) ? t.members.filter((m): m is string => typeof m === "string") : []));
  const known = [...new Set([...teams, ...members, ...Object.keys(services)])];
  const issues: PathIssue[] = [];
  for (const [key, flag] of Object.entries(root.flags)) {
    const owner = isRecord(flag) ? flag.owner : undefined;
    // Anything but a non-empty string is the schema's to report.
    if (typeof owner !== "string" || owner === "" || known.includes(owner)) continue;
    const close = didYouMean(owner, known);
    issues.push({
      path: ["flags", key, "owner"],
      message: `"${owner}" is not a team declared in teams, a member of one, or a service`,
      found: JSON.stringify(owner),
      hint: close !== undefined ? `did you mean \`${close}\`?` : teams.length > 0 ? `declared teams: ${teams.join(", ")}` : "teams is empty",
    });
  }
  return issues;
}

/** Names of Keelson's own identities (spiffe://<project>/<name>): a service named so would be issued their certificates. */
const RESERVED_SERVICE_NAMES = ["keelson-gateway", "keelson-controlplane"];

function checkReservedNames(services: Record<string, unknown>): PathIssue[] {
  return Object.keys(services)
    .filter((name) => RESERVED_SERVICE_NAMES.includes(name))
    .map((name) => ({ path: ["services", name], message: `"${name}" is reserved for Keelson's own identity; choose another service name`, found: JSON.stringify(name) }));
}

function checkCalls(services: Record<string, unknown>): PathIssue[] {
  const names = Object.keys(services);
  const issues: PathIssue[] = [];
  for (const [name, raw] of Object.entries(services)) {
    for (const { index: i, value: call } of validItems(raw, "calls")) {
      const target = call.service;
      const path = ["services", name, "calls", i, ...(typeof (raw as { calls: unknown[] }).calls[i] === "string" ? [] : ["service"])];
      if (target === name) {
        issues.push({ path, message: `service "${name}" lists itself; calls names the other services it calls`, found: JSON.stringify(target) });
      } else if (!names.includes(target)) {
        const others = names.filter((n) => n !== name);
        const close = didYouMean(target, others);
        issues.push({
          path,
          message: `no service named "${target}"`,
          found: JSON.stringify(target),
          hint: close !== undefined ? `did you mean \`${close}\`?` : others.length > 0 ? `services: ${others.join(", ")}` : "this is the only service",
        });
      }
    }
  }
  return issues;
}

function checkRoutes(services: Record<string, unknown>): PathIssue[] {
  const claims = new Map<string, { service: string; index: number }>();
  const issues: PathIssue[] = [];
  for (const [name, raw] of Object.entries(services)) {
    for (const { index, value: route } of validItems(raw, "routes")) {
      // "/api" and "/api/" are the same prefix; hosts are case-insensitive.
      const prefix = route.path.length > 1 ? route.path.replace(/\/+$/, "") : route.path;
      const host = route.host?.toLowerCase();
      const claim = `${host ?? "*"} ${prefix}`;
      const shown = host === undefined ? `"${route.path}"` : `"${route.path}" on host ${host}`;
      const first = claims.get(claim);
      if (first === undefined) {
        claims.set(claim, { service: name, index });
      } else if (first.service === name) {
        issues.push({ path: ["services", name, "routes", index], message: `route ${shown} is listed twice (also routes[${first.index}])` });
      } else {
        const other = formatIssuePath(["services", first.service, "routes", first.index]);
        issues.push({ path: ["services", name, "routes", index], message: `route ${shown} is already claimed by ${other}` });
      }
    }
  }
  return issues;
}

/**
 * A route's flag variants must send requests to declared services and, when the flag is
 * declared in `flags`, be variants of it (a flag managed live with `keelson flags` is not known here).
 */
function checkRouteFlags(root: Record<string, unknown>, services: Record<string, unknown>): PathIssue[] {
  const names = Object.keys(services);
  const declared = isRecord(root.flags) ? root.flags : {};
  const issues: PathIssue[] = [];
  for (const [name, raw] of Object.entries(services)) {
    for (const { index, value: route } of validItems(raw, "routes")) {
      const flag = route.flag;
      if (flag === undefined) continue;
      const at = ["services", name, "routes", index, "flag"];
      const definition = Object.hasOwn(declared, flag.key) ? declared[flag.key] : undefined;
      const known = isRecord(definition) && isRecord(definition.variants) ? Object.keys(definition.variants) : undefined;
      for (const [variant, target] of Object.entries(flag.variants)) {
        if (known !== undefined && !known.includes(variant)) {
          const close = didYouMean(variant, known);
          issues.push({
            path: [...at, "variants", variant],
            message: `flag "${flag.key}" has no variant "${variant}"`,
            hint: close !== undefined ? `did you mean \`${close}\`?` : `its variants: ${known.join(", ")}`,
          });
        }
        if (target.service !== undefined && !names.includes(target.service)) {
          const close = didYouMean(target.service, names);
          issues.push({
            path: [...at, "variants", variant, "service"],
            message: `no service named "${target.service}"`,
            found: JSON.stringify(target.service),
            hint: close !== undefined ? `did you mean \`${close}\`?` : `services: ${names.join(", ")}`,
          });
        }
      }
    }
  }
  return issues;
}

interface ReservedPort {
  label: string;
  port: number;
  path: PathSegment[];
  /** Written in the manifest, rather than taken from the default. */
  explicit: boolean;
}

function reservedPorts(root: Record<string, unknown>): ReservedPort[] {
  const out: ReservedPort[] = [];
  const cp = ManifestSchema.shape.controlPlane.safeParse(root.controlPlane);
  const gw = ManifestSchema.shape.gateway.safeParse(root.gateway);
  const written = (section: string, key: string): boolean => {
    const s = root[section];
    return isRecord(s) && s[key] !== undefined;
  };
  if (cp.success) out.push({ label: "controlPlane.port", port: cp.data.port, path: ["controlPlane", "port"], explicit: written("controlPlane", "port") });
  if (gw.success) {
    out.push({ label: "gateway.port", port: gw.data.port, path: ["gateway", "port"], explicit: written("gateway", "port") });
    out.push({ label: "gateway.adminPort", port: gw.data.adminPort, path: ["gateway", "adminPort"], explicit: written("gateway", "adminPort") });
    out.push({ label: "gateway.meshPort", port: meshPortOf(gw.data), path: ["gateway", "meshPort"], explicit: written("gateway", "meshPort") });
  }
  return out;
}

const MAX_PORT = 65535;

function checkPorts(root: Record<string, unknown>, services: Record<string, unknown>): PathIssue[] {
  const issues: PathIssue[] = [];
  const reserved = reservedPorts(root);
  const label = (r: ReservedPort, withPort = false): string => `${r.label}${withPort ? ` ${r.port}` : ""}${r.explicit ? "" : " (default)"}`;

  // The control plane and the gateway's two ports must differ too; blame the one that was written.
  reserved.forEach((b, j) => {
    for (const a of reserved.slice(0, j)) {
      if (a.port !== b.port || (!a.explicit && !b.explicit)) continue;
      const [blamed, other] = b.explicit ? [b, a] : [a, b];
      issues.push({ path: blamed.path, message: `port ${blamed.port} is also ${label(other)}` });
    }
  });

  const ranges: { service: string; first: number; last: number }[] = [];
  for (const [name, raw] of Object.entries(services)) {
    const port = field(raw, "port");
    if (port === undefined) continue;
    const replicas = field(raw, "replicas") ?? 1;
    const autoscaleMax = field(raw, "autoscale")?.max ?? 0;
    // Replica i listens on port + i, so the service owns as many ports as it may ever have replicas.
    const count = Math.max(1, replicas, autoscaleMax);
    const last = port + count - 1;
    const path = ["services", name, "port"];
    const why = autoscaleMax > replicas ? `up to ${count} replicas with autoscale` : `${count} replicas`;
    const subject = count === 1 ? `port ${port}` : `ports ${port}-${last} (${why})`;
    const span = (first: number, end: number): string => (first === end ? `port ${first}` : `ports ${first}-${end}`);

    if (last > MAX_PORT) issues.push({ path, message: `${subject} go past ${MAX_PORT}` });
    const hit = reserved.filter((r) => r.port >= port && r.port <= last);
    if (hit.length > 0) {
      const taken = hit.map((r) => label(r, count > 1)).join(", ");
      issues.push({ path, message: count === 1 ? `${subject} is also ${taken}` : `${subject} include ${taken}` });
    }
    for (const other of ranges) {
      if (other.first > last || port > other.last) continue;
      const theirs = `services.${other.service} (${span(other.first, other.last)})`;
      issues.push({ path, message: count === 1 ? `${subject} is also used by ${theirs}` : `${subject} overlap ${theirs}` });
    }
    ranges.push({ service: name, first: port, last });
  }
  return issues;
}

/** Pipelines and rollouts: one way to give stages, a rolling update that can progress, free ports for two sets. */
function checkDelivery(root: Record<string, unknown>, services: Record<string, unknown>): PathIssue[] {
  const issues: PathIssue[] = [];
  for (const [name, raw] of Object.entries(services)) {
    const pipeline = field(raw, "pipeline");
    // A pipeline with a template is checked with the templates (pipeline-templates.ts).
    if (pipeline !== undefined && pipeline.template === undefined && Array.isArray(pipeline.stages)) {
      for (const key of ["build", "test"] as const) {
        if (field(raw, key) === undefined) continue;
        issues.push({
          path: ["services", name, key],
          message: `${key} and pipeline.stages both say what to run; with stages, put the ${key} command in a stage`,
        });
      }
      const seen = new Set<string>();
      pipeline.stages.forEach((stage, i) => {
        if (seen.has(stage.name)) issues.push({ path: ["services", name, "pipeline", "stages", i, "name"], message: `stage "${stage.name}" is listed twice` });
        seen.add(stage.name);
      });
    }
    const deploy = field(raw, "deploy");
    if (deploy === undefined) continue;
    if (deploy.maxSurge === 0 && deploy.maxUnavailable === 0) {
      issues.push({ path: ["services", name, "deploy", "maxUnavailable"], message: "maxSurge and maxUnavailable are both 0, so a rolling update could never replace a replica" });
    }
    if (deploy.strategy !== "rolling" && field(raw, "port") !== undefined) {
      issues.push({
        path: ["services", name, "deploy", "strategy"],
        message: `${deploy.strategy} runs the old and the new release side by side, which needs ports Keelson picks; remove services.${name}.port`,
      });
    }
    if (deploy.strategy === "canary" && (deploy.steps ?? []).length === 0) {
      issues.push({ path: ["services", name, "deploy", "steps"], message: "a canary rollout needs steps, e.g. [{ setWeight: 10 }, { pause: 1m }, { setWeight: 50 }]" });
    }
    if (deploy.strategy !== "canary") {
      for (const key of ["steps", "maxWeight", "analysis", "affinity"] as const) {
        if (deploy[key] !== undefined) issues.push({ path: ["services", name, "deploy", key], message: `${key} ${key === "steps" ? "are" : "is"} for strategy canary; strategy is ${deploy.strategy}` });
      }
      continue;
    }
    issues.push(...checkCanarySteps(root, name, deploy));
  }
  return issues;
}

/**
 * Canary steps that could never work: weights that do not increase or pass maxWeight, an
 * analysis whose baseline gets no traffic, PromQL metrics without a Prometheus.
 */
function checkCanarySteps(root: Record<string, unknown>, name: string, deploy: NonNullable<FieldValue<"deploy">>): PathIssue[] {
  const issues: PathIssue[] = [];
  const at = (...rest: PathSegment[]): PathSegment[] => ["services", name, "deploy", ...rest];
  const prometheus = isRecord(root.telemetry) && isRecord(root.telemetry.prometheus) && typeof root.telemetry.prometheus.url === "string";
  const checkMetrics = (metrics: unknown[] | undefined, path: PathSegment[]) => {
    metrics?.forEach((m, k) => {
      if (typeof m === "object" && !prometheus) {
        issues.push({ path: [...path, "metrics", k, "query"], message: "a PromQL metric needs a Prometheus server: set telemetry.prometheus.url" });
      }
    });
  };
  checkMetrics(deploy.analysis?.metrics, at("analysis"));
  let weight = -1;
  let weightStep = -1;
  (deploy.steps ?? []).forEach((step, i) => {
    if ("setWeight" in step) {
      if (step.setWeight <= weight) {
        issues.push({ path: at("steps", i, "setWeight"), message: `weights must increase: ${step.setWeight} comes after ${weight} (steps[${weightStep}])` });
      }
      if (deploy.maxWeight !== undefined && step.setWeight > deploy.maxWeight) {
        issues.push({ path: at("steps", i, "setWeight"), message: `${step.setWeight} is above maxWeight ${deploy.maxWeight}` });
      }
      weight = Math.max(weight, step.setWeight);
      weightStep = i;
    } else if ("analysis" in step) {
      // The baseline gets the canary's weighted share, min(weight, 100 - weight); matched
      // requests go to the canary only. With no share, the analysis could only end Inconclusive.
      if (weight <= 0) {
        issues.push({
          path: at("steps", i, "analysis"),
          message: "no step before this analysis sets a weight above 0, so its baseline (which gets the canary's weighted share; match steps send requests to the canary only) would get no requests and the analysis could never pass; put a setWeight of 1-99 before it, e.g. { setWeight: 10 }",
        });
      } else if (weight >= 100) {
        issues.push({
          path: at("steps", i, "analysis"),
          message: `this analysis follows setWeight 100 (steps[${weightStep}]), which leaves its baseline no share of traffic (it gets min(weight, 100 - weight)), so the analysis could never pass; analyse at a weight of 1-99`,
        });
      }
      checkMetrics(step.analysis.metrics, at("steps", i, "analysis"));
    }
  });
  return issues;
}

/** Every pipeline.include path must exist beside the manifest (a file or a folder). */
function checkIncludes(services: Record<string, unknown>, dir: string): PathIssue[] {
  const issues: PathIssue[] = [];
  for (const [name, raw] of Object.entries(services)) {
    const pipeline = field(raw, "pipeline");
    pipeline?.include.forEach((path, i) => {
      try {
        statSync(resolve(dir, path));
      } catch {
        issues.push({ path: ["services", name, "pipeline", "include", i], message: `"${path}" does not exist`, found: JSON.stringify(path), hint: `looked for ${resolve(dir, path)}` });
      }
    });
  }
  return issues;
}

function checkPaths(services: Record<string, unknown>, dir: string): PathIssue[] {
  const issues: PathIssue[] = [];
  for (const [name, raw] of Object.entries(services)) {
    const path = field(raw, "path");
    if (path === undefined) continue;
    const abs = resolve(dir, path);
    const at = ["services", name, "path"];
    const found = JSON.stringify(path);
    let isDir: boolean | undefined;
    try {
      isDir = statSync(abs).isDirectory();
    } catch {
      isDir = undefined;
    }
    if (isDir === true) continue;
    if (isDir === false) {
      issues.push({ path: at, message: `"${path}" is a file, expected a folder`, expected: "folder beside the manifest", found });
      continue;
    }
    const close = didYouMean(abs.split(sep).pop() ?? "", siblingFolders(abs));
    // Suggest the path as it would be written in YAML, with "/" whatever the platform.
    const suggestion = close === undefined ? undefined : posix.join(posix.dirname(path.split(sep).join("/")), close);
    issues.push({
      path: at,
      message: `folder "${path}" does not exist`,
      expected: "folder beside the manifest",
      found,
      hint: suggestion !== undefined ? `did you mean \`${suggestion}\`?` : `looked for ${abs}`,
    });
  }
  return issues;
}

function siblingFolders(abs: string): string[] {
  try {
    return readdirSync(dirname(abs), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/**
 * The flags as the flag service will check them when `keelson up` sets them: variants of one
 * type, names that exist, targeting operators, prerequisite and $ref cycles. Flags whose
 * structure is wrong are left to the schema, which already reports them (with hints).
 */
function checkFlags(root: Record<string, unknown>): PathIssue[] {
  if (root.flags === undefined && root.flagEvaluators === undefined) return [];
  const flags = root.flags === undefined ? {} : root.flags;
  if (!isRecord(flags)) return [];
  const named = Object.entries(flags).filter(([key]) => FLAG_KEY_PATTERN.test(key));
  const evaluators = isRecord(root.flagEvaluators) ? root.flagEvaluators : undefined;
  const checked = checkFlagSet({ flags: Object.fromEntries(named), ...(evaluators === undefined ? {} : { $evaluators: evaluators }) });
  if (checked.ok) return [];
  const malformed = new Set(named.filter(([, flag]) => !FlagDefinitionSchema.safeParse(flag).success).map(([key]) => key));
  return checked.issues
    .filter((i) => !(i.path[0] === "flags" && malformed.has(String(i.path[1]))))
    .map((i) => ({
      // The manifest calls flagd's $evaluators flagEvaluators.
      path: i.path.length === 0 ? ["flags"] : i.path[0] === "$evaluators" ? ["flagEvaluators", ...i.path.slice(1)] : i.path,
      message: i.message.replaceAll("$evaluators", "flagEvaluators"),
    }));
}
