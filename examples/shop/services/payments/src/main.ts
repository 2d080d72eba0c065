// Entry point of the payments service: reads its settings and serves the API on $PORT.
import { createLogger, serve } from "@keelson/sdk";
import { createApp } from "./app.js";
import { createChargeStore } from "./charge-store.js";
import { loadConfig } from "./config.js";

const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const store = createChargeStore({ dataDir: config.dataDir });
  await serve({ handler: createApp({ store, declinedCardSuffix: config.declinedCardSuffix }), logger });
} catch (err) {
  logger.error("payments failed to start", { err });
  process.exit(1);
}
