// @keelson/platform: the control plane, gateway, runtime drivers and the keelson CLI.
export * from "./manifest/index.js";
export * from "./store/index.js";
export * from "./runtime/index.js";
export * from "./gateway/index.js";
export * from "./delivery/index.js";
export * from "./autoscale/index.js";
export * from "./api/index.js";
export { main } from "./cli/index.js";
