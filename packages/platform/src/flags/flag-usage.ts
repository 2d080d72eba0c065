// How much each flag is used: evaluations counted in memory (from the SDK's batches, OFREP, the
// evaluate endpoint, and the requests gateways routed by a flag, read from the metric store) and
// folded into one store setting, `flags-usage.<project>`, at most every few seconds, with each
// flag's last evaluation time and a running total.
import type { Store } from "../store/index.js";
import { DEFAULT_RETENTION, GATEWAY_FLAG_REQUESTS, type MetricQuery } from "../telemetry/index.js";
import type { FlagService } from "./flag-service.js";

/** What is known of one flag's use. */
export interface FlagUsageEntry {
  /** When the flag was last evaluated. */
  lastEvaluatedAt: string;
  /** Evaluations counted since counting began. */
  evaluations: number;
}

/** GET /v1/flags/usage. */
export interface FlagUsageView {
  /** When this control plane began counting evaluations: older flags were not seen before. */
  since: string;
  flags: Record<string, FlagUsageEntry>;
}

export interface FlagUsage {
  /** Counts evaluations of `flag` in memory; never waits and never throws. */
  record(flag: string, count?: number): void;
  /** Counts a batch of evaluations (flag → count); returns how many flags were taken. */
  recordAll(counts: Readonly<Record<string, number>>): number;
  /** The usage with everything counted so far (written first). */
  read(): Promise<FlagUsageView>;
  /** Writes what was counted since the last write. */
  flush(): Promise<void>;
  /** Writes what is pending and stops the flush timer. */
  close(): Promise<void>;
}

export interface FlagUsageOptions {
  store: Store;
  project: string;
  /** Only evaluations of flags in the current set are kept. */
  flags: FlagService;
  now?: () => Date;
  /** Write counted evaluations at most this often (default 5 s). */
  flushMs?: number;
  /** Called when a timed write fails (the counts are kept for the next one). */
  onError?: (err: unknown) => void;
  /**
   * The gateways' flag routing as scraped into the control plane's metric store: every request a
   * route's flag decided counts as an evaluation of that flag, so a flag only gateways evaluate is
   * in use too. Its clock must be `now`'s.
   */
  gateway?: GatewayFlagRequests;
}

/** Where the gateways' per-variant flag requests are read. */
export interface GatewayFlagRequests {
  metrics: Pick<MetricQuery, "increase">;
  /** The metric store's finest step (default 10 s): requests are taken a whole step at a time. */
  stepMs?: number;
  /** How often they are taken (default every minute, and before every read). */
  everyMs?: number;
}

/** Flags counted between two writes; evaluations of further (unknown) keys are not counted. */
const MAX_PENDING_FLAGS = 10_000;

/**
 * The evaluation counts of one project's flags.
 *
 * @example
 * const usage = createFlagUsage({ store, project: "shop", flags });
 * usage.record("new-checkout");
 * (await usage.read()).flags["new-checkout"]?.evaluations; // 1
 */
export function createFlagUsage(options: FlagUsageOptions): FlagUsage {
  const { store, project, flags } = options;
  const now = options.now ?? (() => new Date());
  const flushMs = options.flushMs ?? 5_000;
  const settingKey = `flags-usage.${project}`;
  /** flag → [evaluations, time of the last one in ms] counted since the last write. */
  let pending = new Map<string, [number, number]>();
  let state: Promise<FlagUsageView> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  const gateway = options.gateway;
  const stepMs = gateway?.stepMs ?? (DEFAULT_RETENTION[0] as { stepMs: number }).stepMs;
  /** Gateway requests are taken up to here (a step boundary, ms). */
  let gatewayUntil = Math.floor(now().getTime() / stepMs) * stepMs;
  const gatewayTimer = gateway === undefined ? undefined : setInterval(() => takeGatewayRequests(), gateway.everyMs ?? 60_000);
  gatewayTimer?.unref();

  /** Counts the gateway requests of the steps completed since the last time, as evaluations at the end of those steps. */
  function takeGatewayRequests(): void {
    if (gateway === undefined || closed) return;
    // Only steps that ended a step ago: a scrape that began before a step's end may still be writing into it.
    const end = Math.floor(now().getTime() / stepMs) * stepMs - stepMs;
    if (end <= gatewayUntil) return;
    let counts;
    try {
      // Exactly the steps from gatewayUntil to end ("cover" takes the step holding the window's start).
      counts = gateway.metrics.increase(GATEWAY_FLAG_REQUESTS, { window: end - gatewayUntil - 1, at: end - 1, by: ["flag"], steps: "cover" });
    } catch (err) {
      options.onError?.(err);
      return;
    }
    gatewayUntil = end;
    for (const c of counts) {
      const n = Math.round(c.value);
      if (c.labels.flag !== undefined && n > 0) record(c.labels.flag, n, end);
    }
  }

  function load(): Promise<FlagUsageView> {
    state ??= (async () => {
      const text = await store.getSetting(settingKey);
      if (text !== undefined && text !== "") {
        const stored = JSON.parse(text) as Partial<FlagUsageView>;
        return { since: stored.since ?? now().toISOString(), flags: stored.flags ?? {} };
      }
      // Written at once, so that flags never evaluated age from the day counting began.
      const fresh: FlagUsageView = { since: now().toISOString(), flags: {} };
      await store.setSetting(settingKey, JSON.stringify(fresh));
      return fresh;
    })();
    // A failed read is tried again next time.
    state.catch(() => (state = undefined));
    return state;
  }

  function arm(): void {
    if (timer !== undefined || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      flush().catch((err: unknown) => options.onError?.(err));
    }, flushMs);
    timer.unref();
  }

  function record(flag: string, count: number, at: number): void {
    const before = pending.get(flag);
    if (before !== undefined) {
      before[0] += count;
      before[1] = Math.max(before[1], at);
      return;
    }
    if (pending.size >= MAX_PENDING_FLAGS) return;
    pending.set(flag, [count, at]);
    arm();
  }

  function flush(): Promise<void> {
    const run = queue.then(async () => {
      const view = await load();
      if (pending.size === 0) return;
      const counted = pending;
      pending = new Map();
      try {
        const { set } = await flags.snapshot();
        const next: Record<string, FlagUsageEntry> = {};
        // Flags deleted since are dropped: a flag created again under the name starts afresh.
        for (const key of Object.keys(set.flags)) {
          const old = view.flags[key];
          const n = counted.get(key);
          if (n !== undefined) next[key] = { lastEvaluatedAt: new Date(n[1]).toISOString(), evaluations: (old?.evaluations ?? 0) + n[0] };
          else if (old) next[key] = old;
        }
        await store.setSetting(settingKey, JSON.stringify({ since: view.since, flags: next }));
        view.flags = next;
      } catch (err) {
        for (const [key, [n, at]] of counted) record(key, n, at);
        arm();
        throw err;
      }
    });
    queue = run.catch(() => undefined);
    return run;
  }

  return {
    record(flag, count = 1) {
      if (closed || !(count > 0)) return;
      record(flag, count, now().getTime());
    },
    recordAll(counts) {
      if (closed) return 0;
      const at = now().getTime();
      let taken = 0;
      for (const [flag, n] of Object.entries(counts)) {
        if (!(n > 0) || (!pending.has(flag) && pending.size >= MAX_PENDING_FLAGS)) continue;
        record(flag, n, at);
        taken++;
      }
      return taken;
    },
    async read() {
      takeGatewayRequests();
      await flush();
      const view = await load();
      return { since: view.since, flags: { ...view.flags } };
    },
    flush,
    async close() {
      takeGatewayRequests();
      closed = true;
      clearInterval(gatewayTimer);
      clearTimeout(timer);
      timer = undefined;
      await flush();
    },
  };
}
