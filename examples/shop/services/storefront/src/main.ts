// Entry point of the storefront: reads its settings, wires the client for calls through
// the gateway, and serves the shop on $PORT.
import { createClient, createLogger, serve } from "@keelson/sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";

const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const client = createClient({ timeoutMs: config.callTimeoutMs, logger });
  await serve({ handler: createApp({ client, logger, shopName: config.shopName }), logger });
} catch (err) {
  logger.error("storefront failed to start", { err });
  process.exit(1);
}
