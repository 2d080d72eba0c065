// The worker's loop: claim a job, do it inside a trace span, record the outcome, repeat; sleep
// `pollMs` when the queue is empty. stop() lets the job in hand finish. healthy() says whether
// the loop still turns (or its job has not run too long), which the liveness probe reports.
import { defaultTracing, runWithRequestContext, type Logger, type Tracing } from "@keelson/sdk";
import type { Queue } from "./queue.js";
import { work, type Job } from "./work.js";

export interface ConsumerStats {
  processed: number;
  failed: number;
  /** When the loop last turned (ISO time). */
  lastTickAt: string | undefined;
}

export interface Consumer {
  start(): void;
  /** Finishes the job in hand, then stops. */
  stop(): Promise<void>;
  readonly running: boolean;
  /** Whether the loop turned within the last few poll intervals. */
  healthy(): boolean;
  stats(): ConsumerStats;
}

export interface ConsumerOptions {
  queue: Queue;
  pollMs: number;
  logger: Logger;
  /** A job running longer than this makes the worker unhealthy, so Keelson restarts it (default 5 minutes). */
  maxJobMs?: number;
  /** Does one job (default: work() from work.ts). */
  handle?: (job: Job) => unknown;
  tracing?: Tracing;
  now?: () => number;
}

export function createConsumer(options: ConsumerOptions): Consumer {
  const { queue, pollMs, logger } = options;
  const handle = options.handle ?? work;
  const now = options.now ?? Date.now;
  const maxJobMs = options.maxJobMs ?? 300_000;
  const tracer = (options.tracing ?? defaultTracing()).tracer;
  const stats: ConsumerStats = { processed: 0, failed: 0, lastTickAt: undefined };
  let running = false;
  let lastTick = 0;
  let busySince: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let loop: Promise<void> = Promise.resolve();

  async function runJob(job: Job): Promise<void> {
    // Each job is a request of its own: its id in the log lines, its own trace.
    await runWithRequestContext({ requestId: job.id, caller: undefined }, () =>
      tracer.startActiveSpan("job", async (span) => {
        span.setAttribute("job.id", job.id);
        try {
          const result = await handle(job);
          await queue.finish(job, { result });
          stats.processed++;
          logger.info("job done", { job: job.id });
        } catch (err) {
          stats.failed++;
          span.recordException(err as Error);
          await queue.finish(job, { error: err instanceof Error ? err.message : String(err) });
          logger.warn("job failed", { job: job.id, err });
        } finally {
          span.end();
        }
      }),
    );
  }

  async function tick(): Promise<void> {
    lastTick = now();
    stats.lastTickAt = new Date(lastTick).toISOString();
    try {
      while (running) {
        const job = await queue.claim();
        if (job === undefined) break;
        // A claimed job is always done, even when stop() came meanwhile: it is this replica's now.
        busySince = now();
        await runJob(job);
        busySince = undefined;
        lastTick = now();
      }
    } catch (err) {
      busySince = undefined;
      logger.error("the queue failed; trying again", { err });
    }
    if (running) timer = setTimeout(() => (loop = tick()), pollMs);
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = tick();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      await loop;
    },
    get running() {
      return running;
    },
    healthy() {
      if (!running) return false;
      // A job may take long; longer than maxJobMs means it hangs.
      if (busySince !== undefined) return now() - busySince < maxJobMs;
      return now() - lastTick < Math.max(5 * pollMs, 5_000);
    },
    stats: () => ({ ...stats }),
  };
}
