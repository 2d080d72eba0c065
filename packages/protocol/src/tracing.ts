// Span attribute names the SDK, the gateway and the control plane agree on, so the trace
// store and the service map can tell who called whom, through which replica and on which try.

/** Attributes Keelson puts on spans besides the OpenTelemetry semantic conventions. */
export const TRACE_ATTRIBUTES = {
  /** The service a client span or a gateway span is calling (the `x-keelson-service` target). */
  TARGET_SERVICE: "keelson.target.service",
  /** The release an upstream try of the gateway went to. */
  TARGET_VERSION: "keelson.target.version",
  /** The replica id an upstream try of the gateway went to. */
  TARGET_REPLICA: "keelson.target.replica",
  /** Which try of the gateway this is: 0 for the first, 1 for the first retry, and so on. */
  ATTEMPT: "keelson.attempt",
  /** The calling service as named by the `x-keelson-caller` header. */
  CALLER: "keelson.caller",
} as const;

/** The `service.name` the gateway reports its spans under. */
export const GATEWAY_SERVICE_NAME = "keelson-gateway";
