// Entry point of {{name}}: starts the loop over the job queue and serves its health and job API
// on $PORT. On SIGTERM it reports unready, lets the job in hand finish, then exits.
import { join } from "node:path";
import { createLogger, serve } from "@keelson/sdk";
import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createConsumer } from "./consumer.js";
import { createQueue } from "./queue.js";

const service = process.env.KEELSON_SERVICE ?? "{{name}}";
const logger = createLogger();
try {
  const config = loadConfig(process.env);
  const queue = await createQueue({ dir: join(config.dataDir, "queue") });
  // Jobs a replica that died mid-job left behind go back to the inbox.
  const requeued = await queue.requeueStale(60_000);
  if (requeued > 0) logger.warn("requeued jobs left by a stopped replica", { requeued });
  const consumer = createConsumer({ queue, pollMs: config.pollMs, logger });
  consumer.start();
  await serve({
    handler: createApp({ service, queue, consumer }),
    logger,
    ready: () => consumer.running,
    onShutdown: () => consumer.stop(),
    shutdownTimeoutMs: 25_000,
  });
} catch (err) {
  logger.error(`${service} failed to start`, { err });
  process.exit(1);
}
