// @keelson/sdk: what a service needs to run well on Keelson: serve() with health probes and
// graceful shutdown, a small router, calls to other services through the gateway, JSON logs,
// and OpenTelemetry traces of both.
export { serve } from "./serve.js";
export type { Handler, ServeOptions, ServiceHandle } from "./serve.js";
export { createRouter } from "./router.js";
export type { RouteContext, RouteHandler, RouteParams, Router, RouterOptions } from "./router.js";
export { HttpError, json, sendHttpError } from "./respond.js";
export type { ServiceErrorBody } from "./respond.js";
export { createClient, ServiceCallError } from "./client.js";
export { createIdentity, defaultIdentity } from "./identity.js";
export type { Identity, IdentityOptions } from "./identity.js";
export type { CallInit, ClientOptions, ServiceClient } from "./client.js";
export { createLogger } from "./logger.js";
export type { LogFields, LogLevel, LogThreshold, Logger, LoggerOptions } from "./logger.js";
export { activeSpan, activeSpanContext, currentRequest, runWithRequestContext } from "./request-context.js";
export type { RequestContext } from "./request-context.js";
export { startGatewayStub } from "./gateway-stub.js";
export type { GatewayStub, RecordedCall } from "./gateway-stub.js";
export { createTracing, defaultTracing } from "./tracing.js";
export type { Tracing, TracingOptions, TracingStats } from "./tracing.js";
