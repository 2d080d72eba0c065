// Notifications: follows the event log from a stored cursor, turns deploys, canary rollbacks,
// incidents and security blocks into deliveries to the project's and the owning team's webhooks,
// and sends each in the background with a per-try timeout, backoff with jitter and a dead-letter
// state. Deliveries are documents in the store, so retries survive a restart; nothing that
// appends an event ever waits for a webhook.
import { createHash, randomBytes } from "node:crypto";
import { KeelsonError, type KeelsonEvent } from "@keelson/protocol";
import { Counter, Gauge, type Registry } from "prom-client";
import type { NotificationKind } from "../manifest/index.js";
import type { DocumentRecord, Store } from "../store/index.js";
import { silentTelemetryLog, type TelemetryLog } from "../telemetry/index.js";
import { chaosExperimentAt, NOTIFIED_EVENT_KINDS, notificationOf, type Notification } from "./notification-events.js";
import { jsonMessage, redactUrl, slackMessage, type MessageInput, type NotificationMessageKind } from "./notification-format.js";
import { getNotificationSettings, listTeams, type NotificationSettings, type WebhookTarget } from "./teams.js";

export type DeliveryState = "pending" | "delivered" | "dead";
export const DELIVERY_STATES: readonly DeliveryState[] = ["pending", "delivered", "dead"];

/** One try of a delivery, as recorded. */
export interface DeliveryTry {
  at: string;
  durationMs: number;
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  /** Why the try failed; absent when it succeeded. */
  error?: string;
}

/** A delivery as the API and `keelson notifications` show it (the URL redacted, no body). */
export interface NotificationDelivery {
  id: string;
  /** Sequence number of the event behind it; undefined for a test. */
  seq: number | undefined;
  kind: NotificationMessageKind;
  service: string | undefined;
  /** Whose webhook it is: "project" or "team:<name>". */
  to: string;
  /** The webhook's URL, redacted: scheme://host/…last 4 characters. */
  target: string;
  format: "json" | "slack";
  state: DeliveryState;
  summary: string;
  /** Tries made so far. */
  attempts: number;
  /** Tries it gets before it is dead-lettered. */
  maxAttempts: number;
  /** Pending: when the next try is due. */
  nextAttemptAt: string | undefined;
  lastError: string | undefined;
  lastStatus: number | undefined;
  createdAt: string;
  updatedAt: string;
  deliveredAt: string | undefined;
  /** Every try, oldest first (at most 20 kept). */
  tries: DeliveryTry[];
  /** Set when someone re-queued it from the dead-letter list. */
  requeued?: { by: string; at: string };
}

/** What is stored: the view plus what sending needs (the URL and the exact body). */
interface DeliveryDoc extends NotificationDelivery {
  url: string;
  body: string;
}

export interface NotifierTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface NotifierOptions {
  store: Store;
  project: string;
  log?: TelemetryLog;
  /** Clock (ms since the epoch); default Date.now. */
  now?: () => number;
  /** Timers for the loop and the per-try timeout; default the real ones (unref'd). */
  timers?: NotifierTimers;
  fetch?: typeof globalThis.fetch;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  /** Registers keelson_controlplane_notifications_total and friends here. */
  registry?: Registry;
  /** How often the event log is read (default 1 s). */
  pollIntervalMs?: number;
  /** Longest wait for one try, the answer's headers included (default 5 s). */
  timeoutMs?: number;
  /** Tries in flight to one webhook URL at once (default 2): a slow receiver holds only its own. */
  concurrencyPerTarget?: number;
  /** Tries in flight overall (default 16). */
  concurrency?: number;
  /** Events older than this when first read are not notified (default 1 h): no flood of old news after an upgrade. */
  maxEventAgeMs?: number;
  /** Delivered and dead deliveries kept (each, newest first; default 1,000) ... */
  keep?: number;
  /** ... and for at most this long (default 30 days). */
  retentionMs?: number;
  /** How often old deliveries are pruned (default 1 h). */
  pruneIntervalMs?: number;
}

export interface Notifier {
  /**
   * Loads pending deliveries and reads the event log once (the first start of a project puts its
   * cursor at the end of the log here), then goes on reading and delivering in the background until
   * stop(). Resolves after that first read; never rejects (a failed read is logged and tried again).
   */
  start(): Promise<void>;
  /**
   * Stops reading and sending. Tries under way get `graceMs` (default 2 s) to finish, then are
   * abandoned: their deliveries stay pending and are sent again by the next control plane.
   */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** Reads new events and starts every try that is due, once (start() does this on its own). */
  runOnce(): Promise<void>;
  /** Resolves once no try is under way. */
  idle(): Promise<void>;
  /** Deliveries, newest first. */
  list(query?: { state?: DeliveryState; limit?: number }): Promise<NotificationDelivery[]>;
  get(id: string): Promise<NotificationDelivery | undefined>;
  /** Puts a dead delivery back in the queue with a fresh set of tries. */
  retry(id: string, actor: string): Promise<NotificationDelivery>;
  /** Sends a test notification to every configured webhook (project and teams), whatever its `events`. */
  test(actor: string): Promise<NotificationDelivery[]>;
}

const COLLECTION = "notification";
const CURSOR_KEY = (project: string) => `notifications.${project}.cursor`;
const PAGE = 200;
const MAX_TRIES_KEPT = 20;
/**
 * An incident opened this long after a chaos experiment ended is still put down to it. 0: the same
 * rule as DORA's (opened while an experiment targeted the service), so both agree on what chaos caused.
 */
const CHAOS_GRACE_MS = 0;

const realTimers: NotifierTimers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Creates the notifier; nothing happens until start() or runOnce().
 *
 * @example
 * const notifier = createNotifier({ store, project: "shop", log, registry });
 * notifier.start();
 * await notifier.list({ state: "dead" });
 */
export function createNotifier(options: NotifierOptions): Notifier {
  const { store, project } = options;
  const log = options.log ?? silentTelemetryLog;
  const now = options.now ?? Date.now;
  const timers = options.timers ?? realTimers;
  const doFetch = options.fetch ?? globalThis.fetch;
  const random = options.random ?? Math.random;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const perTargetLimit = options.concurrencyPerTarget ?? 2;
  const overallLimit = options.concurrency ?? 16;
  const maxEventAgeMs = options.maxEventAgeMs ?? 3_600_000;
  const keep = options.keep ?? 1000;
  const retentionMs = options.retentionMs ?? 30 * 86_400_000;
  const pruneIntervalMs = options.pruneIntervalMs ?? 3_600_000;
  const metrics = createMetrics(options.registry);

  /** Pending deliveries by id (the store has them too; this is the schedule). */
  const pending = new Map<string, DeliveryDoc>();
  const inFlight = new Map<string, { abort: AbortController; done: Promise<void> }>();
  const perTarget = new Map<string, number>();
  let loaded: Promise<void> | undefined;
  let cursor: number | undefined;
  let running = false;
  /** Set by stop(): no new tries; those abandoned leave their deliveries pending. */
  let closing = false;
  let ticking: Promise<void> | undefined;
  let timer: { handle: unknown; at: number } | undefined;
  let lastPrune = -Infinity;
  metrics.pending?.set(0);

  const iso = (ms: number) => new Date(ms).toISOString();

  function load(): Promise<void> {
    loaded ??= (async () => {
      for (const doc of await store.listDocuments({ collection: COLLECTION, project, tag: "pending" })) pending.set(doc.id, docOf(doc));
      metrics.pending?.set(pending.size);
    })().catch((err: unknown) => {
      loaded = undefined;
      throw err;
    });
    return loaded;
  }

  async function loadCursor(): Promise<number> {
    if (cursor !== undefined) return cursor;
    const text = await store.getSetting(CURSOR_KEY(project));
    if (text !== undefined && Number.isInteger(Number(text))) return (cursor = Number(text));
    // The first notifier of a project starts at the end of the log: history is not news.
    const [last] = await store.listEvents({ project, descending: true, limit: 1 });
    cursor = last?.seq ?? 0;
    await store.setSetting(CURSOR_KEY(project), String(cursor));
    return cursor;
  }

  /** Reads events after the cursor and stores a delivery per (event, webhook); then moves the cursor. */
  async function readEvents(): Promise<void> {
    const from = await loadCursor();
    let after = from;
    try {
      for (;;) {
        const page = await store.listEvents({ project, afterSeq: after, kinds: [...NOTIFIED_EVENT_KINDS], limit: PAGE });
        if (page.length === 0) return;
        const routing = await routingNow();
        for (const event of page) {
          // A failure here (the store) leaves this event for the next read; ids make that idempotent.
          await handle(event, routing);
          after = event.seq;
        }
        if (page.length < PAGE) return;
      }
    } finally {
      if (after !== from) {
        cursor = after;
        await store.setSetting(CURSOR_KEY(project), String(after));
      }
    }
  }

  interface Routing {
    settings: NotificationSettings;
    teams: Map<string, WebhookTarget[]>;
    owners: Map<string, string>;
  }

  async function routingNow(): Promise<Routing> {
    const [settings, teams, services] = await Promise.all([getNotificationSettings(store, project), listTeams(store, project), store.listServices(project)]);
    return {
      settings,
      teams: new Map(teams.map((t) => [t.name, t.notifications])),
      owners: new Map(services.flatMap((s) => (typeof s.spec.owner === "string" && s.spec.owner !== "" ? [[s.name, s.spec.owner] as const] : []))),
    };
  }

  async function handle(event: KeelsonEvent, routing: Routing): Promise<void> {
    const age = now() - Date.parse(event.at);
    if (age > maxEventAgeMs) return;
    const securityBlocked = event.kind === "pipeline.failed" ? await wasSecurityBlocked(event) : false;
    const notification = notificationOf(event, { securityBlocked });
    if (notification === undefined) return;
    if (notification.service !== undefined && (event.kind === "incident.opened" || event.kind === "incident.resolved")) {
      const experiment = await chaosBehind(event, notification.service);
      if (experiment !== undefined) {
        metrics.total?.inc({ kind: notification.kind, state: "suppressed" });
        log.info({ seq: event.seq, kind: notification.kind, experiment }, "incident during a chaos experiment: not notified");
        return;
      }
    }
    const team = notification.service !== undefined ? routing.owners.get(notification.service) : undefined;
    const targets = [
      ...routing.settings.webhooks.map((w) => ({ webhook: w, to: "project" })),
      ...(team !== undefined ? (routing.teams.get(team) ?? []).map((w) => ({ webhook: w, to: `team:${team}` })) : []),
    ];
    const docs: DeliveryDoc[] = [];
    const seen = new Set<string>();
    for (const { webhook, to } of targets) {
      const kind = kindFor(webhook, notification);
      if (kind === undefined) continue;
      const id = `ntf-${event.seq}-${targetHash(webhook)}`;
      // The same URL for the project and a team is told once.
      if (seen.has(id)) continue;
      seen.add(id);
      docs.push(newDelivery({ id, kind, to, webhook, notification, event, team, attempts: routing.settings.attempts }));
    }
    await queue(docs);
  }

  /** The kind a webhook gets for a notification: its own, else its fallback, else none. */
  function kindFor(webhook: WebhookTarget, n: Notification): NotificationKind | undefined {
    if (webhook.events === undefined || webhook.events.includes(n.kind)) return n.kind;
    if (n.fallback !== undefined && webhook.events.includes(n.fallback)) return n.fallback;
    return undefined;
  }

  async function wasSecurityBlocked(event: KeelsonEvent): Promise<boolean> {
    const run = event.details.run;
    if (typeof run !== "string") return false;
    const blocked = await store.listEvents({ project, kinds: ["security.blocked"], subject: event.subject, descending: true, limit: 10 });
    return blocked.some((b) => b.seq < event.seq && b.details.run === run);
  }

  /** The chaos experiment an incident is put down to (its opening, for a resolution). */
  async function chaosBehind(event: KeelsonEvent, service: string): Promise<string | undefined> {
    let opened = event;
    if (event.kind === "incident.resolved") {
      const seq = event.details.incident;
      if (typeof seq !== "number") return undefined;
      const [found] = await store.listEvents({ project, afterSeq: seq - 1, limit: 1 });
      if (found?.seq !== seq) return undefined;
      opened = found;
    }
    const chaos = (await store.listEvents({ project, kinds: ["chaos.started", "chaos.stopped"], descending: true, limit: 200 })).filter((e) => e.seq < opened.seq);
    return chaosExperimentAt(chaos, service, Date.parse(opened.at), CHAOS_GRACE_MS);
  }

  function newDelivery(input: {
    id: string;
    kind: NotificationMessageKind;
    to: string;
    webhook: WebhookTarget;
    notification: Pick<Notification, "service" | "summary" | "release" | "commit" | "actor">;
    event: KeelsonEvent | undefined;
    team: string | undefined;
    attempts: number;
  }): DeliveryDoc {
    const t = iso(now());
    const message: MessageInput = { id: input.id, kind: input.kind, project, team: input.team, at: input.event?.at ?? t, notification: input.notification, event: input.event };
    const body = JSON.stringify(input.webhook.format === "slack" ? slackMessage(message) : jsonMessage(message));
    return {
      id: input.id,
      seq: input.event?.seq,
      kind: input.kind,
      service: input.notification.service,
      to: input.to,
      target: redactUrl(input.webhook.url),
      format: input.webhook.format,
      state: "pending",
      summary: input.notification.summary,
      attempts: 0,
      maxAttempts: input.attempts,
      nextAttemptAt: t,
      lastError: undefined,
      lastStatus: undefined,
      createdAt: t,
      updatedAt: t,
      deliveredAt: undefined,
      tries: [],
      url: input.webhook.url,
      body,
    };
  }

  /** Stores new deliveries (ids already stored are left alone) and schedules them. */
  async function queue(docs: DeliveryDoc[]): Promise<void> {
    if (docs.length === 0) return;
    const existing = new Set((await store.listDocuments({ collection: COLLECTION, project, ids: docs.map((d) => d.id) })).map((d) => d.id));
    const fresh = docs.filter((d) => !existing.has(d.id));
    if (fresh.length === 0) return;
    await store.putDocuments(fresh.map((d) => recordOf(project, d)));
    for (const d of fresh) {
      pending.set(d.id, d);
      metrics.total?.inc({ kind: d.kind, state: "queued" });
    }
    metrics.pending?.set(pending.size);
  }

  /** Starts every due try there is room for; arms the timer for the next one. */
  function dispatch(): void {
    if (closing) return;
    const t = now();
    const due = [...pending.values()]
      .filter((d) => !inFlight.has(d.id) && Date.parse(d.nextAttemptAt ?? d.createdAt) <= t)
      .sort((a, b) => Date.parse(a.nextAttemptAt ?? a.createdAt) - Date.parse(b.nextAttemptAt ?? b.createdAt) || (a.seq ?? 0) - (b.seq ?? 0) || (a.id < b.id ? -1 : 1));
    for (const d of due) {
      if (inFlight.size >= overallLimit) break;
      if ((perTarget.get(d.url) ?? 0) >= perTargetLimit) continue;
      send(d);
    }
    if (running) {
      const next = [...pending.values()].filter((d) => !inFlight.has(d.id)).reduce((m, d) => Math.min(m, Date.parse(d.nextAttemptAt ?? d.createdAt)), Infinity);
      arm(Math.max(0, Math.min(next - t, pollIntervalMs)));
    }
  }

  function send(d: DeliveryDoc): void {
    const abort = new AbortController();
    perTarget.set(d.url, (perTarget.get(d.url) ?? 0) + 1);
    const done = attempt(d, abort)
      .catch((err: unknown) => {
        log.error({ id: d.id, err: err instanceof Error ? err.message : String(err) }, "cannot record a notification delivery; will try again");
        // The store failed: the delivery stays as it was, tried again later rather than at once.
        if (pending.get(d.id) === d) pending.set(d.id, { ...d, nextAttemptAt: iso(now() + pollIntervalMs) });
      })
      .finally(() => {
        inFlight.delete(d.id);
        const n = (perTarget.get(d.url) ?? 1) - 1;
        if (n <= 0) perTarget.delete(d.url);
        else perTarget.set(d.url, n);
        dispatch();
      });
    inFlight.set(d.id, { abort, done });
  }

  async function attempt(d: DeliveryDoc, abort: AbortController): Promise<void> {
    const started = now();
    let timedOut = false;
    const timeout = timers.setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, timeoutMs);
    let status: number | undefined;
    let error: string | undefined;
    let retryAfterMs: number | undefined;
    try {
      const res = await doFetch(d.url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "keelson", "x-keelson-delivery": d.id, "x-keelson-event": d.kind },
        body: d.body,
        signal: abort.signal,
      });
      status = res.status;
      retryAfterMs = retryAfter(res.headers.get("retry-after"), now());
      await res.body?.cancel().catch(() => undefined);
      if (!res.ok) error = `answered ${res.status}`;
    } catch (err) {
      error = timedOut ? `no answer within ${timeoutMs} ms` : describeFetchError(err);
    } finally {
      timers.clearTimeout(timeout);
    }
    // Abandoned by stop(): the delivery stays as it was, pending, for the next control plane.
    if (closing && abort.signal.aborted && !timedOut) return;
    const t = now();
    const tried: DeliveryTry = { at: iso(started), durationMs: Math.max(0, t - started), ...(status === undefined ? {} : { status }), ...(error === undefined ? {} : { error }) };
    metrics.attempts?.inc({ result: error === undefined ? "ok" : timedOut ? "timeout" : "error" });
    const next: DeliveryDoc = { ...d, attempts: d.attempts + 1, tries: [...d.tries, tried].slice(-MAX_TRIES_KEPT), updatedAt: iso(t), lastStatus: status ?? d.lastStatus, lastError: error ?? d.lastError };
    if (error === undefined) {
      next.state = "delivered";
      next.deliveredAt = iso(t);
      next.nextAttemptAt = undefined;
    } else if (next.attempts >= next.maxAttempts || (status !== undefined && !retryable(status))) {
      next.state = "dead";
      next.nextAttemptAt = undefined;
      if (status !== undefined && !retryable(status)) next.lastError = `${error}; a retry would not change that`;
    } else {
      const s = await getNotificationSettings(store, project);
      // A receiver that says when to come back (429, 503 with Retry-After) is believed, up to maxBackoff.
      next.nextAttemptAt = iso(t + Math.max(backoff(next.attempts, s), Math.min(retryAfterMs ?? 0, s.maxBackoffMs)));
    }
    await store.putDocuments([recordOf(project, next)]);
    if (next.state === "pending") {
      pending.set(next.id, next);
    } else {
      pending.delete(next.id);
      metrics.total?.inc({ kind: next.kind, state: next.state });
      if (next.state === "dead") log.warn({ id: next.id, kind: next.kind, target: next.target, attempts: next.attempts, err: next.lastError }, "notification not delivered; dead-lettered");
    }
    metrics.pending?.set(pending.size);
  }

  /** The wait after the n-th failed try: backoff × 2^(n−1), ±25% jitter, at most maxBackoff. */
  function backoff(n: number, s: Pick<NotificationSettings, "backoffMs" | "maxBackoffMs">): number {
    const base = s.backoffMs * 2 ** Math.min(n - 1, 30);
    return Math.round(Math.min(s.maxBackoffMs, base * (0.75 + 0.5 * random())));
  }

  function arm(delay: number): void {
    if (!running) return;
    const at = now() + delay;
    if (timer !== undefined && timer.at <= at) return;
    if (timer !== undefined) timers.clearTimeout(timer.handle);
    timer = {
      at,
      handle: timers.setTimeout(() => {
        timer = undefined;
        void runOnce().catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "notifications: reading the event log failed"));
      }, delay),
    };
  }

  async function prune(): Promise<void> {
    const cutoff = iso(now() - retentionMs);
    for (const state of ["delivered", "dead"] as const) {
      const docs = await store.listDocuments({ collection: COLLECTION, project, tag: state, descending: true });
      const old = docs.filter((d, i) => i >= keep || d.at < cutoff).map((d) => d.id);
      if (old.length > 0) await store.deleteDocuments(COLLECTION, project, old);
    }
  }

  async function tickOnce(): Promise<void> {
    await load();
    await readEvents();
    if (now() - lastPrune >= pruneIntervalMs) {
      lastPrune = now();
      await prune().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "pruning old notification deliveries failed"));
    }
  }

  async function idle(): Promise<void> {
    while (inFlight.size > 0) await Promise.all([...inFlight.values()].map((f) => f.done));
  }

  function runOnce(): Promise<void> {
    ticking ??= tickOnce().finally(() => {
      ticking = undefined;
      dispatch();
    });
    return ticking;
  }

  async function read(id: string): Promise<DeliveryDoc | undefined> {
    const [doc] = await store.listDocuments({ collection: COLLECTION, project, ids: [id] });
    return doc === undefined ? undefined : docOf(doc);
  }

  return {
    async start() {
      if (running) return;
      running = true;
      closing = false;
      await runOnce().catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "notifications: reading the event log failed; will try again"));
      arm(pollIntervalMs);
    },
    async stop(opts = {}) {
      running = false;
      if (timer !== undefined) timers.clearTimeout(timer.handle);
      timer = undefined;
      await ticking?.catch(() => undefined);
      closing = true;
      const graceMs = opts.graceMs ?? 2000;
      if (graceMs > 0 && inFlight.size > 0) {
        let grace: unknown;
        await Promise.race([idle(), new Promise<void>((r) => (grace = timers.setTimeout(r, graceMs)))]);
        timers.clearTimeout(grace);
      }
      for (const f of inFlight.values()) f.abort.abort();
      await idle();
    },
    runOnce,
    idle,
    async list(query = {}) {
      const docs = await store.listDocuments({ collection: COLLECTION, project, ...(query.state ? { tag: query.state } : {}), descending: true, limit: query.limit ?? 50 });
      return docs.map((d) => viewOf(docOf(d)));
    },
    async get(id) {
      const d = await read(id);
      return d === undefined ? undefined : viewOf(d);
    },
    async retry(id, actor) {
      await load();
      const d = await read(id);
      if (d === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no notification delivery "${id}"`);
      if (d.state !== "dead") {
        throw new KeelsonError("KEELSON_ERR_CONFLICT", d.state === "delivered" ? `notification ${id} was delivered at ${d.deliveredAt ?? d.updatedAt}; only a dead one can be retried` : `notification ${id} is still being tried (${d.attempts} of ${d.maxAttempts} tries so far, next at ${d.nextAttemptAt ?? "once a slot is free"})`);
      }
      const settings = await getNotificationSettings(store, project);
      const t = iso(now());
      const next: DeliveryDoc = { ...d, state: "pending", attempts: 0, maxAttempts: settings.attempts, nextAttemptAt: t, updatedAt: t, requeued: { by: actor, at: t } };
      await store.putDocuments([recordOf(project, next)]);
      pending.set(next.id, next);
      metrics.pending?.set(pending.size);
      metrics.total?.inc({ kind: next.kind, state: "requeued" });
      dispatch();
      return viewOf(next);
    },
    async test(actor) {
      await load();
      const routing = await routingNow();
      const targets = [
        ...routing.settings.webhooks.map((webhook) => ({ webhook, team: undefined })),
        ...[...routing.teams].flatMap(([team, hooks]) => hooks.map((webhook) => ({ webhook, team }))),
      ];
      const stamp = `${now().toString(36)}${randomBytes(2).toString("hex")}`;
      const docs: DeliveryDoc[] = [];
      const seen = new Set<string>();
      for (const { webhook, team } of targets) {
        const id = `ntf-test-${stamp}-${targetHash(webhook)}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const summary = `Test notification from Keelson project ${project} to the ${team === undefined ? "project's" : `${team} team's`} webhook, sent by ${actor}`;
        const notification = { service: undefined, summary, release: undefined, commit: undefined, actor };
        docs.push(newDelivery({ id, kind: "test", to: team === undefined ? "project" : `team:${team}`, webhook, notification, event: undefined, team, attempts: routing.settings.attempts }));
      }
      await queue(docs);
      dispatch();
      return docs.map(viewOf);
    },
  };
}

/** Whether another try could get another answer: server errors, 408, 425 and 429. */
function retryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 425 || status === 429;
}

/** A Retry-After header (seconds or an HTTP date) as ms from now. */
function retryAfter(header: string | null, at: number): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - at);
}

function targetHash(w: WebhookTarget): string {
  return createHash("sha256").update(`${w.format} ${w.url}`).digest("hex").slice(0, 10);
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
  return err.message === "fetch failed" && cause !== undefined ? `cannot connect (${cause.code ?? cause.message ?? "unknown"})` : err.message;
}

function recordOf(project: string, d: DeliveryDoc): DocumentRecord {
  return { collection: COLLECTION, project, id: d.id, tag: d.state, at: d.createdAt, body: JSON.parse(JSON.stringify(d)) as Record<string, unknown> };
}

function docOf(doc: DocumentRecord): DeliveryDoc {
  const b = doc.body as unknown as DeliveryDoc;
  return { ...b, id: doc.id, state: doc.tag as DeliveryState, tries: Array.isArray(b.tries) ? b.tries : [] };
}

function viewOf(d: DeliveryDoc): NotificationDelivery {
  const { url: _url, body: _body, ...view } = d;
  return view;
}

interface NotifierMetrics {
  total?: Counter<"kind" | "state">;
  attempts?: Counter<"result">;
  pending?: Gauge;
}

function createMetrics(registry: Registry | undefined): NotifierMetrics {
  if (registry === undefined) return {};
  const existing = <T>(name: string) => registry.getSingleMetric(name) as T | undefined;
  return {
    total:
      existing<Counter<"kind" | "state">>("keelson_controlplane_notifications_total") ??
      new Counter({ name: "keelson_controlplane_notifications_total", help: "Notification deliveries by kind and state reached (queued, delivered, dead, requeued, suppressed).", labelNames: ["kind", "state"], registers: [registry] }),
    attempts:
      existing<Counter<"result">>("keelson_controlplane_notification_attempts_total") ??
      new Counter({ name: "keelson_controlplane_notification_attempts_total", help: "Tries of notification webhooks by result (ok, error, timeout).", labelNames: ["result"], registers: [registry] }),
    pending: existing<Gauge>("keelson_controlplane_notifications_pending") ?? new Gauge({ name: "keelson_controlplane_notifications_pending", help: "Notification deliveries waiting for a (next) try.", registers: [registry] }),
  };
}
