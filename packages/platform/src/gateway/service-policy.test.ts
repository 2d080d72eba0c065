import { DEFAULT_SERVICE_POLICY, ServicePolicySchema } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import { parseManifest } from "../manifest/index.js";
import { routeExtras, servicePolicy } from "./service-policy.js";

function service(extra: string) {
  const text = `project: p\nservices:\n  api:\n    owner: web\n    path: .\n    start: node x.js\n${extra}`;
  return parseManifest(text, "keelson.yaml", { checkPaths: false }).manifest.services.api!;
}

describe("servicePolicy", () => {
  it("gives a service without resilience the defaults", () => {
    expect(servicePolicy(service("").resilience)).toEqual(DEFAULT_SERVICE_POLICY);
  });

  it("resolves every knob from the manifest, in milliseconds, and the result is valid on the wire", () => {
    const policy = servicePolicy(
      service(
        [
          "    resilience:",
          "      timeout: 2s",
          "      perTryTimeout: 5s",
          "      retries: { attempts: 3, budgetPercent: 10, minPerSecond: 1, backoff: 50ms, maxBackoff: 1s }",
          "      circuitBreaker: { failureRatio: 0.25, minRequests: 5, window: 30s, openFor: 2s, halfOpenProbes: 1 }",
          "      outlierEjection: { consecutiveFailures: 2, baseEjectionTime: 1s, maxEjectionTime: 10s, maxEjectedPercent: 30 }",
          "      maxConcurrent: 8",
          "      maxQueue: 4",
          "      queueTimeout: 250ms",
          "      loadBalancer: least-request",
          "",
        ].join("\n"),
      ).resilience,
    );
    expect(policy).toEqual({
      loadBalancer: "least-request",
      timeoutMs: 2000,
      perTryTimeoutMs: 2000, // never longer than the whole request
      retries: { attempts: 3, budgetPercent: 10, minPerSecond: 1, backoffBaseMs: 50, backoffMaxMs: 1000 },
      outlierEjection: { consecutiveFailures: 2, baseEjectionMs: 1000, maxEjectionMs: 10_000, maxEjectedPercent: 30 },
      circuitBreaker: { failureRatio: 0.25, minRequests: 5, windowMs: 30_000, openMs: 2000, halfOpenProbes: 1 },
      bulkhead: { maxConcurrent: 8, maxQueue: 4, queueTimeoutMs: 250 },
    });
    expect(ServicePolicySchema.safeParse(policy).success).toBe(true);
  });

  it("turns the breaker off with circuitBreaker: false and keeps other defaults", () => {
    const policy = servicePolicy(service("    resilience: { circuitBreaker: false, retries: { attempts: 0 } }\n").resilience);
    expect(policy.circuitBreaker).toBeUndefined();
    expect(policy.retries).toEqual({ ...DEFAULT_SERVICE_POLICY.retries, attempts: 0 });
    expect(policy.timeoutMs).toBe(DEFAULT_SERVICE_POLICY.timeoutMs);
  });
});

describe("routeExtras", () => {
  it("maps rate limits (burst defaults to rps rounded up), body size and fallbacks", () => {
    const spec = service(
      [
        "    routes:",
        "      - /plain",
        "      - path: /api",
        "        rateLimit: { rps: 2.5 }",
        "        maxBodySize: 64kb",
        "        fallback: { body: { items: [] } }",
        "      - path: /text",
        "        fallback: { status: 503, body: down for maintenance }",
        "",
      ].join("\n"),
    );
    expect(routeExtras(spec.routes[0]!)).toEqual({});
    expect(routeExtras(spec.routes[1]!)).toEqual({
      rateLimit: { rps: 2.5, burst: 3 },
      maxBodyBytes: 65_536,
      fallback: { status: 200, contentType: "application/json", body: '{"items":[]}' },
    });
    expect(routeExtras(spec.routes[2]!).fallback).toEqual({ status: 503, contentType: "text/plain; charset=utf-8", body: "down for maintenance" });
  });
});
