// Entry point of {{name}}: reads its settings, connects feature flags and serves on $PORT with
// readiness, liveness, traces and a graceful shutdown on SIGTERM (serve() from @keelson/sdk).
import { createLogger, serve } from "@keelson/sdk";
import { KeelsonFlagProvider } from "@keelson/sdk/flags";
import { OpenFeature } from "@openfeature/server-sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createMetrics } from "./metrics.js";

const service = process.env.KEELSON_SERVICE ?? "{{name}}";
const logger = createLogger();
try {
  const config = loadConfig(process.env);
  // Flags from the control plane when Keelson runs the service; without one, every flag gives its default.
  if (process.env.KEELSON_FLAGS_URL) OpenFeature.setProvider(new KeelsonFlagProvider());
  await serve({
    handler: createApp({ service, greeting: config.greeting, flags: OpenFeature.getClient(service), metrics: createMetrics() }),
    logger,
    // In-flight requests finish first; then the flag provider sends what it still holds.
    onShutdown: () => OpenFeature.close(),
  });
} catch (err) {
  logger.error(`${service} failed to start`, { err });
  process.exit(1);
}
