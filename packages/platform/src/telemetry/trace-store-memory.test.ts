// Runs the TraceStore conformance suite against the memory store.
import { createMemoryTraceStore } from "./trace-store-memory.js";
import { T0_MS, traceStoreConformance } from "./trace-store.conformance.js";

traceStoreConformance("memory", async (options = {}) => createMemoryTraceStore({ ...options, now: options.now ?? (() => T0_MS) }));
