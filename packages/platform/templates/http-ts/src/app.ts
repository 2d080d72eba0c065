// The HTTP API of {{name}}. The gateway strips the route's prefix, so paths here start at "/".
//   GET /             what this is, and which release answers
//   GET /hello?name=  a greeting; the flag "{{name}}-loud" makes it shout
//   GET /metrics      the service's own counters (Prometheus text format)
// Readiness (/ready) and liveness (/healthz) are answered by serve() from @keelson/sdk.
import { createRouter, defaultTracing, HttpError, json, type Handler, type Tracing } from "@keelson/sdk";
import type { Metrics } from "./metrics.js";

/** The part of an OpenFeature client the app uses (tests pass a fake). */
export interface Flags {
  getBooleanValue(flagKey: string, defaultValue: boolean, context?: { targetingKey?: string }): Promise<boolean>;
}

export interface AppOptions {
  service: string;
  greeting: string;
  flags: Flags;
  metrics: Metrics;
  /** Where spans go; default: the replica's (exported to the control plane when Keelson runs it). */
  tracing?: Tracing;
}

export const LOUD_FLAG = "{{name}}-loud";

/** The greeting for a name; loud shouts it. */
export function greet(greeting: string, name: string, loud: boolean): string {
  const text = `${greeting}, ${name}!`;
  return loud ? text.toUpperCase() : text;
}

export function createApp(options: AppOptions): Handler {
  const tracer = (options.tracing ?? defaultTracing()).tracer;
  const greetings = options.metrics.counter("greetings_total", "Greetings answered, by whether the loud flag was on.");
  return createRouter()
    .get("/", ({ res }) => {
      json(res, 200, { service: options.service, release: process.env.KEELSON_RELEASE ?? null, try: "GET hello?name=Ada" });
    })
    .get("/hello", async ({ res, query }) => {
      const name = query.get("name") ?? "world";
      if (name.length === 0 || name.length > 64) throw new HttpError(400, "VALIDATION", "name must be 1 to 64 characters", { field: "name" });
      const loud = await options.flags.getBooleanValue(LOUD_FLAG, false, { targetingKey: name });
      // A span of its own under the request's span: where the time of a request goes shows in `keelson trace`.
      const message = tracer.startActiveSpan("compose greeting", (span) => {
        span.setAttribute("greeting.loud", loud);
        try {
          return greet(options.greeting, name, loud);
        } finally {
          span.end();
        }
      });
      greetings.inc({ loud: String(loud) });
      json(res, 200, { message, loud });
    })
    .get("/metrics", ({ res }) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      res.end(options.metrics.render());
    }).handle;
}
