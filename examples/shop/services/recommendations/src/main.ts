// Entry point of the recommendations service: reads its settings and serves the API on $PORT.
import { createLogger, serve } from "@keelson/sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createModelStore } from "./model-store.js";
import { PAIRINGS } from "./pairings.js";

const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const store = createModelStore({ pairings: PAIRINGS, slots: config.modelSlots, latencyMs: config.modelLatencyMs, queueLimit: config.modelQueueLimit });
  logger.info("model store", { slots: config.modelSlots, latencyMs: config.modelLatencyMs, queueLimit: config.modelQueueLimit });
  await serve({ handler: createApp({ store }), logger });
} catch (err) {
  logger.error("recommendations failed to start", { err });
  process.exit(1);
}
