// The flag API over a real HTTP control plane (memory store and driver): CRUD, kill switch,
// history and rollback, the change stream, OFREP as the official OpenFeature OFREP provider
// uses it, flags declared in the manifest (set by apply, drift shown by plan), and evaluation
// counts, stale flags and scheduled changes through the API and the `keelson flags` CLI.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OpenFeature } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { makeTempDir, runCli, waitFor } from "#test-support";
import { main } from "./main.js";
import { createReconciler } from "../delivery/index.js";
import type { ScheduledChange, StaleReport } from "../flags/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createApiSecurity, createControlPlane, type ControlPlane } from "../api/index.js";

const checkout = {
  state: "ENABLED",
  variants: { on: true, off: false },
  defaultVariant: "off",
  targeting: { fractional: [["on", 50], ["off", 50]] },
};

describe("flag API", () => {
  let cp: ControlPlane;
  let url: string;
  let token: string;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };

  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-flag-api-");
    cleanup = tmp.cleanup;
    const store = createMemoryStore();
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    ({ token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" }));
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await OpenFeature.close();
    await cp.close();
    await cleanup();
  });

  it("refuses a change made from a stale read (If-Match), instead of overwriting the change in between", async () => {
    expect((await call("PUT", "/v1/flags/guarded", { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off" })).status).toBe(200);
    const read = await call("GET", "/v1/flags/guarded");
    const tag = read.headers.get("etag")!;
    expect(tag).toMatch(/^"[0-9a-f]{16}"$/);
    expect(read.body?.tag).toBe(tag);
    // Someone else changes it first.
    expect((await call("PUT", "/v1/flags/guarded", { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" })).status).toBe(200);
    const stale = await call("PUT", "/v1/flags/guarded", { state: "DISABLED", variants: { on: true, off: false }, defaultVariant: "off" }, { "if-match": tag });
    expect(stale.status).toBe(409);
    expect((stale.body?.error as { code: string; message: string }).code).toBe("KEELSON_ERR_CONFLICT");
    expect((stale.body?.error as { message: string }).message).toMatch(/flag "guarded" changed since it was read/);
    expect(((await call("GET", "/v1/flags/guarded")).body?.flag as { defaultVariant: string }).defaultVariant).toBe("on");
    // With the current tag the change goes through, and answers the new tag.
    const fresh = (await call("GET", "/v1/flags/guarded")).headers.get("etag")!;
    const ok = await call("PUT", "/v1/flags/guarded", { state: "DISABLED", variants: { on: true, off: false }, defaultVariant: "on" }, { "if-match": fresh });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("etag")).not.toBe(fresh);
    expect((await call("DELETE", "/v1/flags/guarded")).status).toBe(200);
  });

  it("creates a flag, refuses bad ones with the path named, and keeps history with diffs", async () => {
    expect((await call("PUT", "/v1/flags/new-checkout", checkout)).status).toBe(200);
    const bad = await call("PUT", "/v1/flags/broken", { state: "ENABLED", variants: { a: 1 }, defaultVariant: "b" });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/flags\.broken\.defaultVariant/);
    expect((await call("PUT", "/v1/flags/new-checkout", { ...checkout, defaultVariant: "on" })).status).toBe(200);
    const history = await call("GET", "/v1/flags/new-checkout/history");
    const changes = history.body?.changes as Array<{ seq: number; kind: string; actor: string; diff: Array<{ path: string }> }>;
    expect(changes.map((c) => [c.kind, c.actor])).toEqual([
      ["flag.changed", "user:ana"],
      ["flag.created", "user:ana"],
    ]);
    expect(changes[0]?.diff.map((d) => d.path)).toEqual(["defaultVariant"]);
    const back = await call("POST", "/v1/flags/new-checkout/rollback", { to: changes[1]?.seq });
    expect((back.body?.flag as { defaultVariant: string }).defaultVariant).toBe("off");
    expect((await call("POST", "/v1/flags/new-checkout/rollback", { to: "yesterday" })).status).toBe(400);
  });

  it("answers OFREP single and bulk evaluation, with 404 for a missing flag and 304 for an unchanged set", async () => {
    const one = await call("POST", "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "user-1" } });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ key: "new-checkout", reason: "SPLIT", value: expect.any(Boolean) });
    const missing = await call("POST", "/ofrep/v1/evaluate/flags/nope", { context: {} });
    expect(missing).toMatchObject({ status: 404, body: { key: "nope", errorCode: "FLAG_NOT_FOUND" } });
    const badContext = await call("POST", "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: 42 } });
    expect(badContext).toMatchObject({ status: 400, body: { errorCode: "INVALID_CONTEXT" } });

    const bulk = await call("POST", "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-1" } });
    expect(bulk.status).toBe(200);
    const etag = bulk.headers.get("etag") as string;
    expect(etag).toMatch(/^"[0-9a-f]{24}"$/);
    expect(bulk.body?.flags).toEqual([expect.objectContaining({ key: "new-checkout" })]);
    expect((await call("POST", "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-1" } }, { "if-none-match": etag })).status).toBe(304);
    // Another context or a changed set is a new answer.
    expect((await call("POST", "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-2" } }, { "if-none-match": etag })).status).toBe(200);
  });

  it("works with the official OpenFeature OFREP provider, and the kill switch reaches it at once", async () => {
    await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: url, headers: { authorization: `Bearer ${token}` } }));
    const client = OpenFeature.getClient();
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const before = await Promise.all(users.map((u) => client.getBooleanDetails("new-checkout", false, { targetingKey: u })));
    const on = before.filter((d) => d.value).length;
    // A 50/50 split: each user always gets the same answer, and roughly half get "on".
    expect(on).toBeGreaterThan(70);
    expect(on).toBeLessThan(130);
    expect(before.every((d) => d.reason === "SPLIT" && d.errorCode === undefined)).toBe(true);
    const again = await client.getBooleanDetails("new-checkout", false, { targetingKey: users[0] as string });
    expect(again.value).toBe(before[0]?.value);

    expect((await call("POST", "/v1/flags/new-checkout/kill")).status).toBe(200);
    const after = await Promise.all(users.slice(0, 20).map((u) => client.getBooleanDetails("new-checkout", true, { targetingKey: u })));
    expect(after.every((d) => d.value === false && d.reason === "STATIC")).toBe(true);
    const missing = await client.getBooleanDetails("nope", true, { targetingKey: "u" });
    expect(missing).toMatchObject({ value: true, errorCode: "FLAG_NOT_FOUND" });
  });

  it("streams every new revision to SSE subscribers", async () => {
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/flags/stream`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    const revisions = () => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        text += decoder.decode(value, { stream: true });
      }
    })();
    await waitFor(() => revisions().length === 1, { what: "the first snapshot" });
    const first = revisions()[0] as number;
    await call("PUT", "/v1/flags/banner", { state: "ENABLED", variants: { a: "Welcome", b: "Hello" }, defaultVariant: "a" });
    await waitFor(() => revisions().includes(first + 1), { what: "the change on the stream" });
    expect(text).toContain('"banner"');
    ac.abort();
    await pump;
  });
});

describe("flags declared in the manifest", () => {
  let cp: ControlPlane;
  let url: string;
  let token: string;
  let dir: string;
  let store: Store;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };

  const manifest = (flags: string) => writeFile(join(dir, "keelson.yaml"), `project: shop\nservices: {}\n${flags}`);
  const checkout = `  new-checkout:
    state: ENABLED
    variants: { on: true, off: false }
    defaultVariant: "off"
    targeting: { if: [{ $ref: staff }, "on", "off"] }
`;
  const banner = `  banner:
    state: ENABLED
    variants: { plain: Welcome, sale: 20% off }
    defaultVariant: plain
`;
  const staff = `flagEvaluators:\n  staff: { ends_with: [{ var: email }, "@shop.test"] }\n`;

  async function call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, text, body: text && !text.includes("\n{") ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }
  /** POST /v1/apply, returning the streamed lines. */
  async function apply(): Promise<Array<Record<string, unknown>>> {
    const { status, text } = await call("POST", "/v1/apply", {});
    expect(status).toBe(200);
    return text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  const flagSet = async () => (await call("GET", "/v1/flags")).body as { revision: number; flags: Record<string, { defaultVariant: string; targeting?: unknown }>; $evaluators?: Record<string, unknown> };

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-flag-apply-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    store = createMemoryStore();
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: join(dir, ".keelson"), gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir: join(dir, ".keelson") });
    ({ token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" }));
    cp = createControlPlane({ project: "shop", dir, stateDir: join(dir, ".keelson"), store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await cp.close();
    await cleanup();
  });

  it("apply sets the declared flags in one revision and leaves live-only flags alone; a second apply changes nothing", async () => {
    expect((await call("PUT", "/v1/flags/live-only", { state: "ENABLED", variants: { a: 1, b: 2 }, defaultVariant: "a" })).status).toBe(200);
    await manifest(`flags:\n${checkout}${banner}${staff}`);
    expect((await call("POST", "/v1/plan")).body?.flags).toEqual([
      { action: "create", kind: "flag", key: "banner", fields: [] },
      { action: "create", kind: "flag", key: "new-checkout", fields: [] },
      { action: "create", kind: "evaluator", key: "staff", fields: [] },
    ]);

    expect((await call("GET", "/v1/flags/live-only")).body).toMatchObject({ key: "live-only", declared: false });
    const lines = await apply();
    expect(lines.find((l) => l.type === "flags")).toEqual({ type: "flags", revision: 2, created: ["banner", "new-checkout"], changed: [], removed: [], evaluators: ["staff"] });
    // The dashboard warns that edits of a declared flag last until the next `keelson up`.
    expect((await call("GET", "/v1/flags/banner")).body).toMatchObject({ key: "banner", declared: true, flag: { defaultVariant: "plain" } });
    expect((await call("GET", "/v1/flags/live-only")).body).toMatchObject({ declared: false });
    const [created] = (await call("GET", "/v1/flags/banner/history")).body?.changes as Array<{ kind: string; source?: string }>;
    expect(created).toMatchObject({ kind: "flag.created", source: "manifest" });
    expect(lines.at(-1)).toMatchObject({ type: "done", result: { failures: [], flags: { revision: 2 } } });
    const set = await flagSet();
    expect(set.revision).toBe(2);
    expect(Object.keys(set.flags).sort()).toEqual(["banner", "live-only", "new-checkout"]);
    expect(set.$evaluators).toEqual({ staff: { ends_with: [{ var: "email" }, "@shop.test"] } });
    const events = await store.listEvents({ project: "shop", kinds: ["flag.created"] });
    expect(events.filter((e) => e.details.source === "manifest").map((e) => [e.subject, e.actor, e.details.revision])).toEqual([
      ["flag/banner", "user:ana", 2],
      ["flag/new-checkout", "user:ana", 2],
    ]);

    await apply();
    expect((await flagSet()).revision).toBe(2);
    expect((await call("POST", "/v1/plan")).body?.flags).toEqual([]);
  });

  it("plan shows a live kill as drift; apply puts the manifest's definition back and deletes flags dropped from it", async () => {
    expect((await call("POST", "/v1/flags/new-checkout/kill")).status).toBe(200);
    const drift = (await call("POST", "/v1/plan")).body?.flags as Array<{ action: string; key: string; fields: Array<{ path: string }> }>;
    expect(drift.map((d) => [d.action, d.key, d.fields.map((f) => f.path)])).toEqual([["change", "new-checkout", ["metadata", "targeting"]]]);

    await call("PUT", "/v1/flags/live-only", { state: "ENABLED", variants: { a: 1, b: 2 }, defaultVariant: "b" });
    await manifest(`flags:\n${checkout}${staff}`);
    const before = (await flagSet()).revision;
    const lines = await apply();
    expect(lines.find((l) => l.type === "flags")).toMatchObject({ revision: before + 1, created: [], changed: ["new-checkout"], removed: ["banner"] });
    const set = await flagSet();
    expect(set.revision).toBe(before + 1);
    expect(Object.keys(set.flags).sort()).toEqual(["live-only", "new-checkout"]);
    expect(set.flags["new-checkout"]?.targeting).toEqual({ if: [{ $ref: "staff" }, "on", "off"] });
    expect(set.flags["live-only"]?.defaultVariant).toBe("b");

    // Dropping the whole section deletes what it declared, evaluators too, and nothing else.
    await manifest("");
    await apply();
    const last = await flagSet();
    expect(Object.keys(last.flags)).toEqual(["live-only"]);
    expect(last.$evaluators).toBeUndefined();
  });
});

describe("flag usage, stale flags and scheduled changes (API and CLI)", () => {
  let cp: ControlPlane;
  let url: string;
  let token: string;
  let dir: string;
  let store: Store;
  let cleanup: () => Promise<void>;
  let t = Date.parse("2026-03-01T00:00:00Z");
  const DAY = 86_400_000;
  const silent = { info() {}, warn() {}, error() {} };
  const flag = (type: string) => ({ state: "ENABLED", type, variants: { on: true, off: false }, defaultVariant: "off" });

  async function call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }
  /** Runs `keelson …` in this process against the test's control plane; its exit code and output. */
  async function keelson(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true));
    try {
      const code = await main(["node", "keelson", ...args, "-C", dir]);
      return { code, out, err };
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  }

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-flag-stale-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    store = createMemoryStore({ now: () => t });
    const driver = createMemoryDriver();
    const stateDir = join(dir, ".keelson");
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    await mkdir(stateDir, { recursive: true });
    const security = await createApiSecurity({ store, project: "shop", stateDir });
    ({ token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" }));
    cp = createControlPlane({ project: "shop", dir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, now: () => new Date(t), security });
    url = await cp.listen("127.0.0.1", 0);
    // What `keelson up` writes, so that the CLI finds this control plane and has its token.
    await writeFile(join(stateDir, "controlplane.json"), JSON.stringify({ pid: process.pid, url, project: "shop" }));
    await writeFile(join(stateDir, "token"), `${token}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await cp.close();
    await cleanup();
  });

  it("counts evaluations from the evaluate endpoint, OFREP and the SDK's batches, and lists stale flags with the reason", async () => {
    for (const [key, type] of [["old-release", "release"], ["breaker", "kill-switch"], ["live", "operational"]] as const) expect((await call("PUT", `/v1/flags/${key}`, flag(type))).status).toBe(200);
    expect((await call("POST", "/v1/flags/live/evaluate", { context: { targetingKey: "u1" } })).status).toBe(200);
    expect((await call("POST", "/ofrep/v1/evaluate/flags/old-release", { context: { targetingKey: "u1" } })).status).toBe(200);
    const batch = await call("POST", "/v1/experiments/events", { events: [], evaluations: { breaker: 5, nope: 2 } });
    expect(batch).toMatchObject({ status: 200, body: { accepted: 0 } });
    expect((await call("POST", "/v1/experiments/events", { events: [], evaluations: { breaker: -1 } })).status).toBe(400);
    expect((await call("GET", "/v1/flags/usage")).body).toEqual({
      since: "2026-03-01T00:00:00.000Z",
      flags: {
        live: { evaluations: 1, lastEvaluatedAt: "2026-03-01T00:00:00.000Z" },
        "old-release": { evaluations: 1, lastEvaluatedAt: "2026-03-01T00:00:00.000Z" },
        breaker: { evaluations: 5, lastEvaluatedAt: "2026-03-01T00:00:00.000Z" },
      },
    });

    t += 40 * DAY;
    await call("POST", "/ofrep/v1/evaluate/flags", { context: { targetingKey: "u1" } });
    t += 1 * DAY;
    expect((await call("POST", "/v1/flags/live/evaluate", { context: {} })).status).toBe(200);
    const stale = await call("GET", "/v1/flags/stale?days=30");
    expect(stale.body).toMatchObject({ days: 30, unchangedDays: 90, flags: [] });
    const stale10 = (await call("GET", "/v1/flags/stale?days=1")).body as unknown as StaleReport;
    expect(stale10.flags.map((f) => [f.flag, f.why])).toEqual([
      ["breaker", ["no evaluation for 1 days (last 2026-04-10)"]],
      ["old-release", ["no evaluation for 1 days (last 2026-04-10)"]],
    ]);
    expect((await call("GET", "/v1/flags/stale?days=soon")).status).toBe(400);

    t += 60 * DAY;
    const cli = await keelson("flags", "stale", "--json");
    expect(cli.code).toBe(0);
    const report = JSON.parse(cli.out) as StaleReport;
    expect(report.flags.map((f) => [f.flag, f.reasons])).toEqual([
      ["live", ["not-evaluated", "unchanged"]],
      ["old-release", ["not-evaluated", "unchanged"]],
      ["breaker", ["not-evaluated"]],
    ]);
    const text = await keelson("flags", "stale", "--days", "90", "--unchanged-days", "100");
    expect(text.out).toContain("old-release  release      -      2026-04-10 00:00  2026-03-01 00:00  no change for 101 days (last 2026-03-01)");
    expect(text.out).toContain("2 stale flags (no evaluation for 90 days or no change for 100 days; evaluations counted since 2026-03-01 00:00)");
    expect((await keelson("flags", "stale", "--days", "0")).code).toBe(2);

    const list = await keelson("flags", "list");
    expect(list.out).toMatch(/LAST EVALUATED\n/);
    expect(list.out).toMatch(/^live .* 2026-04-11 00:00$/m);
  });

  it("schedules, lists, cancels and applies changes when due, through the CLI and the API", async () => {
    const due = new Date(t + 3_600_000).toISOString();
    const scheduled = await keelson("flags", "schedule", "live", "--at", due, "--disable");
    expect(scheduled.out).toContain("scheduled sch-1: disable live at ");
    const defFile = join(dir, "def.json");
    await writeFile(defFile, JSON.stringify({ ...flag("operational"), defaultVariant: "on" }));
    expect((await keelson("flags", "schedule", "old-release", "--at", due, "-f", defFile)).code).toBe(0);
    expect((await keelson("flags", "schedule", "live", "--at", due, "--kill", "--enable")).err).toContain("give exactly one change");
    const bad = await call("POST", "/v1/flags/schedule", { flag: "live", at: due, action: "set", definition: { state: "ENABLED", variants: {}, defaultVariant: "x" } });
    expect(bad.status).toBe(400);
    expect((await call("POST", "/v1/flags/schedule", { flag: "live", at: due, action: "explode" })).status).toBe(400);
    const viaApi = await call("POST", "/v1/flags/schedule", { flag: "breaker", at: due, action: "kill" });
    expect(viaApi).toMatchObject({ status: 201, body: { id: "sch-3", by: "user:ana" } });

    const listed = JSON.parse((await keelson("flags", "schedule", "--list", "--json")).out) as ScheduledChange[];
    expect(listed.map((c) => [c.id, c.flag, c.action, c.by])).toEqual([
      ["sch-1", "live", "disable", "user:ana"],
      ["sch-2", "old-release", "set", "user:ana"],
      ["sch-3", "breaker", "kill", "user:ana"],
    ]);
    expect((await keelson("flags", "schedule", "--list")).out).toMatch(/^sch-2 +\d{4}-\d\d-\d\d \d\d:\d\d +old-release +set \(default on, enabled\) +user:ana$/m);
    expect((await keelson("flags", "schedule", "--cancel", "sch-3")).out).toContain("cancelled sch-3");
    expect((await call("DELETE", "/v1/flags/schedule/sch-3")).status).toBe(404);

    // The control plane's own timer (every second) applies them once due.
    t += 2 * 3_600_000;
    await waitFor(async () => ((await call("GET", "/v1/flags/schedule")).body?.changes as unknown[]).length === 0, { what: "the due changes to be applied" });
    expect(((await call("GET", "/v1/flags/live")).body?.flag as { state: string }).state).toBe("DISABLED");
    expect(((await call("GET", "/v1/flags/old-release")).body?.flag as { defaultVariant: string }).defaultVariant).toBe("on");
    expect(((await call("GET", "/v1/flags/breaker")).body?.flag as { metadata?: unknown }).metadata).toBeUndefined();
    const [change] = (await call("GET", "/v1/flags/live/history")).body?.changes as Array<{ actor: string }>;
    expect(change?.actor).toBe("schedule:user:ana");
    const [event] = await store.listEvents({ project: "shop", subject: "flag/live", kinds: ["flag.changed"], descending: true, limit: 1 });
    expect(event?.details.scheduled).toBe("sch-1");
  });

  it("keelson flags history shows a kill's diff, with the fields it removed", async () => {
    expect((await call("PUT", "/v1/flags/hist", { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on", safeVariant: "off", targeting: { if: [true, "on", null] } })).status).toBe(200);
    expect((await keelson("flags", "kill", "hist")).code).toBe(0);
    const h = await keelson("flags", "history", "hist");
    expect(h.code, h.err).toBe(0);
    expect(h.out).toMatch(/killed .*defaultVariant: "on" → "off"/);
    expect(h.out).toMatch(/targeting: \{"if":\[true,"on",null\]\} → \(none\)/);
  });
});

describe("GET /v1/flags with an ETag (the SDK's polling)", () => {
  let cp: ControlPlane;
  let url: string;
  let token: string;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };

  const get = (headers: Record<string, string> = {}) => fetch(`${url}/v1/flags`, { headers: { authorization: `Bearer ${token}`, ...headers } });

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-flag-etag-");
    cleanup = tmp.cleanup;
    const store = createMemoryStore();
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    ({ token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" }));
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await cp.close();
    await cleanup();
  });

  it("answers an ETag (the body's etag, quoted), 304 with no body for a matching If-None-Match, and 200 with a new ETag after a change", async () => {
    const put = (defaultVariant: string) =>
      fetch(`${url}/v1/flags/polled`, { method: "PUT", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify({ ...checkout, defaultVariant }) });
    expect((await put("off")).status).toBe(200);
    const first = await get();
    expect(first.status).toBe(200);
    const etag = first.headers.get("etag") as string;
    const body = (await first.json()) as { revision: number; etag: string; flags: Record<string, unknown> };
    expect(etag).toBe(`"${body.etag}"`);
    expect(Object.keys(body.flags)).toEqual(["polled"]);

    const unchanged = await get({ "if-none-match": etag });
    expect(unchanged.status).toBe(304);
    expect(unchanged.headers.get("etag")).toBe(etag);
    expect(await unchanged.text()).toBe("");
    // Weakly compared, and any tag of a list matches; another tag does not.
    expect((await get({ "if-none-match": `W/${etag}` })).status).toBe(304);
    expect((await get({ "if-none-match": `"other", ${etag}` })).status).toBe(304);
    expect((await get({ "if-none-match": '"other"' })).status).toBe(200);

    expect((await put("on")).status).toBe(200);
    const changed = await get({ "if-none-match": etag });
    expect(changed.status).toBe(200);
    const next = changed.headers.get("etag") as string;
    expect(next).not.toBe(etag);
    const after = (await changed.json()) as { revision: number; etag: string; flags: Record<string, { defaultVariant: string }> };
    expect(after.revision).toBe(body.revision + 1);
    expect(next).toBe(`"${after.etag}"`);
    expect(after.flags.polled?.defaultVariant).toBe("on");
    expect((await get({ "if-none-match": next })).status).toBe(304);
  });
});

describe("flagd import and export (API and CLI)", () => {
  let cp: ControlPlane;
  let url: string;
  let token: string;
  let dir: string;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };

  async function call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${url}${path}`, { method, headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }
  const keelson = (...args: string[]) => runCli(main, [...args, "-C", dir]);

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-flagd-files-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    const store = createMemoryStore();
    const driver = createMemoryDriver();
    const stateDir = join(dir, ".keelson");
    await mkdir(stateDir, { recursive: true });
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir });
    ({ token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" }));
    cp = createControlPlane({ project: "shop", dir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
    await writeFile(join(stateDir, "controlplane.json"), JSON.stringify({ pid: process.pid, url, project: "shop" }));
    await writeFile(join(stateDir, "token"), `${token}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await cp.close();
    await cleanup();
  });

  it("exports the flags to a flagd file and imports it back unchanged: object variants, $evaluators and Keelson's fields", async () => {
    const set = {
      flags: {
        "checkout-theme": {
          state: "ENABLED",
          type: "experiment",
          owner: "commerce",
          description: "Colours of the new checkout",
          variants: { classic: { primary: "#333", rounded: false }, fresh: { primary: "#0a7", rounded: true, sizes: [12, 14] } },
          defaultVariant: "classic",
          targeting: { if: [{ $ref: "beta-users" }, "fresh", { fractional: [["classic", 80], ["fresh", 20]] }] },
          metadata: { ticket: "SHOP-42" },
        },
        "new-search": { state: "DISABLED", type: "release", variants: { on: true, off: false }, defaultVariant: "off", safeVariant: "off", prerequisites: [{ flag: "checkout-theme", variant: "fresh" }] },
      },
      $evaluators: { "beta-users": { ends_with: [{ var: "email" }, "@example.com"] } },
    };
    expect((await call("PUT", "/v1/flags", set)).status).toBe(200);

    const file = join(dir, "flags.flagd.json");
    const exported = await keelson("flags", "export", "-o", file);
    expect(exported.code, exported.err).toBe(0);
    expect(exported.out).toContain(`wrote ${file}`);
    const doc = JSON.parse(await readFile(file, "utf8")) as { $schema?: string; flags: Record<string, Record<string, unknown>>; $evaluators?: unknown };
    // flagd's format: Keelson's own fields travel as keelson.* metadata.
    expect(doc.$schema).toBe("https://flagd.dev/schema/v0/flags.json");
    expect(doc.flags["checkout-theme"]).not.toHaveProperty("owner");
    expect(doc.flags["checkout-theme"]?.metadata).toMatchObject({ ticket: "SHOP-42", "keelson.owner": "commerce", "keelson.type": "experiment" });
    expect(doc.flags["checkout-theme"]?.variants).toEqual(set.flags["checkout-theme"].variants);
    expect(doc.$evaluators).toEqual(set.$evaluators);

    // Another set in between, then the file back.
    expect((await call("PUT", "/v1/flags", { flags: { other: { state: "ENABLED", variants: { a: 1 }, defaultVariant: "a" } } })).status).toBe(200);
    const imported = await keelson("flags", "import", file);
    expect(imported.code, imported.err).toBe(0);
    expect(imported.out).toMatch(new RegExp(`imported 2 flags from ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(revision \\d+\\)`));
    const back = (await call("GET", "/v1/flags")).body as { flags: unknown; $evaluators?: unknown };
    expect(back.flags).toEqual(set.flags);
    expect(back.$evaluators).toEqual(set.$evaluators);
    const theme = await call("POST", "/v1/flags/checkout-theme/evaluate", { context: { targetingKey: "u1", email: "ana@example.com" } });
    expect(theme.body).toMatchObject({ variant: "fresh", value: { primary: "#0a7", rounded: true, sizes: [12, 14] } });
  });

  it("refuses a bad file with 400, naming the place in the file, and keeps the flags it had", async () => {
    const before = (await call("GET", "/v1/flags")).body as { revision: number };
    // The array form flagd also reads: the second flag's default is no variant of it.
    const bad = JSON.stringify({
      flags: [
        { key: "fine", state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off" },
        { key: "broken", state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "maybe" },
      ],
    });
    const api = await call("PUT", "/v1/flags", bad);
    expect(api.status).toBe(400);
    const error = api.body?.error as { code: string; message: string; details: { issues: Array<{ path: unknown[] }> } };
    expect(error.code).toBe("KEELSON_ERR_INVALID_INPUT");
    expect(error.message).toMatch(/^invalid flag set:\n {2}flags\.1\.defaultVariant: /);
    expect(error.details.issues[0]?.path).toEqual(["flags", 1, "defaultVariant"]);

    const file = join(dir, "bad.flagd.json");
    await writeFile(file, bad);
    const cli = await keelson("flags", "import", file);
    expect(cli.code).not.toBe(0);
    expect(cli.err).toMatch(/flags\.1\.defaultVariant: /);
    // A file that is not JSON is refused before it is sent, naming the file.
    await writeFile(file, '{ "flags": { "x": ');
    const notJson = await keelson("flags", "import", file);
    expect(notJson.code).not.toBe(0);
    expect(notJson.err).toContain(`${file}: not valid JSON`);
    expect(((await call("GET", "/v1/flags")).body as { revision: number }).revision).toBe(before.revision);
  });
});
