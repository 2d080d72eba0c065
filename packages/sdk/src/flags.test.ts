// The flag provider against local HTTP servers that speak the control plane's protocol and
// record what they get: the identity token on every request, a stream that goes silent (the
// heartbeat watchdog), a flag set it cannot use (ERROR, then READY), polling with an ETag (which
// never makes it READY while the stream is down), and a poll that never answers.
// (Behaviour against a real control plane: test/integration/flags-provider.test.ts.)
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenFeature, ProviderEvents, ProviderStatus, type EventDetails } from "@openfeature/server-sdk";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import { KeelsonFlagProvider } from "./flags.js";
import { createIdentity } from "./identity.js";
import { createLogger } from "./logger.js";

const view = {
  revision: 1,
  etag: "r1",
  flags: { checkout: { state: "ENABLED", type: "experiment", variants: { on: true, off: false }, defaultVariant: "on" } },
};

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
}

let server: Server;
let url: string;
let dir: string;
let streamWorks = true;
const seen: Seen[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keelson-sdk-flags-"));
  server = createServer((req, res) => {
    seen.push({ method: req.method ?? "GET", path: req.url ?? "/", authorization: req.headers.authorization });
    if (req.url === "/v1/flags/stream") {
      if (!streamWorks) return void res.writeHead(503).end();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify(view)}\n\n`);
      return; // stays open, like the control plane's stream
    }
    if (req.url === "/v1/flags") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(view));
    req.resume();
    req.on("end", () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

const silent = createLogger({ level: "silent" });

describe("KeelsonFlagProvider: identity", () => {
  it("sends authorization: Bearer <token> on the stream, on polls and with experiment events", async () => {
    const tokenFile = join(dir, "token.jwt");
    await writeFile(tokenFile, "svc-token");
    const identity = createIdentity({ identityFile: tokenFile, tlsDir: "", logger: silent });

    streamWorks = true;
    const streaming = new KeelsonFlagProvider({ url, identity, log: silent, experiments: { flushMs: 10 } });
    await streaming.initialize();
    const result = await streaming.resolveBooleanEvaluation("checkout", false, { targetingKey: "user-1" });
    expect(result.value).toBe(true);
    await waitFor(() => seen.some((s) => s.path === "/v1/experiments/events"), { what: "the exposure to be sent" });
    await streaming.onClose();

    streamWorks = false;
    const polling = new KeelsonFlagProvider({ url, identity, log: silent, pollMs: 10_000, reconnectMs: 10_000 });
    await polling.initialize();
    await polling.onClose();

    const paths = [...new Set(seen.map((s) => `${s.method} ${s.path}`))].sort();
    expect(paths).toEqual(["GET /v1/flags", "GET /v1/flags/stream", "POST /v1/experiments/events"]);
    expect(seen.every((s) => s.authorization === "Bearer svc-token")).toBe(true);
  });

  it("sends no authorization with identity: false", async () => {
    seen.length = 0;
    streamWorks = true;
    const provider = new KeelsonFlagProvider({ url, identity: false, log: silent });
    await provider.initialize();
    await provider.onClose();
    expect(seen.map((s) => [s.path, s.authorization])).toEqual([["/v1/flags/stream", undefined]]);
  });
});

/** A throwaway HTTP server on loopback; close() ends open streams too. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const srv = createServer(handler);
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`,
    async close() {
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

/** Every event the provider emits, in order, with its message. */
function recordEvents(provider: KeelsonFlagProvider): Array<{ type: ProviderEvents; message: string | undefined }> {
  const events: Array<{ type: ProviderEvents; message: string | undefined }> = [];
  for (const type of [ProviderEvents.Ready, ProviderEvents.Stale, ProviderEvents.Error, ProviderEvents.ConfigurationChanged]) {
    provider.events.addHandler(type, (details?: EventDetails) => events.push({ type, message: details?.message }));
  }
  return events;
}

const frame = (data: unknown) => `event: flags\ndata: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;

describe("KeelsonFlagProvider: a stream that goes silent", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });

  it("after its snapshot, silence past streamIdleMs is a dead stream: STALE with the reason, polling, a new connection", async () => {
    let streams = 0;
    let polls = 0;
    const srv = await serve((req, res) => {
      if (req.url === "/v1/flags/stream") {
        streams++;
        // Each connection gets the snapshot, then nothing: no event, no heartbeat.
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(frame(view));
        return;
      }
      polls++;
      const etag = `"${view.etag}"`;
      if (req.headers["if-none-match"] === etag) return void res.writeHead(304, { etag }).end();
      res.writeHead(200, { "content-type": "application/json", etag }).end(JSON.stringify(view));
    });
    cleanups.push(srv.close);
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, streamIdleMs: 200, pollMs: 20, reconnectMs: 50 });
    cleanups.push(() => provider.onClose());
    const events = recordEvents(provider);
    await provider.initialize();

    const stale = await waitFor(() => events.find((e) => e.type === ProviderEvents.Stale), { what: "STALE after the silence" });
    expect(stale.message).toBe("serving flag revision 1 from memory: no event or heartbeat on the flag stream for 200 ms");
    await waitFor(() => polls >= 1 && streams >= 2, { what: "polling and a new stream connection" });
    // Still the snapshot it had, without an error.
    expect(await provider.resolveBooleanEvaluation("checkout", false, {})).toMatchObject({ value: true, reason: "STATIC" });
    expect(events.filter((e) => e.type === ProviderEvents.Error)).toEqual([]);
  });

  it("a stream that never answers at all (not even its headers) falls back to polling, so initialize() still gets a snapshot", async () => {
    let streams = 0;
    const srv = await serve((req, res) => {
      if (req.url === "/v1/flags/stream") return void streams++; // accepted, never answered
      res.writeHead(200, { "content-type": "application/json", etag: `"${view.etag}"` }).end(JSON.stringify(view));
    });
    cleanups.push(srv.close);
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, streamIdleMs: 100, pollMs: 10_000, reconnectMs: 50, initTimeoutMs: 5_000 });
    cleanups.push(() => provider.onClose());
    await provider.initialize();
    expect(provider.revision).toBe(1);
    await waitFor(() => streams >= 2, { what: "the stream to be tried again" });
  });

  it("heartbeats alone keep the stream alive: no STALE and no new connection", async () => {
    let streams = 0;
    let heartbeats = 0;
    const srv = await serve((req, res) => {
      if (req.url !== "/v1/flags/stream") return void res.writeHead(404).end();
      streams++;
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(frame(view));
      const timer = setInterval(() => {
        res.write(": heartbeat\n\n");
        heartbeats++;
      }, 20);
      req.once("close", () => clearInterval(timer));
    });
    cleanups.push(srv.close);
    // Idle time well above the heartbeat interval, so that a busy machine's pauses do not trip it.
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, streamIdleMs: 400, reconnectMs: 50 });
    cleanups.push(() => provider.onClose());
    const events = recordEvents(provider);
    await provider.initialize();
    // Sixty heartbeats span at least three idle periods: a watchdog that ignored them would have fired.
    await waitFor(() => heartbeats >= 60, { what: "sixty heartbeats" });
    expect(streams).toBe(1);
    expect(events).toEqual([]);
  });
});

describe("KeelsonFlagProvider: a flag set it cannot use", () => {
  afterEach(async () => {
    await OpenFeature.clearProviders();
  });

  it("says ERROR with the reason and keeps serving the last good set; the next good set makes it READY again", async () => {
    let stream: ServerResponse | undefined;
    const srv = await serve((req, res) => {
      if (req.url !== "/v1/flags/stream") return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(frame(view));
      stream = res;
    });
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, reconnectMs: 50 });
    try {
      await OpenFeature.setProviderAndWait("sdk-unusable-set", provider);
      const client = OpenFeature.getClient("sdk-unusable-set");
      const errors: Array<string | undefined> = [];
      let readies = 0;
      client.addHandler(ProviderEvents.Error, (d?: EventDetails) => errors.push(d?.message));
      client.addHandler(ProviderEvents.Ready, () => readies++);
      readies = 0; // a READY handler added while READY runs at once
      expect(client.providerStatus).toBe(ProviderStatus.READY);

      // Revision 2 has a flag without variants: this SDK cannot compile it.
      stream?.write(frame({ revision: 2, etag: "r2", flags: { checkout: { state: "ENABLED", defaultVariant: "on" } } }));
      await waitFor(() => errors.length === 1, { what: "the ERROR event" });
      expect(errors[0]).toMatch(/^flag set revision 2 not usable: .+; serving revision 1$/);
      expect(client.providerStatus).toBe(ProviderStatus.ERROR);
      const served = await client.getBooleanDetails("checkout", false, { targetingKey: "u" });
      expect(served).toMatchObject({ value: true, reason: "STATIC" });
      expect(served.errorCode).toBeUndefined();

      // Not JSON, then not a flag set: each an ERROR, the stream kept, the old set still served.
      stream?.write(frame("{not json"));
      stream?.write(frame({ revision: 3, flags: [] }));
      await waitFor(() => errors.length === 3, { what: "two more ERROR events" });
      expect(errors[1]).toMatch(/^the flag stream sent a flag set that is not JSON \(.+\); serving revision 1$/);
      expect(errors[2]).toBe("the flag stream sent something that is not a flag set (expected { revision, etag, flags }); serving revision 1");
      expect(await provider.resolveBooleanEvaluation("checkout", false, {})).toMatchObject({ value: true, reason: "STATIC" });
      expect(provider.revision).toBe(1);

      // A good revision over the same stream: served, and READY again.
      stream?.write(frame({ revision: 4, etag: "r4", flags: { checkout: { ...view.flags.checkout, defaultVariant: "off" } } }));
      await waitFor(() => provider.revision === 4, { what: "revision 4" });
      expect(client.providerStatus).toBe(ProviderStatus.READY);
      expect(readies).toBe(1);
      expect(await client.getBooleanValue("checkout", true, { targetingKey: "u" })).toBe(false);
      expect(errors).toHaveLength(3);
    } finally {
      await srv.close();
    }
  });
});

describe("KeelsonFlagProvider: polling with an ETag", () => {
  it("sends the ETag of the last 200 as If-None-Match, keeps its snapshot on 304, and takes a changed set", async () => {
    let current = view;
    const log: Array<{ ifNoneMatch: string | undefined; status: number; etag: string }> = [];
    const srv = await serve((req, res) => {
      if (req.url === "/v1/flags/stream") return void res.writeHead(503).end();
      const etag = `"${current.etag}"`;
      const status = req.headers["if-none-match"] === etag ? 304 : 200;
      log.push({ ifNoneMatch: req.headers["if-none-match"], status, etag });
      if (status === 304) return void res.writeHead(304, { etag }).end();
      res.writeHead(200, { "content-type": "application/json", etag }).end(JSON.stringify(current));
    });
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, pollMs: 20, reconnectMs: 60_000 });
    try {
      await provider.initialize();
      await waitFor(() => log.filter((l) => l.status === 304).length >= 3, { what: "three 304 answers" });
      expect(provider.revision).toBe(1);
      expect(await provider.resolveBooleanEvaluation("checkout", false, {})).toMatchObject({ value: true });

      current = { revision: 2, etag: "r2", flags: { checkout: { ...view.flags.checkout, defaultVariant: "off" } } };
      await waitFor(() => provider.revision === 2, { what: "the changed set" });
      await waitFor(() => log.filter((l) => l.status === 304 && l.etag === '"r2"').length >= 2, { what: "304 answers for the new ETag" });
      expect(await provider.resolveBooleanEvaluation("checkout", true, {})).toMatchObject({ value: false });

      // Every request carried the ETag of the last 200 before it (none before the first).
      let last200: string | undefined;
      for (const l of log) {
        expect(l.ifNoneMatch).toBe(last200);
        if (l.status === 200) last200 = l.etag;
      }
      expect(log.filter((l) => l.status === 200).map((l) => l.etag)).toEqual(['"r1"', '"r2"']);
    } finally {
      await provider.onClose();
      await srv.close();
    }
  });
});

describe("KeelsonFlagProvider: a poll that does not answer", () => {
  it("gives up on a poll the control plane accepted and never answers after pollTimeoutMs, and polls again", async () => {
    const log: string[] = [];
    let polls = 0;
    const srv = await serve((req, res) => {
      if (req.url === "/v1/flags/stream") return void res.writeHead(503).end();
      const n = ++polls;
      if (n === 1) return void res.writeHead(200, { "content-type": "application/json", etag: `"${view.etag}"` }).end(JSON.stringify(view));
      // Accepted, never answered (a half-open or hung control plane): only the client can end it.
      log.push(`poll ${n}`);
      req.socket.once("close", () => log.push(`closed ${n}`));
    });
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, pollMs: 20, pollTimeoutMs: 150, reconnectMs: 60_000 });
    try {
      await provider.initialize();
      await waitFor(() => log.includes("closed 2") && log.includes("poll 3"), { what: "the second poll given up and a third sent" });
      expect(log[0]).toBe("poll 2");
      expect(provider.revision).toBe(1);
    } finally {
      await provider.onClose();
      await srv.close();
    }
  });

  it("onClose aborts a poll in flight: the server sees its connection closed, and its answer is neither applied nor announced", async () => {
    const newer = JSON.stringify({ revision: 2, etag: "r2", flags: { checkout: { ...view.flags.checkout, defaultVariant: "off" } } });
    let polls = 0;
    let inFlight: ServerResponse | undefined;
    let closed = false;
    const srv = await serve((req, res) => {
      if (req.url === "/v1/flags/stream") return void res.writeHead(503).end();
      if (++polls === 1) return void res.writeHead(200, { "content-type": "application/json", etag: `"${view.etag}"` }).end(JSON.stringify(view));
      // A newer set: the headers and part of the body now, the rest after the provider is closed.
      res.writeHead(200, { "content-type": "application/json", etag: '"r2"' });
      res.write(newer.slice(0, 10));
      // The connection, not the response (which "close"s when it ends): a kept-alive socket stays open.
      req.socket.once("close", () => (closed = true));
      res.on("error", () => undefined);
      inFlight = res;
    });
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, pollMs: 20, pollTimeoutMs: 60_000, reconnectMs: 60_000 });
    const events = recordEvents(provider);
    try {
      await provider.initialize();
      const res = await waitFor(() => inFlight, { what: "a poll in flight" });
      // The first snapshot came from a poll, the stream being down: STALE, not READY.
      expect(events.map((e) => e.type)).toEqual([ProviderEvents.Stale]);
      expect(events[0]?.message).toBe("serving flag revision 1 from memory: the flag stream is down (stream answered 503); polling");

      await provider.onClose();
      if (!res.destroyed) res.end(newer.slice(10));
      await waitFor(() => closed, { timeoutMs: 3_000, what: "the server to see the poll's connection closed" });
      expect(provider.revision).toBe(1);
      expect(events.map((e) => e.type)).toEqual([ProviderEvents.Stale]);
    } finally {
      await provider.onClose();
      await srv.close();
    }
  });
});

describe("KeelsonFlagProvider: READY", () => {
  afterEach(async () => {
    await OpenFeature.clearProviders();
  });

  it("says READY once when an ERROR (a frame that is not a flag set) came before the first snapshot", async () => {
    let stream: ServerResponse | undefined;
    const srv = await serve((req, res) => {
      if (req.url !== "/v1/flags/stream") return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(frame("{not json"));
      res.write(frame(view));
      stream = res;
    });
    const client = OpenFeature.getClient("sdk-one-ready");
    let readies = 0;
    const errors: Array<string | undefined> = [];
    let changes = 0;
    client.addHandler(ProviderEvents.Ready, () => readies++);
    readies = 0; // the default provider was READY: the handler ran at once
    client.addHandler(ProviderEvents.Error, (d?: EventDetails) => errors.push(d?.message));
    client.addHandler(ProviderEvents.ConfigurationChanged, () => changes++);
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, initTimeoutMs: 5_000 });
    try {
      await OpenFeature.setProviderAndWait("sdk-one-ready", provider);
      expect(provider.revision).toBe(1);
      // One more revision over the stream: every event before it has been delivered by then.
      stream?.write(frame({ revision: 2, etag: "r2", flags: view.flags }));
      await waitFor(() => changes === 1, { what: "revision 2" });
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^the flag stream sent a flag set that is not JSON .+; serving callers' defaults \(no snapshot yet\)$/);
      expect(readies).toBe(1);
      expect(client.providerStatus).toBe(ProviderStatus.READY);
    } finally {
      await srv.close();
    }
  });
});

describe("KeelsonFlagProvider: STALE while the stream is down, whatever the polls answer", () => {
  it("a poll's 304 and its 200 (a newer set, applied) both leave it STALE; READY only when the stream is back", async () => {
    let current: typeof view = view;
    let streamUp = true;
    let stream: ServerResponse | undefined;
    const answers: Array<{ status: number; etag: string }> = [];
    const srv = await serve((req, res) => {
      if (req.url === "/v1/flags/stream") {
        if (!streamUp) return void res.writeHead(503).end();
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(frame(current));
        stream = res;
        return;
      }
      const etag = `"${current.etag}"`;
      const status = req.headers["if-none-match"] === etag ? 304 : 200;
      answers.push({ status, etag });
      if (status === 304) return void res.writeHead(304, { etag }).end();
      res.writeHead(200, { "content-type": "application/json", etag }).end(JSON.stringify(current));
    });
    const provider = new KeelsonFlagProvider({ url: srv.url, identity: false, log: silent, pollMs: 20, reconnectMs: 30 });
    const events = recordEvents(provider);
    try {
      await provider.initialize();
      expect(events).toEqual([]);

      // The stream drops and stays down: STALE, and polling.
      streamUp = false;
      stream?.destroy();
      await waitFor(() => answers.filter((a) => a.status === 304).length >= 2, { what: "two 304 answers" });
      // A newer set, which only a poll can bring now: applied, and still STALE.
      current = { revision: 2, etag: "r2", flags: { checkout: { ...view.flags.checkout, defaultVariant: "off" } } };
      await waitFor(() => provider.revision === 2, { what: "revision 2 from a poll" });
      await waitFor(() => answers.filter((a) => a.status === 304 && a.etag === '"r2"').length >= 2, { what: "two 304 answers for r2" });
      expect(answers.some((a) => a.status === 200 && a.etag === '"r2"')).toBe(true);
      expect(events.map((e) => e.type)).toEqual([ProviderEvents.Stale, ProviderEvents.ConfigurationChanged]);
      expect(await provider.resolveBooleanEvaluation("checkout", true, {})).toMatchObject({ value: false, reason: "STATIC" });

      // The stream is back: READY.
      streamUp = true;
      await waitFor(() => events.some((e) => e.type === ProviderEvents.Ready), { what: "READY" });
      expect(events.map((e) => e.type)).toEqual([ProviderEvents.Stale, ProviderEvents.ConfigurationChanged, ProviderEvents.Ready]);
      expect(events[2]?.message).toBe("serving flag revision 2, current again");
    } finally {
      await provider.onClose();
      await srv.close();
    }
  });
});
