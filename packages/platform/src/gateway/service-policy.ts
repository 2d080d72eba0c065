// From the manifest's `resilience:` and route settings to what the gateway enforces:
// every default resolved here, once, so the data plane never guesses.
import { DEFAULT_SERVICE_POLICY, type Route, type ServicePolicy } from "@keelson/protocol";
import type { ResilienceSpecOut, RouteSpecOut } from "../manifest/index.js";

/** The gateway policy of a service; a service without `resilience:` gets DEFAULT_SERVICE_POLICY. */
export function servicePolicy(resilience: ResilienceSpecOut | undefined): ServicePolicy {
  const d = DEFAULT_SERVICE_POLICY;
  if (!resilience) return d;
  const timeoutMs = resilience.timeout ?? d.timeoutMs;
  const r = resilience.retries;
  const o = resilience.outlierEjection;
  const cb = resilience.circuitBreaker;
  const defaultBreaker = d.circuitBreaker as NonNullable<ServicePolicy["circuitBreaker"]>;
  return {
    loadBalancer: resilience.loadBalancer ?? d.loadBalancer,
    timeoutMs,
    perTryTimeoutMs: Math.min(resilience.perTryTimeout ?? timeoutMs, timeoutMs),
    retries: {
      attempts: r?.attempts ?? d.retries.attempts,
      budgetPercent: r?.budgetPercent ?? d.retries.budgetPercent,
      minPerSecond: r?.minPerSecond ?? d.retries.minPerSecond,
      backoffBaseMs: r?.backoff ?? d.retries.backoffBaseMs,
      backoffMaxMs: Math.max(r?.maxBackoff ?? d.retries.backoffMaxMs, r?.backoff ?? 0),
    },
    outlierEjection: {
      consecutiveFailures: o?.consecutiveFailures ?? d.outlierEjection.consecutiveFailures,
      baseEjectionMs: Math.max(1, o?.baseEjectionTime ?? d.outlierEjection.baseEjectionMs),
      maxEjectionMs: Math.max(1, o?.maxEjectionTime ?? d.outlierEjection.maxEjectionMs, o?.baseEjectionTime ?? 0),
      maxEjectedPercent: o?.maxEjectedPercent ?? d.outlierEjection.maxEjectedPercent,
    },
    circuitBreaker:
      cb === false
        ? undefined
        : cb === undefined
          ? defaultBreaker
          : {
              failureRatio: cb.failureRatio,
              minRequests: cb.minRequests ?? defaultBreaker.minRequests,
              windowMs: Math.max(1, cb.window ?? defaultBreaker.windowMs),
              openMs: Math.max(1, cb.openFor ?? defaultBreaker.openMs),
              halfOpenProbes: cb.halfOpenProbes ?? defaultBreaker.halfOpenProbes,
            },
    bulkhead:
      resilience.maxConcurrent === undefined
        ? undefined
        : { maxConcurrent: resilience.maxConcurrent, maxQueue: resilience.maxQueue ?? 0, queueTimeoutMs: Math.max(1, resilience.queueTimeout ?? 1000) },
  };
}

/** The wire extras of a route: rate limit, body limit, fallback, flag. */
export function routeExtras(route: RouteSpecOut): Pick<Route, "rateLimit" | "maxBodyBytes" | "fallback" | "flag"> {
  return {
    ...(route.rateLimit ? { rateLimit: { rps: route.rateLimit.rps, burst: route.rateLimit.burst ?? Math.max(1, Math.ceil(route.rateLimit.rps)) } } : {}),
    ...(route.maxBodySize !== undefined ? { maxBodyBytes: route.maxBodySize } : {}),
    ...(route.fallback ? { fallback: route.fallback } : {}),
    ...(route.flag ? { flag: route.flag } : {}),
  };
}
