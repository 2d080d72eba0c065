// Entry point of the inventory service: reads its settings and serves the API on $PORT.
import { createLogger, serve } from "@keelson/sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { SEED_STOCK } from "./seed.js";
import { createStockStore } from "./stock-store.js";

const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const store = createStockStore({ dataDir: config.dataDir, seed: SEED_STOCK });
  await serve({ handler: createApp({ store, lowStockThreshold: config.lowStockThreshold }), logger });
} catch (err) {
  logger.error("inventory failed to start", { err });
  process.exit(1);
}
