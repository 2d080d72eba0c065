// OFREP (OpenFeature Remote Evaluation Protocol) answers from a flag snapshot, so that existing
// OpenFeature OFREP providers work against Keelson unchanged: single evaluation
// (POST /ofrep/v1/evaluate/flags/{key}) and bulk evaluation with an ETag
// (POST /ofrep/v1/evaluate/flags, If-None-Match → 304).
import { createHash } from "node:crypto";
import type { EvaluationContext, EvaluationResult } from "@keelson/protocol";
import type { FlagSnapshot } from "./flag-service.js";

export interface OfrepSuccess {
  key: string;
  value: unknown;
  reason: string;
  variant?: string;
  metadata?: Record<string, string | number | boolean>;
}

export interface OfrepFailure {
  key: string;
  errorCode: string;
  errorDetails: string;
}

/** An HTTP answer: status, body (undefined for 304) and extra headers. */
export interface OfrepAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** The request body's `context`, checked: an object whose targetingKey, when given, is a string. */
export function ofrepContext(body: unknown): { ok: true; context: EvaluationContext } | { ok: false; failure: { errorCode: string; errorDetails: string } } {
  if (body === undefined || body === null) return { ok: true, context: {} };
  if (typeof body !== "object" || Array.isArray(body)) return { ok: false, failure: { errorCode: "PARSE_ERROR", errorDetails: "the request body must be a JSON object with a context" } };
  const context = (body as { context?: unknown }).context ?? {};
  if (typeof context !== "object" || context === null || Array.isArray(context)) return { ok: false, failure: { errorCode: "INVALID_CONTEXT", errorDetails: "context must be a JSON object" } };
  const key = (context as { targetingKey?: unknown }).targetingKey;
  if (key !== undefined && typeof key !== "string") return { ok: false, failure: { errorCode: "INVALID_CONTEXT", errorDetails: "context.targetingKey must be a string" } };
  return { ok: true, context: context as EvaluationContext };
}

function toOfrep(r: EvaluationResult): OfrepSuccess | OfrepFailure {
  if (r.errorCode !== undefined) return { key: r.key, errorCode: r.errorCode, errorDetails: r.errorMessage ?? r.errorCode };
  return { key: r.key, value: r.value, reason: r.reason, ...(r.variant !== undefined ? { variant: r.variant } : {}), ...(r.metadata ? { metadata: r.metadata } : {}) };
}

/** POST /ofrep/v1/evaluate/flags/{key}. */
export function ofrepEvaluate(snap: FlagSnapshot, key: string, body: unknown): OfrepAnswer {
  const parsed = ofrepContext(body);
  if (!parsed.ok) return { status: 400, body: { key, ...parsed.failure } };
  const result = toOfrep(snap.compiled.evaluate(key, parsed.context));
  if ("errorCode" in result) return { status: result.errorCode === "FLAG_NOT_FOUND" ? 404 : 400, body: result };
  return { status: 200, body: result };
}

/** Whether a rule reads the time: `$flagd.timestamp` (or all of `$flagd`), or a `var` whose path is computed and so might. */
export function readsTime(rule: unknown): boolean {
  if (Array.isArray(rule)) return rule.some(readsTime);
  if (rule === null || typeof rule !== "object") return false;
  for (const [op, arg] of Object.entries(rule)) {
    if (op === "var") {
      const path: unknown = Array.isArray(arg) ? arg[0] : arg;
      if (typeof path === "string" ? path === "$flagd" || path === "$flagd.timestamp" : typeof path === "object" && path !== null) return true;
    }
    if (readsTime(arg)) return true;
  }
  return false;
}

/** Per compiled set: whether any flag's targeting (or shared evaluator) reads the time. */
const timeDependent = new WeakMap<object, boolean>();

function dependsOnTime(snap: FlagSnapshot): boolean {
  let known = timeDependent.get(snap.compiled);
  if (known === undefined) {
    known = Object.values(snap.set.flags).some((f) => readsTime(f.targeting)) || readsTime(snap.set.$evaluators ?? {});
    timeDependent.set(snap.compiled, known);
  }
  return known;
}

/**
 * POST /ofrep/v1/evaluate/flags. The ETag covers the flag set's revision and the context, so a
 * client polling with If-None-Match gets 304 until either changes. When a rule reads the time
 * (`$flagd.timestamp`), the same set and context can answer differently later: the ETag then
 * covers the results themselves, so a 304 still means nothing changed.
 */
export function ofrepEvaluateAll(snap: FlagSnapshot, body: unknown, ifNoneMatch: string | undefined): OfrepAnswer {
  const parsed = ofrepContext(body);
  if (!parsed.ok) return { status: 400, body: parsed.failure };
  const results = dependsOnTime(snap) ? snap.compiled.evaluateAll(parsed.context).map(toOfrep) : undefined;
  const hash = createHash("sha256").update(`${snap.etag}\n${JSON.stringify(parsed.context)}`);
  if (results !== undefined) hash.update(`\n${JSON.stringify(results)}`);
  const etag = `"${hash.digest("hex").slice(0, 24)}"`;
  if (ifNoneMatch !== undefined && ifNoneMatch.split(",").some((t) => t.trim() === etag || t.trim() === `W/${etag}`)) return { status: 304, headers: { etag } };
  return { status: 200, body: { flags: results ?? snap.compiled.evaluateAll(parsed.context).map(toOfrep) }, headers: { etag } };
}
