// Sends accepted OTLP payloads on to an outside backend (Jaeger, Tempo, a collector) in the
// background: a bounded queue, a few concurrent sends, bounded retries with backoff. It never
// blocks or fails ingest: when the backend is slow or down, payloads are dropped and counted.
import { silentTelemetryLog } from "./telemetry-log.js";
import type { TelemetryLog } from "./telemetry-log.js";

export interface OtlpForwarderOptions {
  /** The backend's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces. */
  url: string;
  /** Sent with every request (an auth token for a hosted backend). */
  headers?: Record<string, string>;
  /** Retries after the first try, for network errors, timeouts, 429, 502, 503 and 504; default 3. */
  maxRetries?: number;
  /** First backoff; doubles each retry (with jitter), capped at 10 s; default 500 ms. */
  retryBaseMs?: number;
  /** Per try; default 5000 ms. */
  timeoutMs?: number;
  /** Payload bytes waiting to be sent before new ones are dropped; default 16 MiB. */
  maxQueueBytes?: number;
  /** Requests in flight at once; default 2. */
  concurrency?: number;
  log?: TelemetryLog;
  /** Injectable for tests. */
  fetch?: typeof fetch;
  /** Jitter source in [0, 1); injectable so tests are deterministic. */
  random?: () => number;
}

/** A payload as received: forwarded byte for byte with its content type and encoding. */
export interface ForwardPayload {
  body: Uint8Array;
  contentType: string;
  contentEncoding: string | undefined;
  spans: number;
}

export interface OtlpForwarderStats {
  /** Payloads the backend accepted. */
  forwarded: number;
  forwardedSpans: number;
  /** Payloads given up on: queue full, retries exhausted, a non-retryable answer, or closed. */
  dropped: number;
  droppedSpans: number;
  retries: number;
  queued: number;
  queuedBytes: number;
  inFlight: number;
}

export interface OtlpForwarder {
  /** Queues a payload and returns at once; false when the queue is full (the payload is dropped). */
  enqueue(payload: ForwardPayload): boolean;
  stats(): OtlpForwarderStats;
  /** Resolves true when nothing is queued or in flight, false if that takes longer than `timeoutMs`. */
  drain(timeoutMs?: number): Promise<boolean>;
  /** Stops: queued payloads are dropped, retries waiting are abandoned. */
  close(): Promise<void>;
}

const RETRYABLE = new Set([429, 502, 503, 504]);
const MAX_BACKOFF_MS = 10_000;

/**
 * Creates a forwarder. Failures are logged once per streak of failures, not once per payload.
 *
 * @example
 * const forwarder = createOtlpForwarder({ url: "http://127.0.0.1:4318/v1/traces", log });
 * forwarder.enqueue({ body, contentType: "application/x-protobuf", contentEncoding: "gzip", spans: 512 });
 */
export function createOtlpForwarder(options: OtlpForwarderOptions): OtlpForwarder {
  const url = new URL(options.url).href;
  const maxRetries = options.maxRetries ?? 3;
  const retryBaseMs = options.retryBaseMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxQueueBytes = options.maxQueueBytes ?? 16 * 1024 * 1024;
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const log = options.log ?? silentTelemetryLog;
  const doFetch = options.fetch ?? ((input: string | URL | Request, init?: RequestInit) => fetch(input, init));
  const random = options.random ?? Math.random;

  const queue: ForwardPayload[] = [];
  const stats: OtlpForwarderStats = { forwarded: 0, forwardedSpans: 0, dropped: 0, droppedSpans: 0, retries: 0, queued: 0, queuedBytes: 0, inFlight: 0 };
  let closed = false;
  let failing = false;
  const idleWaiters = new Set<() => void>();
  const sleepers = new Set<() => void>();

  const drop = (p: ForwardPayload, reason: string, detail: Record<string, unknown> = {}) => {
    stats.dropped++;
    stats.droppedSpans += p.spans;
    if (!failing && !closed) log.warn({ url, reason, ...detail }, "forwarding spans failed; dropping payloads until the backend takes them again");
    failing = true;
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      const done = () => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      sleepers.add(done);
    });

  const backoff = (retry: number, retryAfter: string | null): number => {
    const seconds = retryAfter === null ? Number.NaN : Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_BACKOFF_MS);
    const base = Math.min(retryBaseMs * 2 ** retry, MAX_BACKOFF_MS);
    // Full jitter halves the chance that several control planes retry in step.
    return base / 2 + (base / 2) * random();
  };

  const send = async (p: ForwardPayload): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      if (closed) return drop(p, "closed");
      let status: number | undefined;
      let retryAfter: string | null = null;
      let error: string | undefined;
      try {
        const headers: Record<string, string> = { ...options.headers, "content-type": p.contentType };
        if (p.contentEncoding !== undefined) headers["content-encoding"] = p.contentEncoding;
        const res = await doFetch(url, { method: "POST", headers, body: p.body, signal: AbortSignal.timeout(timeoutMs) });
        status = res.status;
        retryAfter = res.headers.get("retry-after");
        // The body must be read or cancelled, or the connection is not reused.
        await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      }
      if (status !== undefined && status >= 200 && status < 300) {
        stats.forwarded++;
        stats.forwardedSpans += p.spans;
        if (failing) log.info({ url }, "forwarding spans works again");
        failing = false;
        return;
      }
      const retryable = status === undefined || RETRYABLE.has(status);
      if (!retryable) return drop(p, `the backend answered ${status}`, { status });
      if (attempt >= maxRetries) return drop(p, error ?? `the backend answered ${status}`, { status, tries: attempt + 1 });
      stats.retries++;
      await sleep(backoff(attempt, retryAfter));
    }
  };

  const pump = () => {
    while (!closed && stats.inFlight < concurrency && queue.length > 0) {
      const p = queue.shift() as ForwardPayload;
      stats.queued--;
      stats.queuedBytes -= p.body.byteLength;
      stats.inFlight++;
      void send(p).finally(() => {
        stats.inFlight--;
        pump();
        if (stats.inFlight === 0 && queue.length === 0) for (const w of idleWaiters) w();
      });
    }
  };

  return {
    enqueue(p) {
      if (closed || stats.queuedBytes + p.body.byteLength > maxQueueBytes) {
        drop(p, closed ? "closed" : "queue full", { maxQueueBytes });
        return false;
      }
      queue.push(p);
      stats.queued++;
      stats.queuedBytes += p.body.byteLength;
      pump();
      return true;
    },
    stats: () => ({ ...stats }),
    drain(ms = 10_000) {
      if (stats.inFlight === 0 && queue.length === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const finish = (ok: boolean) => {
          clearTimeout(timer);
          idleWaiters.delete(onIdle);
          resolve(ok);
        };
        const onIdle = () => finish(true);
        const timer = setTimeout(() => finish(false), ms);
        timer.unref();
        idleWaiters.add(onIdle);
      });
    },
    async close() {
      closed = true;
      for (const p of queue.splice(0)) drop(p, "closed");
      stats.queued = 0;
      stats.queuedBytes = 0;
      for (const wake of [...sleepers]) wake();
    },
  };
}
