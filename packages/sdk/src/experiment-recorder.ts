// Experiment events on their way from a service to the control plane: exposures and conversions
// are queued in memory (bounded; the oldest go first when it is full) and POSTed in batches to
// /v1/experiments/events, retried with backoff while the control plane is away. Recording is a
// push onto a ring buffer: it never waits, never throws and never grows without bound.
// Evaluations of any flag are counted per flag and ride along with the next batch.
import { EXPERIMENT_LIMITS, type EvaluationCounts, type ExperimentEvent, type ExperimentEventBatch } from "@keelson/protocol";
import { defaultIdentity } from "./identity.js";

export interface ExperimentRecorderOptions {
  /** Base URL of the control plane. */
  url: string;
  fetch?: typeof globalThis.fetch;
  /** Send queued events about this often (default 1 s; each wait is spread by ±25% so replicas do not send in step). */
  flushMs?: number;
  /** Send as soon as this many are queued, and at most this many per request (default 500). */
  batchSize?: number;
  /** Events kept while they cannot be sent; beyond, the oldest are dropped and counted (default 10,000). */
  maxQueued?: number;
  /** The longest wait between retries; waits double from `flushMs` (default 30 s). */
  maxBackoffMs?: number;
  /** Give up on one request after this long (default 10 s). */
  requestTimeoutMs?: number;
  log?: { warn(msg: string, fields?: Record<string, unknown>): void };
  /**
   * The `authorization` header of each request, asked anew per request (the identity token is
   * rotated); none when it gives undefined. Defaults to defaultIdentity()'s.
   */
  authorization?: () => string | undefined;
}

export interface ExperimentRecorderStats {
  queued: number;
  /** Dropped because the queue was full, or refused by the control plane. */
  dropped: number;
  sent: number;
}

export interface ExperimentRecorder {
  /** `targetingKey` was served `variant` of the experiment flag `flag`. Repeats are sent once. */
  exposure(flag: string, variant: string, targetingKey: string): void;
  conversion(event: string, targetingKey: string, value?: number): void;
  /** One evaluation of `flag` (any type), counted and sent with the next batch. */
  evaluation(flag: string): void;
  stats(): ExperimentRecorderStats;
  /** Sends what is queued (up to `timeoutMs`, default 2 s) and stops recording. */
  close(timeoutMs?: number): Promise<void>;
}

/** Exposures remembered per flag to skip repeats; forgotten all at once when full. */
const RECENT_EXPOSURES = 50_000;

const fits = (s: string, max: number) => s.length > 0 && s.length <= max;

/**
 * A batching sender of experiment events.
 *
 * @example
 * const recorder = createExperimentRecorder({ url: "http://127.0.0.1:7070" });
 * recorder.exposure("new-checkout", "on", "user-42");
 * recorder.conversion("purchase", "user-42", 31.5);
 * await recorder.close();
 */
export function createExperimentRecorder(options: ExperimentRecorderOptions): ExperimentRecorder {
  const endpoint = `${options.url.replace(/\/+$/, "")}/v1/experiments/events`;
  const doFetch = options.fetch ?? globalThis.fetch;
  const flushMs = options.flushMs ?? 1_000;
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 500, EXPERIMENT_LIMITS.maxEventsPerRequest));
  const capacity = Math.max(batchSize, options.maxQueued ?? 10_000);
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const log = options.log;
  const authorization = options.authorization ?? (() => defaultIdentity().authorization());

  // A ring buffer addressed by ever-growing sequence numbers: [head, tail) are queued.
  const ring = new Array<ExperimentEvent | undefined>(capacity);
  let head = 0;
  let tail = 0;
  let dropped = 0;
  let sent = 0;
  /** flag → targetingKey → variant last queued. */
  const recent = new Map<string, Map<string, string>>();
  let timer: NodeJS.Timeout | undefined;
  let inflight: Promise<boolean> | undefined;
  let backoff = 0;
  let warned = false;
  let closed = false;
  /** flag → evaluations not sent yet. */
  const counts = new Map<string, number>();
  /** Off once a control plane that predates evaluation counts refused them. */
  let counting = true;

  function push(event: ExperimentEvent): void {
    if (closed) return;
    if (tail - head === capacity) {
      ring[head % capacity] = undefined;
      head++;
      dropped++;
    }
    ring[tail % capacity] = event;
    tail++;
    if (tail - head >= batchSize && backoff === 0 && inflight === undefined) schedule(0);
    else if (timer === undefined && inflight === undefined) schedule(spread(backoff || flushMs));
  }

  /**
   * A wait of about `ms`, spread by ±25%: replicas started together (or woken by the same flag
   * change) would otherwise all send to the control plane in the same millisecond.
   */
  function spread(ms: number): number {
    return ms <= 0 ? 0 : Math.round(ms * (0.75 + Math.random() * 0.5));
  }

  function schedule(delay: number): void {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void sendBatch();
    }, delay);
    timer.unref();
  }

  function warnOnce(msg: string, fields: Record<string, unknown>): void {
    if (warned) return;
    warned = true;
    try {
      log?.warn(msg, fields);
    } catch {
      // A broken logger must not break the service either.
    }
  }

  /** One POST; status 0 when it got no answer; the answer's text only for a 400 about evaluations. */
  async function post(batch: ExperimentEventBatch): Promise<{ status: number; answer: string }> {
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const auth = authorization();
      if (auth !== undefined) headers.authorization = auth;
      const res = await doFetch(endpoint, { method: "POST", headers, body: JSON.stringify(batch), signal: AbortSignal.timeout(requestTimeoutMs) });
      if (res.status === 400 && batch.evaluations) return { status: 400, answer: await res.text().catch(() => "") };
      await res.body?.cancel().catch(() => undefined);
      return { status: res.status, answer: "" };
    } catch (err) {
      warnOnce("experiment events could not be sent; keeping them and retrying", { endpoint, err: err instanceof Error ? err.message : String(err) });
      return { status: 0, answer: "" };
    }
  }

  /** One POST of the oldest events; true when it left the queue (sent or refused for good). */
  function sendBatch(): Promise<boolean> {
    if (inflight) return inflight;
    if (tail === head && counts.size === 0) return Promise.resolve(true);
    const end = Math.min(tail, head + batchSize);
    const events: ExperimentEvent[] = [];
    for (let i = head; i < end; i++) events.push(ring[i % capacity] as ExperimentEvent);
    let evaluations: EvaluationCounts | undefined;
    if (counts.size > 0) {
      evaluations = Object.fromEntries(counts);
      counts.clear();
    }
    const run = (async () => {
      const first = await post(evaluations ? { events, evaluations } : { events });
      let status = first.status;
      if (status === 400 && evaluations && first.answer.includes("evaluations")) {
        // A control plane older than evaluation counts: stop counting, send the events without them.
        counting = false;
        counts.clear();
        evaluations = undefined;
        try {
          log?.warn("the control plane does not take flag evaluation counts (an older version?); no longer sending them", { endpoint });
        } catch {
          // A broken logger must not break the service either.
        }
        ({ status } = events.length > 0 ? await post({ events }) : { status: 204 });
      }
      const gone = (status >= 200 && status < 300) || (status >= 400 && status < 500 && status !== 408 && status !== 429);
      if (!gone && evaluations && counting) {
        // Kept for the next batch, added to what was counted meanwhile.
        for (const flag of Object.keys(evaluations)) counts.set(flag, (counts.get(flag) ?? 0) + (evaluations[flag] as number));
      }
      // Events dropped meanwhile as overflow were part of this batch: never move back.
      const leaving = Math.max(0, end - head);
      if (gone) {
        for (let i = head; i < end; i++) ring[i % capacity] = undefined;
        head = Math.max(head, end);
        if (status < 300) {
          sent += events.length;
          warned = false;
        } else {
          // The control plane refuses the batch (a version mismatch?): retrying would not help.
          dropped += leaving;
          warnOnce("the control plane refused a batch of experiment events; dropped it", { endpoint, status, events: events.length });
        }
        backoff = 0;
      } else {
        if (status !== 0) warnOnce("experiment events could not be sent; keeping them and retrying", { endpoint, status });
        backoff = backoff === 0 ? flushMs : Math.min(maxBackoffMs, backoff * 2);
      }
      return gone;
    })();
    inflight = run;
    void run.finally(() => {
      inflight = undefined;
      if (closed || (tail === head && counts.size === 0)) return;
      schedule(spread(backoff > 0 ? backoff : tail - head >= batchSize ? 0 : flushMs));
    });
    return run;
  }

  return {
    exposure(flag, variant, targetingKey) {
      if (!fits(flag, EXPERIMENT_LIMITS.maxNameLength) || !fits(variant, EXPERIMENT_LIMITS.maxNameLength) || !fits(targetingKey, EXPERIMENT_LIMITS.maxTargetingKeyLength)) return;
      let seen = recent.get(flag);
      if (seen === undefined) recent.set(flag, (seen = new Map()));
      else if (seen.get(targetingKey) === variant) return;
      if (seen.size >= RECENT_EXPOSURES) seen.clear();
      seen.set(targetingKey, variant);
      push({ type: "exposure", flag, variant, targetingKey });
    },
    conversion(event, targetingKey, value) {
      if (!fits(event, EXPERIMENT_LIMITS.maxNameLength) || !fits(targetingKey, EXPERIMENT_LIMITS.maxTargetingKeyLength)) return;
      push(Number.isFinite(value) ? { type: "conversion", event, targetingKey, value } : { type: "conversion", event, targetingKey });
    },
    evaluation(flag) {
      if (closed || !counting) return;
      const n = counts.get(flag);
      if (n !== undefined) counts.set(flag, n + 1);
      else if (counts.size < EXPERIMENT_LIMITS.maxEvaluatedFlagsPerRequest && fits(flag, EXPERIMENT_LIMITS.maxNameLength)) counts.set(flag, 1);
      else return;
      if (timer === undefined && inflight === undefined) schedule(spread(backoff || flushMs));
    },
    stats: () => ({ queued: tail - head, dropped, sent }),
    async close(timeoutMs = 2_000) {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      const deadline = Date.now() + timeoutMs;
      const stop = new Promise<false>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
      while ((tail > head || counts.size > 0) && Date.now() < deadline) {
        if (!(await Promise.race([inflight ?? sendBatch(), stop]))) break;
      }
    },
  };
}
