// The api domain: the control-plane HTTP server and its process entry point.
export * from "./control-plane.js";
export * from "./run-control-plane.js";
export * from "./state-files.js";
export { GATEWAY_IDENTITY } from "./access.js";
export { createApiSecurity } from "./api-security.js";
export type { ApiSecurity } from "./api-security.js";
