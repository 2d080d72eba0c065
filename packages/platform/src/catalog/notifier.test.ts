// The notifier with an injected clock, timers and fetch: routing to project and team webhooks,
// backoff with jitter, per-try timeouts, the dead-letter list, a restart that resumes, pruning.
import type { EventInput } from "../store/index.js";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { rejection, waitFor } from "#test-support";
import { parseManifest } from "../manifest/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createNotifier, type NotificationDelivery, type Notifier, type NotifierOptions, type NotifierTimers } from "./notifier.js";
import { saveTeams } from "./teams.js";

const START = Date.parse("2026-11-27T10:00:00.000Z");

/** A clock whose timers fire, in time order, only when the test moves time on. */
function fakeClock() {
  let t = START;
  let ids = 0;
  const due = new Map<number, { at: number; fn: () => void }>();
  const timers: NotifierTimers = {
    setTimeout(fn, ms) {
      const id = ++ids;
      due.set(id, { at: t + ms, fn });
      return id;
    },
    clearTimeout: (h) => void due.delete(h as number),
  };
  return {
    now: () => t,
    timers,
    advance(ms: number) {
      const end = t + ms;
      for (;;) {
        const next = [...due.entries()].filter(([, d]) => d.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (next === undefined) break;
        due.delete(next[0]);
        t = Math.max(t, next[1].at);
        next[1].fn();
      }
      t = end;
    },
  };
}
type Clock = ReturnType<typeof fakeClock>;

type Answer = number | "hang" | { status: number; headers: Record<string, string> };

interface Received {
  url: string;
  id: string;
  kind: string;
  body: Record<string, unknown>;
  at: number;
  /** Which try of this delivery id it is (1 = first). */
  n: number;
}

/** A fetch that answers as `script` says, recording every request; "hang" answers only an abort. */
function receiver(clock: Clock, script: (r: { url: string; id: string; n: number }) => Answer = () => 200) {
  const requests: Received[] = [];
  const counts = new Map<string, number>();
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    const id = headers.get("x-keelson-delivery") ?? "";
    const n = (counts.get(id) ?? 0) + 1;
    counts.set(id, n);
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    requests.push({ url, id, kind: headers.get("x-keelson-event") ?? "", body: JSON.parse(String(init?.body)) as Record<string, unknown>, at: clock.now(), n });
    const answer = script({ url, id, n });
    if (answer === "hang") {
      return new Promise<Response>((_, reject) => init?.signal?.addEventListener("abort", () => reject(new DOMException("This operation was aborted", "AbortError"))));
    }
    return typeof answer === "number" ? new Response(null, { status: answer }) : new Response(null, answer);
  }) as typeof globalThis.fetch;
  return { fetch, requests };
}

const HOOKS = "http://hooks.test";

interface Setup {
  store: Store;
  clock: Clock;
  notifier: Notifier;
  registry: Registry;
  requests: Received[];
  append: (kind: EventInput["kind"], details: Record<string, unknown>, extra?: Partial<EventInput>) => Promise<number>;
  make: (overrides?: Partial<NotifierOptions>) => Notifier;
}

async function setup(
  options: {
    notifications?: string;
    teams?: string;
    script?: (r: { url: string; id: string; n: number }) => Answer;
    notifier?: Partial<NotifierOptions>;
    store?: Store;
    clock?: Clock;
  } = {},
): Promise<Setup> {
  const clock = options.clock ?? fakeClock();
  const store = options.store ?? createMemoryStore({ now: clock.now });
  const yaml = [
    "project: shop",
    "teams:",
    options.teams ?? `  commerce: { notifications: [{ url: '${HOOKS}/commerce/T0/B0/secretabcd', format: slack, events: [canary.rolled-back, deploy.failed] }] }\n  web: { notifications: ['${HOOKS}/web'] }`,
    options.notifications ?? `notifications: { webhooks: ['${HOOKS}/all'], attempts: 3, backoff: 1s, maxBackoff: 3s }`,
    "services:",
    "  orders: { owner: commerce, path: orders, start: node main.js }",
    "  search: { owner: web, path: search, start: node main.js }",
    "",
  ].join("\n");
  const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
  if (options.store === undefined) {
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date(clock.now()).toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
  }
  await saveTeams(store, "shop", manifest, new Date(clock.now()).toISOString());
  const { fetch, requests } = receiver(clock, options.script);
  const registry = new Registry();
  const make = (overrides: Partial<NotifierOptions> = {}) =>
    createNotifier({ store, project: "shop", now: clock.now, timers: clock.timers, fetch, random: () => 0.5, registry, ...options.notifier, ...overrides });
  const notifier = make();
  // The first read puts the cursor at the end of the log.
  await notifier.runOnce();
  const append = async (kind: EventInput["kind"], details: Record<string, unknown>, extra: Partial<EventInput> = {}) =>
    (await store.appendEvent({ project: "shop", kind, actor: "reconciler", subject: "service/orders", details, ...extra })).seq;
  return { store, clock, notifier, registry, requests, append, make };
}

const rolloutStarted = { rollout: "ro-1", strategy: "canary", from: "r-000000000001", to: "r-000000000002", commit: "0123456789abcdef" };
const canaryRolledBack = {
  ...rolloutStarted,
  why: "canary analysis failed: error ratio: …",
  rolledBackTo: "r-000000000001",
  analysis: {
    step: 1,
    phase: "Failed",
    evidence: {
      canary: { requests: 1000, errors: 51, errorRatio: 0.051 },
      baseline: { requests: 1000, errors: 2, errorRatio: 0.002 },
      checks: [{ name: "error ratio", status: "fail", detail: "canary 5.10% (51/1000) vs baseline 0.20% (2/1000); evidence 10^3.1, fails at 10^2.6" }],
    },
  },
};

const brief = (d: NotificationDelivery) => `${d.kind} ${d.service ?? "-"} → ${d.to} ${d.target}`;
const all = async (n: Notifier) => (await n.list({ limit: 1000 })).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0) || cmp(a.to, b.to) || cmp(a.target, b.target));
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

describe("notifier", () => {
  it("routes each event to the project's webhooks and the owning team's, filtered by their events, each URL once", async () => {
    const s = await setup({
      teams: `  commerce: { notifications: [{ url: '${HOOKS}/commerce/T0/B0/secretabcd', format: slack, events: [canary.rolled-back] }, '${HOOKS}/shared'] }\n  web: { notifications: ['${HOOKS}/web'] }`,
      notifications: `notifications: { webhooks: ['${HOOKS}/all', { url: '${HOOKS}/failures', events: [deploy.failed] }, '${HOOKS}/shared'] }`,
    });
    await s.append("rollout.started", rolloutStarted, { actor: "user:ana" });
    await s.append("rollout.failed", canaryRolledBack);
    await s.append("incident.opened", { service: "search", slo: "availability", severity: "page" }, { subject: "service/search", actor: "telemetry" });
    await s.append("replica.exited", { code: 1 });
    await s.notifier.runOnce();
    await s.notifier.idle();
    expect((await all(s.notifier)).map(brief)).toEqual([
      `deploy.started orders → project ${HOOKS}/all`,
      `deploy.started orders → project ${HOOKS}/…ared`,
      `canary.rolled-back orders → project ${HOOKS}/all`,
      `canary.rolled-back orders → project ${HOOKS}/…ared`,
      // Asked only for deploy.failed: a rolled-back canary is one, so it hears of it as that.
      `deploy.failed orders → project ${HOOKS}/…ures`,
      `canary.rolled-back orders → team:commerce ${HOOKS}/…abcd`,
      `incident.opened search → project ${HOOKS}/all`,
      `incident.opened search → project ${HOOKS}/…ared`,
      `incident.opened search → team:web ${HOOKS}/web`,
    ]);
    expect((await all(s.notifier)).every((d) => d.state === "delivered" && d.attempts === 1)).toBe(true);
    // What the receivers got: the delivery id and kind in headers, the formats asked for.
    const slack = s.requests.find((r) => r.url.includes("/commerce/"));
    expect(slack?.body).toMatchObject({ text: "orders: canary r-000000000002 rolled back to r-000000000001: error ratio 5.1% vs 0.2% (SPRT)", blocks: [{ type: "section" }, { type: "context" }] });
    const json = s.requests.find((r) => r.url === `${HOOKS}/failures`);
    expect(json?.kind).toBe("deploy.failed");
    expect(json?.body).toMatchObject({ id: json?.id, kind: "deploy.failed", project: "shop", service: "orders", team: "commerce", details: { rolledBackTo: "r-000000000001" }, event: { kind: "rollout.failed", actor: "reconciler" } });
    // The URL in full is never shown, only stored.
    expect(JSON.stringify(await s.notifier.list())).not.toContain("secretabcd");
  });

  it("retries with exponential backoff and jitter up to maxBackoff, the same id and body on every try", async () => {
    const s = await setup({ notifications: `notifications: { webhooks: ['${HOOKS}/all'], attempts: 5, backoff: 1s, maxBackoff: 3s }`, script: ({ n }) => (n < 5 ? 500 : 204) });
    await s.append("rollout.succeeded", { ...rolloutStarted, durationMs: 1000 });
    await s.notifier.runOnce();
    await s.notifier.idle();
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [d] = await s.notifier.list();
      expect(d).toMatchObject({ state: "pending", attempts: i + 1, lastStatus: 500, lastError: "answered 500" });
      const wait = Date.parse(d?.nextAttemptAt ?? "") - s.clock.now();
      waits.push(wait);
      s.clock.advance(wait - 1);
      await s.notifier.runOnce();
      expect(s.requests).toHaveLength(i + 1);
      s.clock.advance(1);
      await s.notifier.runOnce();
      await s.notifier.idle();
      expect(s.requests).toHaveLength(i + 2);
    }
    // random() = 0.5 is the middle of the jitter: 1 s, 2 s, then 4 s capped at 3 s.
    expect(waits).toEqual([1000, 2000, 3000, 3000]);
    const [d] = await s.notifier.list();
    expect(d).toMatchObject({ state: "delivered", attempts: 5, lastStatus: 204 });
    expect(d?.tries.map((t) => t.status)).toEqual([500, 500, 500, 500, 204]);
    expect(new Set(s.requests.map((r) => r.id)).size).toBe(1);
    expect(new Set(s.requests.map((r) => JSON.stringify(r.body))).size).toBe(1);
  });

  it("jitters each wait within ±25% of the doubled backoff", async () => {
    for (const [random, first] of [
      [0, 750],
      [0.999, 1250],
    ] as const) {
      const s = await setup({ script: () => 503 });
      s.notifier = s.make({ random: () => random });
      await s.notifier.runOnce();
      await s.append("rollout.started", rolloutStarted);
      await s.notifier.runOnce();
      await s.notifier.idle();
      const [d] = await s.notifier.list();
      expect(Date.parse(d?.nextAttemptAt ?? "") - s.clock.now()).toBe(first);
    }
  });

  it("dead-letters a delivery after its attempts, and at once on an answer a retry would not change; retry() re-queues it", async () => {
    let down = true;
    const s = await setup({ script: ({ url }) => (url.endsWith("/web") ? 410 : down ? 500 : 200) });
    await s.append("rollout.started", rolloutStarted, { subject: "service/search" });
    await s.notifier.runOnce();
    await s.notifier.idle();
    const gone = (await s.notifier.list()).find((d) => d.to === "team:web");
    expect(gone).toMatchObject({ state: "dead", attempts: 1, lastStatus: 410, lastError: "answered 410; a retry would not change that" });
    for (const wait of [1000, 2000]) {
      s.clock.advance(wait);
      await s.notifier.runOnce();
      await s.notifier.idle();
    }
    const dead = await s.notifier.list({ state: "dead" });
    expect(dead.map((d) => [d.to, d.attempts])).toEqual(
      expect.arrayContaining([
        ["project", 3],
        ["team:web", 1],
      ]),
    );
    expect(dead).toHaveLength(2);
    expect(await s.registry.getSingleMetricAsString("keelson_controlplane_notifications_total")).toContain('keelson_controlplane_notifications_total{kind="deploy.started",state="dead"} 2');

    const project = dead.find((d) => d.to === "project") as NotificationDelivery;
    await rejection(s.notifier.retry("ntf-nope", "user:ana"), "KEELSON_ERR_NOT_FOUND");
    down = false;
    const requeued = await s.notifier.retry(project.id, "user:ana");
    expect(requeued).toMatchObject({ state: "pending", attempts: 0, maxAttempts: 3, requeued: { by: "user:ana" } });
    await rejection(s.notifier.retry(project.id, "user:ana"), "KEELSON_ERR_CONFLICT");
    await s.notifier.idle();
    expect(await s.notifier.get(project.id)).toMatchObject({ state: "delivered", attempts: 1 });
    // Every try of it is kept: three before it died, one after the retry.
    expect((await s.notifier.get(project.id))?.tries.map((t) => t.status)).toEqual([500, 500, 500, 200]);
    await rejection(s.notifier.retry(project.id, "user:ana"), "KEELSON_ERR_CONFLICT");
  });

  it("gives a hanging receiver `timeoutMs` per try, and it holds only its own slots: other webhooks go on", async () => {
    const s = await setup({
      teams: `  commerce: { notifications: ['${HOOKS}/hangs'] }\n  web: {}`,
      script: ({ url }) => (url.endsWith("/hangs") ? "hang" : 200),
      notifier: { timeoutMs: 5000, concurrencyPerTarget: 2 },
    });
    for (let i = 0; i < 5; i++) await s.append("rollout.started", { ...rolloutStarted, rollout: `ro-${i}` });
    await s.notifier.runOnce();
    // The project's webhook got all five while the hanging one holds two tries open.
    await waitFor(async () => (await s.notifier.list({ state: "delivered" })).length === 5, { what: "the project webhook's deliveries" });
    expect(s.requests.filter((r) => r.url.endsWith("/hangs"))).toHaveLength(2);
    s.clock.advance(5000);
    await waitFor(async () => (await s.notifier.list({ state: "pending" })).filter((d) => d.attempts === 1).length === 2, { what: "two tries to time out" });
    const timedOut = (await s.notifier.list({ state: "pending" })).filter((d) => d.attempts === 1);
    expect(timedOut.map((d) => d.lastError)).toEqual(["no answer within 5000 ms", "no answer within 5000 ms"]);
    expect(timedOut.every((d) => d.tries[0]?.durationMs === 5000)).toBe(true);
    // Their slots went to the next two; still never more than two at once.
    expect(s.requests.filter((r) => r.url.endsWith("/hangs"))).toHaveLength(4);
    expect(await s.registry.getSingleMetricAsString("keelson_controlplane_notification_attempts_total")).toContain('keelson_controlplane_notification_attempts_total{result="timeout"} 2');
    await s.notifier.stop({ graceMs: 0 });
  });

  it("honours Retry-After, up to maxBackoff", async () => {
    const s = await setup({ script: ({ n }) => (n === 1 ? { status: 429, headers: { "retry-after": "2" } } : n === 2 ? { status: 503, headers: { "retry-after": "3600" } } : 200) });
    await s.append("rollout.started", rolloutStarted);
    await s.notifier.runOnce();
    await s.notifier.idle();
    const [first] = await s.notifier.list();
    expect(Date.parse(first?.nextAttemptAt ?? "") - s.clock.now()).toBe(2000);
    s.clock.advance(2000);
    await s.notifier.runOnce();
    await s.notifier.idle();
    const [second] = await s.notifier.list();
    expect(Date.parse(second?.nextAttemptAt ?? "") - s.clock.now()).toBe(3000);
  });

  it("after a restart, resumes pending deliveries where they were and reads on from its cursor, sending nothing twice", async () => {
    let up = false;
    const s = await setup({ script: () => (up ? 200 : 500) });
    await s.append("rollout.started", rolloutStarted);
    await s.notifier.runOnce();
    await s.notifier.idle();
    await s.notifier.stop();
    const [before] = await s.notifier.list();
    expect(before).toMatchObject({ state: "pending", attempts: 1 });
    // While no notifier runs, more happens.
    await s.append("rollout.succeeded", { ...rolloutStarted, durationMs: 10 });
    up = true;
    const second = s.make();
    await second.start();
    s.clock.advance(1000);
    await waitFor(async () => (await second.list({ state: "delivered" })).length === 2, { what: "both deliveries" });
    expect((await second.get(before?.id ?? ""))?.attempts).toBe(2);
    // The cursor was stored: the first event was not queued again.
    expect((await second.list()).map((d) => d.kind).sort()).toEqual(["deploy.started", "deploy.succeeded"]);
    await second.stop();
    // A notifier that died between storing deliveries and moving its cursor reads those events again: still nothing twice.
    await s.store.setSetting("notifications.shop.cursor", "0");
    const third = s.make();
    await third.runOnce();
    await third.idle();
    expect(await third.list()).toHaveLength(2);
    expect(s.requests.filter((r) => r.n === 1)).toHaveLength(2);
  });

  it("abandons a try under way at stop(): the delivery stays pending, untouched, for the next control plane", async () => {
    let hang = true;
    const s = await setup({ script: () => (hang ? "hang" : 200) });
    await s.append("rollout.started", rolloutStarted);
    await s.notifier.runOnce();
    expect(s.requests).toHaveLength(1);
    await s.notifier.stop({ graceMs: 0 });
    expect((await s.notifier.list())[0]).toMatchObject({ state: "pending", attempts: 0 });
    hang = false;
    const next = s.make();
    await next.runOnce();
    await next.idle();
    expect((await next.list())[0]).toMatchObject({ state: "delivered", attempts: 1 });
  });

  it("starts at the end of the log the first time, and lets old news go", async () => {
    const clock = fakeClock();
    const store = createMemoryStore({ now: clock.now });
    await store.appendEvent({ project: "shop", kind: "rollout.started", actor: "reconciler", subject: "service/orders", details: rolloutStarted });
    const s = await setup({ store, clock });
    expect(await s.notifier.list()).toEqual([]);
    // An event read more than maxEventAgeMs after it happened (a control plane down for hours) is not news.
    await s.append("rollout.started", rolloutStarted);
    clock.advance(2 * 3_600_000);
    await s.notifier.runOnce();
    expect(await s.notifier.list()).toEqual([]);
    await s.append("rollout.succeeded", rolloutStarted);
    await s.notifier.runOnce();
    expect((await s.notifier.list()).map((d) => d.kind)).toEqual(["deploy.succeeded"]);
  });

  it("tells a release stopped by the security gate once, not again as the failed pipeline it also is", async () => {
    const s = await setup({ notifications: `notifications: { webhooks: ['${HOOKS}/all', { url: '${HOOKS}/failures', events: [deploy.failed] }] }` });
    await s.append("security.blocked", { run: "run-1", release: "r-9", blocking: 1, byKind: { secret: 1 } });
    await s.append("stage.failed", { run: "run-1", stage: "scan" });
    await s.append("pipeline.failed", { run: "run-1", release: "r-9", message: "blocked" });
    await s.append("pipeline.failed", { run: "run-2", release: "r-10", message: 'stage "test" failed' });
    await s.notifier.runOnce();
    expect((await all(s.notifier)).map(brief)).toEqual([
      `security.blocked orders → project ${HOOKS}/all`,
      `deploy.failed orders → project ${HOOKS}/…ures`,
      `deploy.failed orders → team:commerce ${HOOKS}/…abcd`,
      `deploy.failed orders → project ${HOOKS}/all`,
      `deploy.failed orders → project ${HOOKS}/…ures`,
      `deploy.failed orders → team:commerce ${HOOKS}/…abcd`,
    ]);
  });

  it("does not notify an incident a chaos experiment caused (nor its resolution), and counts it", async () => {
    const s = await setup();
    await s.append("chaos.started", { experiment: "chaos-1", kind: "error", service: "search", durationMs: 60_000 }, { subject: "service/search" });
    const opened = await s.append("incident.opened", { service: "search", slo: "availability", severity: "page" }, { subject: "service/search", actor: "telemetry" });
    await s.append("incident.opened", { service: "orders", slo: "availability", severity: "page" }, { actor: "telemetry" });
    s.clock.advance(120_000);
    await s.append("incident.resolved", { incident: opened, service: "search", slo: "availability", durationMs: 120_000 }, { subject: "service/search", actor: "telemetry" });
    await s.notifier.runOnce();
    expect((await all(s.notifier)).map((d) => `${d.kind} ${d.service ?? ""}`)).toEqual(["incident.opened orders"]);
    expect(await s.registry.getSingleMetricAsString("keelson_controlplane_notifications_total")).toContain('keelson_controlplane_notifications_total{kind="incident.opened",state="suppressed"} 1');
  });

  it("sends a test to every webhook once, whatever its events", async () => {
    const s = await setup();
    const sent = await s.notifier.test("user:ana");
    expect(sent.map((d) => `${d.kind} → ${d.to} ${d.format}`).sort()).toEqual(["test → project json", "test → team:commerce slack", "test → team:web json"]);
    await s.notifier.idle();
    expect(s.requests.map((r) => r.kind)).toEqual(["test", "test", "test"]);
    const slack = s.requests.find((r) => r.url.includes("/commerce/"));
    expect((slack?.body as { text: string }).text).toBe("Test notification from Keelson project shop to the commerce team's webhook, sent by user:ana");
  });

  it("keeps at most `keep` delivered (and dead) deliveries, and none older than the retention", async () => {
    const s = await setup({ notifier: { keep: 3, retentionMs: 86_400_000, pruneIntervalMs: 0 } });
    for (let i = 0; i < 5; i++) {
      await s.append("rollout.started", { ...rolloutStarted, rollout: `ro-${i}` });
      s.clock.advance(1000);
    }
    await s.notifier.runOnce();
    await s.notifier.idle();
    expect(await s.notifier.list({ state: "delivered" })).toHaveLength(5);
    await s.notifier.runOnce();
    const kept = await s.notifier.list({ state: "delivered" });
    expect(kept.map((d) => d.seq)).toEqual([5, 4, 3]);
    s.clock.advance(2 * 86_400_000);
    await s.notifier.runOnce();
    expect(await s.notifier.list()).toEqual([]);
  });
});
