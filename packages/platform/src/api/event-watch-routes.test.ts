// GET /v1/watch/events through the real control plane on a MemoryStore: who may watch, where the
// stream starts, order, redaction and bad input; then the route alone for heartbeats, the
// per-read bound and stopping when the client goes away.
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeelsonEvent } from "@keelson/protocol";
import { makeTempDir } from "#test-support";
import { createReconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createApiSecurity, type ApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";
import { addEventWatchRoutes, WATCH_PAGE, type EventWatch } from "./event-watch-routes.js";
import type { Handler } from "./http.js";

const silent = { info() {}, warn() {}, error() {} };
const SECRET = "s3cret-value-for-watch-42";

/** One parsed SSE message: a comment (heartbeat), or an event with its id and data. */
type Message = { comment: string } | { id: string | undefined; event: string; data: string };

/** An open SSE stream: messages as they arrive, and `until` to wait (with a deadline) for one that matches. */
async function openStream(url: string, token?: string) {
  const controller = new AbortController();
  const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: controller.signal });
  const messages: Message[] = [];
  let buffer = "";
  const reading = (async () => {
    if (!res.ok || res.body === null) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(":")) messages.push({ comment: block.slice(1).trim() });
          else {
            const field = (name: string) => [...block.matchAll(/^(\w+): ?(.*)$/gm)].find((m) => m[1] === name)?.[2];
            messages.push({ id: field("id"), event: field("event") ?? "message", data: field("data") ?? "" });
          }
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    res,
    messages,
    events: () => messages.flatMap((m) => ("event" in m && m.event === "keelson" ? [JSON.parse(m.data) as KeelsonEvent] : [])),
    async until(check: () => boolean, timeoutMs = 5000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(messages)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close(): Promise<void> {
      controller.abort();
      await reading;
    },
  };
}

describe("GET /v1/watch/events", () => {
  let store: Store;
  let cp: ControlPlane;
  let url: string;
  let security: ApiSecurity;
  let admin: string;
  let viewer: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-watch-events-");
    cleanup = tmp.cleanup;
    store = createMemoryStore();
    const { manifest } = parseManifest("project: shop\nservices:\n  orders: { owner: commerce, path: orders, start: node main.js, replicas: 0 }\n", "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: [{ project: "shop", name: "orders", spec: JSON.parse(JSON.stringify(manifest.services.orders)) as Record<string, unknown>, release: undefined }],
      remove: [],
      events: [{ project: "shop", kind: "manifest.applied", actor: "test", subject: "project/shop" }],
    });
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    admin = (await security.tokens.create({ name: "ops", role: "admin", actor: "test" })).token;
    viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await cp?.close();
    await cleanup();
  });

  it("needs a token, and is read access: a viewer may watch", async () => {
    expect((await fetch(`${url}/v1/watch/events`)).status).toBe(401);
    expect(cp.endpoints).toContainEqual({ method: "GET", path: "/v1/watch/events", access: "read" });
    const stream = await openStream(`${url}/v1/watch/events`, viewer);
    expect(stream.res.status).toBe(200);
    expect(stream.res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    await stream.close();
  });

  it("starts after the newest event by default and sends new ones in seq order, as the event JSON", async () => {
    const [newest] = await store.listEvents({ project: "shop", descending: true, limit: 1 });
    const stream = await openStream(`${url}/v1/watch/events`, viewer);
    await stream.until(() => stream.messages.some((m) => "comment" in m && m.comment.startsWith("after ")));
    expect(stream.messages[0]).toEqual({ comment: `after ${newest?.seq ?? 0}` });
    const a = await store.appendEvent({ project: "shop", kind: "replica.ready", actor: "runtime", subject: "replica/orders-0" });
    const b = await store.appendEvent({ project: "shop", kind: "service.scaled", actor: "user:ops", subject: "service/orders", details: { replicas: 2 } });
    await stream.until(() => stream.events().length >= 2);
    expect(stream.events()).toEqual([a, b]);
    expect(stream.messages.flatMap((m) => ("id" in m ? [m.id] : []))).toEqual([String(a.seq), String(b.seq)]);
    await stream.close();
  });

  it("replays from ?after=, and refuses an after that is not a seq", async () => {
    const all = await store.listEvents({ project: "shop", limit: 1000 });
    expect(all.length).toBeGreaterThanOrEqual(3);
    const from = all[0]!.seq;
    const stream = await openStream(`${url}/v1/watch/events?after=${from}`, admin);
    await stream.until(() => stream.events().length >= all.length - 1);
    expect(stream.events().map((e) => e.seq)).toEqual(all.slice(1).map((e) => e.seq));
    await stream.close();
    for (const bad of ["-1", "abc", "1.5"]) {
      const res = await fetch(`${url}/v1/watch/events?after=${bad}`, { headers: { authorization: `Bearer ${admin}` } });
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT", message: expect.stringContaining("after:") as unknown });
    }
  });

  it("redacts secret values in the events it streams", async () => {
    await security.vault.set("orders", "DB_PASSWORD", SECRET, "test");
    await security.secretsChanged?.("orders");
    const stream = await openStream(`${url}/v1/watch/events`, viewer);
    await stream.until(() => stream.messages.length > 0);
    await store.appendEvent({ project: "shop", kind: "deploy.refused", actor: "test", subject: "service/orders", details: { why: `connection failed for ${SECRET}` } });
    await stream.until(() => stream.events().some((e) => e.kind === "deploy.refused"));
    const text = JSON.stringify(stream.messages);
    expect(text).not.toContain(SECRET);
    expect(text).toContain("connection failed for [redacted]");
    await stream.close();
  });

  it("ends open streams when the control plane closes", async () => {
    const tmp = await makeTempDir("keelson-cp-watch-close-");
    const driver = createMemoryDriver();
    const other = createControlPlane({
      project: "shop",
      dir: tmp.dir,
      stateDir: tmp.dir,
      store,
      driver,
      reconciler: createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent }),
      gatewayUrl: "http://127.0.0.1:1",
      log: silent,
      security,
    });
    const otherUrl = await other.listen("127.0.0.1", 0);
    const stream = await openStream(`${otherUrl}/v1/watch/events`, viewer);
    await stream.until(() => stream.messages.length > 0);
    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(2000);
    await stream.close();
    await tmp.cleanup();
  });
});

describe("the event watch route alone", () => {
  let server: Server;
  let base: string;
  let watch: EventWatch;
  let reads = 0;
  let limits: Array<number | undefined> = [];
  const store = createMemoryStore();

  beforeAll(async () => {
    let handler: Handler | undefined;
    const counting: Pick<Store, "listEvents"> = {
      listEvents: async (q) => {
        reads++;
        limits.push(q?.limit);
        return store.listEvents(q);
      },
    };
    watch = addEventWatchRoutes(
      (_m, _p, _a, h) => {
        handler = h;
      },
      { store: counting, project: "shop", pollMs: 20, heartbeatMs: 100 },
    );
    server = createServer((req, res) => void handler?.(req, res, {}, new URL(req.url ?? "/", "http://localhost")));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const addr = server.address();
    base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  });
  afterAll(async () => {
    watch.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("sends heartbeats while idle", async () => {
    const stream = await openStream(`${base}/v1/watch/events`);
    await stream.until(() => stream.messages.filter((m) => "comment" in m && m.comment === "heartbeat").length >= 2);
    expect(stream.events()).toEqual([]);
    await stream.close();
  });

  it("reads at most 1,000 events at a time, and still sends every one in order", async () => {
    for (let i = 0; i < WATCH_PAGE + 250; i++) await store.appendEvent({ project: "shop", kind: "replica.ready", actor: "runtime", subject: `replica/orders-${i}` });
    limits = [];
    const stream = await openStream(`${base}/v1/watch/events?after=0`);
    await stream.until(() => stream.events().length >= WATCH_PAGE + 250);
    const seqs = stream.events().map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(WATCH_PAGE + 250);
    expect(limits.length).toBeGreaterThan(0);
    expect(limits.every((l) => l === WATCH_PAGE)).toBe(true);
    await stream.close();
  });

  it("stops reading the store once the client goes away", async () => {
    const stream = await openStream(`${base}/v1/watch/events`);
    await stream.until(() => stream.messages.length > 0);
    await stream.close();
    await new Promise((r) => setTimeout(r, 100));
    const after = reads;
    await new Promise((r) => setTimeout(r, 200));
    expect(reads).toBe(after);
  });
});
