// The flags domain: the project's flag set (validated, versioned, audited), OFREP answers and
// the change stream. Evaluation itself is the pure engine in @keelson/protocol.
export * from "./flag-service.js";
export * from "./ofrep.js";
