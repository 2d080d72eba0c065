// @keelson/protocol: what the control plane, gateway, SDK and dashboard agree on.
export * from "./errors.js";
export * from "./routing.js";
export * from "./status.js";
export * from "./events.js";
export * from "./env.js";
export * from "./tracing.js";
export * from "./flags/index.js";
