// Entry point of the orders service: reads its settings, wires the store and the client
// for calls through the gateway, and serves the API on $PORT.
import { createClient, createLogger, serve } from "@keelson/sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createOrderStore } from "./order-store.js";

const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const app = createApp({
    store: createOrderStore({ dataDir: config.dataDir }),
    client: createClient({ timeoutMs: config.callTimeoutMs, logger }),
    logger,
    maxLines: config.maxLines,
  });
  await serve({ handler: app, logger });
} catch (err) {
  logger.error("orders failed to start", { err });
  process.exit(1);
}
