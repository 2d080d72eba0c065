// The api domain: the control-plane HTTP server and its process entry point.
export * from "./control-plane.js";
export * from "./run-control-plane.js";
export * from "./state-files.js";
