// The runtime domain: the RuntimeDriver interface and its implementations (process, the
// default; memory, the fake for tests and benchmarks) and the replica log files.
export * from "./runtime-driver.js";
export { createProcessDriver, isPortFree } from "./process-driver.js";
export { isProcessRunning } from "./proc-stat.js";
export type { ProcessDriverOptions } from "./process-driver.js";
export { createDockerDriver } from "./docker-driver.js";
export type { DockerDriverOptions } from "./docker-driver.js";
export { defaultBaseImageTag, ensureBaseImage } from "./docker-base-image.js";
export { connectEngine } from "./docker-engine.js";
export { createMemoryDriver, createMemoryHost } from "./memory-driver.js";
export type { MemoryDriver, MemoryDriverOptions, MemoryHost, MemoryReplicaBehavior } from "./memory-driver.js";
export { readReplicaLogs, lastLogLines, replicaLogPaths, DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_BYTES } from "./replica-logs.js";
export type { LogLine, LogStream, ReadReplicaLogsOptions } from "./replica-logs.js";
export type { RuntimeLog } from "./replica-supervisor.js";
export { CHAOS_KINDS, createChaosController, parseChaosRequest } from "./chaos-controller.js";
export type { ChaosController, ChaosControllerOptions, ChaosExperiment, ChaosInjection, ChaosKind, ChaosRequest } from "./chaos-controller.js";
