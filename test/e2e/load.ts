// Open-loop HTTP load for the chaos suite: requests start at a fixed rate whatever the answers
// do (as real users arrive), each recorded with its start time, status and latency. Every run
// is bounded in count and time, and talks only to the loopback URL it is given.
import { Agent, request } from "node:http";

export interface Sample {
  /** Label of the target (e.g. the path). */
  target: string;
  /** Start, ms since the load began. */
  at: number;
  /** 0 when the request failed without an answer. */
  status: number;
  latencyMs: number;
  error?: string;
  body?: string;
}

export interface LoadTarget {
  label: string;
  path: string;
  /** Share of the requests (weights are normalized). */
  weight: number;
  /** Keep the body of answers (to check a fallback was served). */
  keepBody?: boolean;
}

export interface Load {
  /** Changes the rate from now on (requests per second). */
  setRate(rps: number): void;
  /** Samples so far. */
  samples(): Sample[];
  /** Stops starting requests and waits for those in flight (at most `graceMs`). */
  stop(graceMs?: number): Promise<Sample[]>;
  /** Time since the load began, ms. */
  elapsed(): number;
}

/**
 * Starts load against `base` (http://127.0.0.1:port). Never more than `maxRequests` requests
 * and never longer than `maxMs`, whatever the caller does.
 */
export function startLoad(options: { base: string; targets: LoadTarget[]; rps: number; maxMs: number; maxRequests?: number; timeoutMs?: number }): Load {
  const base = new URL(options.base);
  if (!["127.0.0.1", "localhost", "[::1]"].includes(base.hostname)) throw new Error(`load only talks to loopback, not ${base.hostname}`);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const total = options.targets.reduce((s, t) => s + t.weight, 0);
  const started = performance.now();
  const samples: Sample[] = [];
  const inflight = new Set<Promise<void>>();
  const maxRequests = options.maxRequests ?? 200_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let rps = options.rps;
  let sent = 0;
  let stopped = false;
  let next = 0;

  function pick(): LoadTarget {
    let r = Math.random() * total;
    for (const t of options.targets) {
      r -= t.weight;
      if (r < 0) return t;
    }
    return options.targets[options.targets.length - 1] as LoadTarget;
  }

  function fire(): void {
    const target = pick();
    const at = performance.now() - started;
    sent++;
    const done = new Promise<void>((resolveDone) => {
      const finish = (status: number, error?: string, body?: string) => {
        samples.push({ target: target.label, at, status, latencyMs: performance.now() - started - at, ...(error ? { error } : {}), ...(body !== undefined ? { body } : {}) });
        resolveDone();
      };
      const req = request({ host: base.hostname.replace(/^\[|\]$/g, ""), port: base.port, path: target.path, agent, timeout: timeoutMs, headers: { "user-agent": "keelson-chaos-load" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          if (target.keepBody) chunks.push(c);
        });
        res.on("end", () => finish(res.statusCode ?? 0, undefined, target.keepBody ? Buffer.concat(chunks).toString("utf8") : undefined));
        res.on("error", (err) => finish(0, err.message));
      });
      req.on("timeout", () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on("error", (err) => finish(0, err.message));
      req.end();
    });
    inflight.add(done);
    void done.finally(() => inflight.delete(done));
  }

  // A 10 ms tick starts however many requests the rate owes since the last tick.
  const timer = setInterval(() => {
    const now = performance.now() - started;
    if (stopped || now > options.maxMs || sent >= maxRequests) {
      clearInterval(timer);
      stopped = true;
      return;
    }
    if (next === 0) next = now;
    while (next <= now && sent < maxRequests) {
      fire();
      next += 1000 / rps;
    }
  }, 10);

  return {
    setRate(value) {
      rps = value;
    },
    samples: () => samples,
    elapsed: () => performance.now() - started,
    async stop(graceMs = 15_000) {
      stopped = true;
      clearInterval(timer);
      await Promise.race([Promise.all([...inflight]), new Promise((r) => setTimeout(r, graceMs))]);
      agent.destroy();
      return samples;
    },
  };
}

/** A failed idempotent request: no answer, or a 5xx. */
export const failed = (s: Sample): boolean => s.status === 0 || s.status >= 500;

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** Requests, failures, success ratio and p99 of samples, by target. */
export function summarize(samples: Sample[]): Record<string, { requests: number; failed: number; success: number; p50: number; p99: number }> {
  const by = new Map<string, Sample[]>();
  for (const s of samples) {
    const list = by.get(s.target);
    if (list) list.push(s);
    else by.set(s.target, [s]);
  }
  const out: Record<string, { requests: number; failed: number; success: number; p50: number; p99: number }> = {};
  for (const [target, list] of by) {
    const bad = list.filter(failed).length;
    const lat = list.map((s) => s.latencyMs);
    out[target] = { requests: list.length, failed: bad, success: list.length === 0 ? 1 : (list.length - bad) / list.length, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
  }
  return out;
}
