// The OpenFeature provider for Keelson flags (`@keelson/sdk/flags`): evaluates locally from a
// snapshot of the project's flag set, kept current over the control plane's change stream
// (Server-Sent Events), falling back to polling with an ETag. When the control plane is
// unreachable, or the stream goes silent past its heartbeat, it keeps serving the last snapshot
// and says so (STALE) until the stream is back, whatever the polls bring meanwhile. Evaluation
// never throws into the service: a failure is the caller's default value with an error code.
// For flags of type "experiment" it records who was served which variant (exposures), and
// OpenFeature's `track` records conversions; both go to the control plane in batches, with the
// number of evaluations of each flag (so the control plane can tell flags no longer used).
import { compileFlagSet, REPLICA_ENV, type CompiledFlagSet, type EvaluationResult, type FlagSet } from "@keelson/protocol";
import {
  ErrorCode,
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type JsonValue,
  type Provider,
  type ResolutionDetails,
  type TrackingEventDetails,
} from "@openfeature/server-sdk";
import { createExperimentRecorder, type ExperimentRecorder, type ExperimentRecorderOptions } from "./experiment-recorder.js";
import { defaultIdentity, type Identity } from "./identity.js";
import { createLogger } from "./logger.js";

export interface KeelsonFlagProviderOptions {
  /** Base URL of the control plane (default: $KEELSON_FLAGS_URL, set in every replica). */
  url?: string;
  /** Poll this often while the stream is down (default 5 s). */
  pollMs?: number;
  /** Give up on a poll that has not answered (headers and body) after this long, and poll again later (default 10 s). */
  pollTimeoutMs?: number;
  /** Wait this long before reconnecting the stream, doubled up to 30 s (default 500 ms). */
  reconnectMs?: number;
  /**
   * How long initialize() waits for a first snapshot before failing (default 5 s). The provider
   * keeps trying after that, and says READY when the first snapshot arrives.
   */
  initTimeoutMs?: number;
  /**
   * Treat the stream as dead after this long without a byte from it, an event or the control
   * plane's heartbeat (sent every 15 s): abort it, say STALE, poll and reconnect (default 35 s).
   */
  streamIdleMs?: number;
  fetch?: typeof globalThis.fetch;
  /** Batching of exposure and conversion events and evaluation counts (defaults: every 1 s or 500 events, at most 10,000 queued). */
  experiments?: Pick<ExperimentRecorderOptions, "flushMs" | "batchSize" | "maxQueued" | "maxBackoffMs">;
  /** Where the provider reports trouble sending experiment events (default: the SDK's JSON logger). */
  log?: { warn(msg: string, fields?: Record<string, unknown>): void };
  /** Whose token requests to the control plane carry (`authorization: Bearer …`); defaults to defaultIdentity(). `false` sends none. */
  identity?: Identity | false;
}

interface SetView {
  revision: number;
  etag: string;
  flags: FlagSet["flags"];
  $evaluators?: FlagSet["$evaluators"];
}

const CODES: Record<string, ErrorCode> = {
  FLAG_NOT_FOUND: ErrorCode.FLAG_NOT_FOUND,
  TYPE_MISMATCH: ErrorCode.TYPE_MISMATCH,
  PARSE_ERROR: ErrorCode.PARSE_ERROR,
  TARGETING_KEY_MISSING: ErrorCode.TARGETING_KEY_MISSING,
  INVALID_CONTEXT: ErrorCode.INVALID_CONTEXT,
  GENERAL: ErrorCode.GENERAL,
};

/**
 * An OpenFeature provider over the project's Keelson flags.
 *
 * Its status follows the change stream: READY while the stream is connected and its last set was
 * usable; STALE while the stream is down (the last set keeps serving, and polls keep it current,
 * but only the stream coming back makes it READY again, so a poll's `200` and its `304` leave the
 * status alike); ERROR when initialize() timed out or a set could not be used, until the next
 * usable set (READY from the stream, STALE from a poll). Nothing is applied or emitted after
 * onClose(), and no request is left open.
 *
 * @example
 * import { OpenFeature } from "@openfeature/server-sdk";
 * import { KeelsonFlagProvider } from "@keelson/sdk/flags";
 * await OpenFeature.setProviderAndWait(new KeelsonFlagProvider());
 * const client = OpenFeature.getClient();
 * const newCheckout = await client.getBooleanValue("new-checkout", false, { targetingKey: userId });
 * // For an experiment flag the evaluation above was recorded as an exposure; a conversion:
 * client.track("purchase", { targetingKey: userId }, { value: 31.5 });
 */
export class KeelsonFlagProvider implements Provider {
  readonly metadata = { name: "keelson" } as const;
  readonly runsOn = "server" as const;
  readonly events = new OpenFeatureEventEmitter();
  private readonly url: string;
  private readonly doFetch: typeof globalThis.fetch;
  private readonly pollMs: number;
  private readonly pollTimeoutMs: number;
  private readonly reconnectMs: number;
  private readonly initTimeoutMs: number;
  private readonly streamIdleMs: number;
  private readonly identity: Identity | undefined;
  private compiled: CompiledFlagSet | undefined;
  private view: SetView | undefined;
  private closed = false;
  private stale = false;
  /** The change stream is connected (it answered 200); polls run only while it is not. */
  private live = false;
  /** Why the stream last went down, for the STALE message. */
  private streamDown = "not connected yet";
  /**
   * OpenFeature holds this provider in ERROR: initialize() timed out, or a snapshot was not
   * usable. Only an event of ours takes it out, so the next usable snapshot emits one.
   */
  private errored = false;
  /**
   * Where initialize() stands. While it waits, the first snapshot resolves it and OpenFeature
   * says READY itself (one of ours would be a second); once it has failed, only ours does.
   */
  private initialization: "waiting" | "failed" | "done" = "waiting";
  /** The ETag of the last snapshot that could not be used, so that polling reports it once. */
  private rejectedEtag: string | undefined;
  private stream: AbortController | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  /** The running poll loop; a loop that finds another here (or none) stops. */
  private pollLoop: object | undefined;
  /** The poll request in flight, aborted on close, when the stream is back, or at its timeout. */
  private pollRequest: AbortController | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly recorder: ExperimentRecorder;
  /** Keys of the flags of type "experiment" in the current snapshot. */
  private experimentFlags: ReadonlySet<string> = new Set();

  constructor(options: KeelsonFlagProviderOptions = {}) {
    const url = options.url ?? process.env[REPLICA_ENV.FLAGS_URL];
    if (!url) throw new Error(`KeelsonFlagProvider: no control-plane URL; pass { url } or set ${REPLICA_ENV.FLAGS_URL}`);
    this.url = url.replace(/\/+$/, "");
    this.doFetch = options.fetch ?? globalThis.fetch;
    this.pollMs = options.pollMs ?? 5_000;
    this.pollTimeoutMs = options.pollTimeoutMs ?? 10_000;
    this.reconnectMs = options.reconnectMs ?? 500;
    this.initTimeoutMs = options.initTimeoutMs ?? 5_000;
    this.streamIdleMs = options.streamIdleMs ?? 35_000;
    this.identity = options.identity === false ? undefined : (options.identity ?? defaultIdentity());
    const identity = this.identity;
    this.recorder = createExperimentRecorder({
      url: this.url,
      fetch: this.doFetch,
      log: options.log ?? createLogger().child({ component: "keelson-flags" }),
      authorization: () => identity?.authorization(),
      ...options.experiments,
    });
  }

  /** Experiment events queued, dropped and sent so far. */
  get experimentEvents(): { queued: number; dropped: number; sent: number } {
    return this.recorder.stats();
  }

  /** The revision of the snapshot being served (undefined before the first). */
  get revision(): number | undefined {
    return this.view?.revision;
  }

  async initialize(): Promise<void> {
    const first = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // OpenFeature now marks the provider ERROR; connect() keeps trying, and first() says READY
        // (STALE when the first snapshot comes from a poll).
        this.initialization = "failed";
        this.errored = true;
        reject(new Error(`KeelsonFlagProvider: no flag snapshot from ${this.url} within ${this.initTimeoutMs} ms`));
      }, this.initTimeoutMs);
      timer.unref();
      this.onFirst = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.connect(this.reconnectMs);
    await first;
  }

  async onClose(): Promise<void> {
    this.closed = true;
    this.stream?.abort();
    // A poll in flight would keep the process alive, and its answer must not be applied.
    this.pollRequest?.abort();
    this.pollLoop = undefined;
    clearTimeout(this.pollTimer);
    clearTimeout(this.reconnectTimer);
    await this.recorder.close();
  }

  /**
   * OpenFeature's tracking API (`client.track`): records a conversion of the context's user
   * (`targetingKey`, required) with `details.value` when it is a number. Never throws.
   */
  track(trackingEventName: string, context: EvaluationContext, trackingEventDetails: TrackingEventDetails): void {
    try {
      const key = context?.targetingKey;
      if (typeof key !== "string" || typeof trackingEventName !== "string") return;
      const value = trackingEventDetails?.value;
      this.recorder.conversion(trackingEventName, key, typeof value === "number" ? value : undefined);
    } catch {
      // Tracking is best-effort by contract.
    }
  }

  resolveBooleanEvaluation(key: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    return Promise.resolve(this.resolve(key, defaultValue, context, "boolean"));
  }
  resolveStringEvaluation(key: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
    return Promise.resolve(this.resolve(key, defaultValue, context, "string"));
  }
  resolveNumberEvaluation(key: string, defaultValue: number, context: EvaluationContext): Promise<ResolutionDetails<number>> {
    return Promise.resolve(this.resolve(key, defaultValue, context, "number"));
  }
  resolveObjectEvaluation<T extends JsonValue>(key: string, defaultValue: T, context: EvaluationContext): Promise<ResolutionDetails<T>> {
    return Promise.resolve(this.resolve(key, defaultValue, context, "object"));
  }

  private resolve<T>(key: string, defaultValue: T, context: EvaluationContext, type: "boolean" | "string" | "number" | "object"): ResolutionDetails<T> {
    if (!this.compiled) return { value: defaultValue, reason: "ERROR", errorCode: ErrorCode.PROVIDER_NOT_READY, errorMessage: "no flag snapshot yet" };
    let r: EvaluationResult;
    try {
      r = this.compiled.evaluate(key, context as Record<string, unknown>, type);
    } catch (err) {
      return { value: defaultValue, reason: "ERROR", errorCode: ErrorCode.GENERAL, errorMessage: err instanceof Error ? err.message : String(err) };
    }
    // Every evaluation of an existing flag counts (for stale-flag detection): one Map increment.
    if (r.errorCode !== "FLAG_NOT_FOUND") this.recorder.evaluation(key);
    if (r.errorCode !== undefined || r.value === undefined) {
      return { value: defaultValue, reason: "ERROR", errorCode: CODES[r.errorCode ?? "GENERAL"] ?? ErrorCode.GENERAL, ...(r.errorMessage ? { errorMessage: r.errorMessage } : {}) };
    }
    if (r.variant !== undefined && this.experimentFlags.has(key) && typeof context.targetingKey === "string") {
      // A push onto a bounded queue: nothing is awaited on the evaluation path.
      this.recorder.exposure(key, r.variant, context.targetingKey);
    }
    return { value: r.value as T, reason: r.reason, ...(r.variant !== undefined ? { variant: r.variant } : {}), ...(r.metadata ? { flagMetadata: r.metadata } : {}) };
  }

  private onFirst: () => void = () => {};

  /** The service's token for the control plane, read anew for each request (it is rotated). */
  private authHeaders(): Record<string, string> {
    const authorization = this.identity?.authorization();
    return authorization === undefined ? {} : { authorization };
  }

  /** A snapshot as text (a stream event's data, a poll's body): applied, or reported as ERROR. */
  private receive(text: string, from: string, fromStream: boolean): void {
    if (this.closed) return;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      this.fail(`${from} sent a flag set that is not JSON (${err instanceof Error ? err.message : String(err)}); serving ${this.serving()}`);
      return;
    }
    const d = data as Partial<SetView> | null;
    if (typeof d !== "object" || d === null || typeof d.revision !== "number" || typeof d.etag !== "string" || typeof d.flags !== "object" || d.flags === null || Array.isArray(d.flags)) {
      this.fail(`${from} sent something that is not a flag set (expected { revision, etag, flags }); serving ${this.serving()}`);
      return;
    }
    this.apply(d as SetView, fromStream);
  }

  /** Takes a new snapshot; tells OpenFeature which flags changed. */
  private apply(view: SetView, fromStream: boolean): void {
    if (this.view && view.revision <= this.view.revision && view.etag === this.view.etag) {
      this.current(fromStream, `serving flag revision ${view.revision}, current again`);
      return;
    }
    if (view.etag === this.rejectedEtag) return; // reported already
    let compiled: CompiledFlagSet;
    try {
      // The control plane checked the set when it was written.
      compiled = compileFlagSet({ flags: view.flags, ...(view.$evaluators ? { $evaluators: view.$evaluators } : {}) }, { checked: true });
    } catch (err) {
      // A set this SDK cannot compile (a newer format?) leaves the last good one serving.
      this.rejectedEtag = view.etag;
      this.fail(`flag set revision ${view.revision} not usable: ${err instanceof Error ? err.message : String(err)}; serving ${this.serving()}`);
      return;
    }
    const before = this.view;
    this.view = view;
    this.compiled = compiled;
    this.rejectedEtag = undefined;
    this.experimentFlags = new Set(Object.keys(view.flags).filter((k) => view.flags[k]?.type === "experiment"));
    if (before === undefined) {
      this.first(fromStream, view.revision);
      return;
    }
    const keys = [...new Set([...Object.keys(before.flags), ...Object.keys(view.flags)])];
    const flagsChanged = keys.filter((k) => JSON.stringify(before.flags[k]) !== JSON.stringify(view.flags[k]));
    this.current(fromStream, `serving flag revision ${view.revision}`);
    this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged, metadata: { revision: view.revision } });
  }

  /** What evaluation serves now, for messages. */
  private serving(): string {
    return this.view ? `revision ${this.view.revision}` : "callers' defaults (no snapshot yet)";
  }

  private fail(message: string): void {
    this.errored = true;
    this.events.emit(ProviderEvents.Error, { message });
  }

  /** The first usable snapshot. */
  private first(fromStream: boolean, revision: number): void {
    if (this.initialization === "waiting") {
      // initialize() resolves with it and OpenFeature says READY, also after an ERROR event of
      // ours (a frame that was not a flag set): a READY of ours would be a second one.
      this.initialization = "done";
      this.errored = false;
      this.onFirst();
      // From a poll the stream is down, so STALE, said after OpenFeature's READY (which follows
      // initialize() in a microtask) so that it sticks.
      if (!fromStream) {
        setImmediate(() => {
          if (!this.closed && !this.live) this.goStale(this.pollingReason());
        }).unref();
      }
      return;
    }
    // initialize() gave up: OpenFeature holds the provider in ERROR until it hears from us.
    this.current(fromStream, `first flag snapshot (revision ${revision}) received`);
  }

  /**
   * A usable snapshot that is current. From the stream: READY again if the provider was STALE or
   * in ERROR. From a poll the stream is down, so at most STALE: out of ERROR, never READY.
   */
  private current(fromStream: boolean, message: string): void {
    if (fromStream) {
      if (!this.stale && !this.errored) return;
      this.stale = false;
      this.errored = false;
      this.events.emit(ProviderEvents.Ready, { message });
    } else if (this.errored) {
      this.errored = false;
      this.stale = false;
      this.goStale(this.pollingReason());
    }
  }

  private pollingReason(): string {
    return `the flag stream is down (${this.streamDown}); polling`;
  }

  private goStale(why: string): void {
    if (this.stale || this.view === undefined) return;
    this.stale = true;
    this.events.emit(ProviderEvents.Stale, { message: `serving flag revision ${this.view.revision} from memory: ${why}` });
  }

  /** Opens the change stream; on failure (or silence) polls and retries with backoff. */
  private connect(delay: number): void {
    if (this.closed) return;
    const ac = new AbortController();
    this.stream = ac;
    // A half-open connection or a proxy that stopped forwarding raises no error: only silence
    // past the control plane's heartbeat tells. Restarted by every byte, headers included.
    let silent: string | undefined;
    const watchdog = setTimeout(() => {
      silent = `no event or heartbeat on the flag stream for ${this.streamIdleMs} ms`;
      ac.abort();
    }, this.streamIdleMs);
    watchdog.unref();
    void (async () => {
      try {
        const res = await this.doFetch(`${this.url}/v1/flags/stream`, { signal: ac.signal, headers: { accept: "text/event-stream", ...this.authHeaders() } });
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        watchdog.refresh();
        this.live = true;
        clearTimeout(this.pollTimer);
        this.pollTimer = undefined;
        this.pollLoop = undefined;
        this.pollRequest?.abort();
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        delay = this.reconnectMs;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          watchdog.refresh();
          buffer += decoder.decode(value, { stream: true });
          let end: number;
          while ((end = buffer.indexOf("\n\n")) !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block
              .split("\n")
              .filter((l) => l.startsWith("data: "))
              .map((l) => l.slice(6))
              .join("\n");
            if (data) this.receive(data, "the flag stream", true);
          }
        }
        throw new Error("stream ended");
      } catch (err) {
        this.live = false;
        if (this.closed) return;
        this.streamDown = silent ?? (err instanceof Error ? err.message : String(err));
        this.goStale(this.streamDown);
        this.poll();
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => this.connect(Math.min(30_000, delay * 2)), delay);
        this.reconnectTimer.unref();
      } finally {
        clearTimeout(watchdog);
      }
    })();
  }

  /**
   * GET /v1/flags with If-None-Match while the stream is down. A 200 keeps the snapshot current,
   * a 304 changes nothing; neither makes the provider READY (only the stream does).
   */
  private poll(): void {
    if (this.closed || this.pollLoop !== undefined) return;
    // A loop of its own: a stream that reconnects and drops again during a request starts a new
    // loop, and this one must then stop rather than run beside it.
    const loop = {};
    this.pollLoop = loop;
    const once = async () => {
      // A control plane that accepts the request and never answers (half-open, or hung) would
      // hold the loop for undici's 300 s: each poll has a deadline of its own.
      const ac = new AbortController();
      this.pollRequest = ac;
      const deadline = setTimeout(() => ac.abort(), this.pollTimeoutMs);
      deadline.unref();
      try {
        const res = await this.doFetch(`${this.url}/v1/flags`, { signal: ac.signal, headers: { ...(this.view ? { "if-none-match": `"${this.view.etag}"` } : {}), ...this.authHeaders() } });
        if (res.status === 200) {
          const text = await res.text();
          if (this.pollLoop === loop) this.receive(text, `GET ${this.url}/v1/flags`, false);
        } else await res.body?.cancel();
      } catch {
        // Still unreachable, or too slow: keep serving what we have.
      } finally {
        clearTimeout(deadline);
        if (this.pollRequest === ac) this.pollRequest = undefined;
      }
      if (this.closed || this.pollLoop !== loop) return;
      this.pollTimer = setTimeout(() => void once(), this.pollMs);
      this.pollTimer.unref();
    };
    this.pollTimer = setTimeout(() => void once(), 0);
    this.pollTimer.unref();
  }
}
