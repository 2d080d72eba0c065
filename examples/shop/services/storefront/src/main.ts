// Entry point of the storefront: reads its settings, wires the client for calls through
// the gateway, and serves the shop on $PORT.
import { createClient, createLogger, serve } from "@keelson/sdk";
import { KeelsonFlagProvider } from "@keelson/sdk/flags";
import { OpenFeature } from "@openfeature/server-sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";

const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const client = createClient({ timeoutMs: config.callTimeoutMs, logger });
  // Flags from the control plane when Keelson runs us; the page never waits for them (until
  // the first snapshot, and without a control plane, every flag gives its default).
  if (process.env.KEELSON_FLAGS_URL) OpenFeature.setProvider(new KeelsonFlagProvider());
  await serve({
    handler: createApp({
      client,
      logger,
      shopName: config.shopName,
      flags: OpenFeature.getClient("storefront"),
      recommendationsTimeoutMs: config.recommendationsTimeoutMs,
    }),
    logger,
    // Sends the experiment events still queued.
    onShutdown: () => OpenFeature.close(),
  });
} catch (err) {
  logger.error("storefront failed to start", { err });
  process.exit(1);
}
