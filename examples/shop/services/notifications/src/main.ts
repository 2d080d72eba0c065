// Entry point of the notifications service: reads its settings and serves the API on $PORT.
import { createLogger, serve } from "@keelson/sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createOutbox } from "./outbox.js";

const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const app = createApp({ outbox: createOutbox({ dataDir: config.dataDir }), mailFrom: config.mailFrom, listLimit: config.listLimit });
  await serve({ handler: app, logger });
} catch (err) {
  logger.error("notifications failed to start", { err });
  process.exit(1);
}
