// Traffic shaping through the gateway against real node:http upstreams on 127.0.0.1: weighted
// splits across releases (seeded), sticky cookies, version pins, A/B match rules, user affinity,
// weight changes under load, and the long-lived pass-throughs (WebSocket upgrades, server-sent events).
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { connect } from "node:net";
import type { Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, WebSocket, request } from "undici";
import type { RoutingTable, ServicePolicy, TrafficSplit } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import type { Gateway, GatewayOptions } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";
import { createSeededRandom } from "./random.js";
import { buildRoutingTable } from "./routing-table.js";
import { affinityHash } from "./traffic-split.js";

// --- fixtures ---

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-traffic-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function listen(server: Server): Promise<string> {
  server.keepAliveTimeout = 10_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A replica of `release` answering its release and name, unless `handler` answers. */
async function startReplica(release: string, name: string, handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  return listen(
    createServer((req, res) => {
      if (handler) return handler(req, res);
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ release, name }));
    }),
  );
}

async function startGateway(options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir, processMetrics: false, random: createSeededRandom(7), ...options });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

let version = 0;
function table(endpoints: Array<{ release: string; url: string }>, options: { split?: TrafficSplit; policy?: ServicePolicy } = {}): RoutingTable {
  return buildRoutingTable({
    project: "test",
    version: ++version,
    services: [{ name: "web", routes: [{ path: "/", stripPrefix: false }], ...(options.split ? { split: options.split } : {}), ...(options.policy ? { policy: options.policy } : {}) }],
    endpoints: endpoints.map((e, i) => ({ service: "web", replicaId: `web-${i + 1}`, url: e.url, release: e.release })),
  });
}

const client = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; release: string; setCookie: string | undefined }> {
  const res = await request(url, { dispatcher: client, headers });
  const text = await res.body.text();
  const cookie = res.headers["set-cookie"];
  return { status: res.statusCode, release: res.statusCode === 200 ? (JSON.parse(text) as { release: string }).release : "", setCookie: Array.isArray(cookie) ? cookie[0] : cookie };
}

function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

const split = (sticky: boolean, stable: number, canary: number): TrafficSplit => ({
  sticky,
  weights: [
    { release: "r-stable", weight: stable, label: "stable" },
    { release: "r-canary", weight: canary, label: "canary" },
    { release: "r-preview", weight: 0, label: "preview" },
  ],
});

/** Two stable replicas, one canary, one preview (weight 0). */
async function releases() {
  return [
    { release: "r-stable", url: await startReplica("r-stable", "s1") },
    { release: "r-stable", url: await startReplica("r-stable", "s2") },
    { release: "r-canary", url: await startReplica("r-canary", "c1") },
    { release: "r-preview", url: await startReplica("r-preview", "p1") },
  ];
}

// --- tests ---

describe("traffic split", () => {
  it("sends 10% to the canary within 2 percentage points over 10,000 requests, and nothing to a weight-0 release", { timeout: 60_000 }, async () => {
    const gw = await startGateway();
    gw.setTable(table(await releases(), { split: split(false, 90, 10) }));
    const counts: Record<string, number> = {};
    let next = 0;
    const began = Date.now();
    const worker = async () => {
      while (next < 10_000 && Date.now() - began < 45_000) {
        next++;
        const r = await get(`${gw.url}/`);
        counts[r.release] = (counts[r.release] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    expect(total).toBe(10_000);
    expect(counts["r-preview"]).toBeUndefined();
    expect(counts[""]).toBeUndefined();
    expect(Math.abs(counts["r-canary"]! / total - 0.1)).toBeLessThan(0.02);
  });

  it("pins a request by label or release id with x-keelson-version, even to a release without weight", async () => {
    const gw = await startGateway();
    gw.setTable(table(await releases(), { split: split(false, 90, 10) }));
    for (let i = 0; i < 50; i++) expect((await get(`${gw.url}/`, { "x-keelson-version": "canary" })).release).toBe("r-canary");
    for (let i = 0; i < 50; i++) expect((await get(`${gw.url}/`, { "x-keelson-version": "r-stable" })).release).toBe("r-stable");
    for (let i = 0; i < 20; i++) expect((await get(`${gw.url}/`, { "x-keelson-version": "preview" })).release).toBe("r-preview");
    // A pin naming nothing that runs falls back to the split rather than failing.
    expect((await get(`${gw.url}/`, { "x-keelson-version": "r-gone" })).status).toBe(200);
  });

  it("gives a new client a sticky cookie and keeps each cookie holder on its release for 200 requests", async () => {
    const gw = await startGateway();
    gw.setTable(table(await releases(), { split: split(true, 90, 10) }));
    const cookies: Record<string, string> = {};
    for (let i = 0; i < 400 && (cookies["r-canary"] === undefined || cookies["r-stable"] === undefined); i++) {
      const r = await get(`${gw.url}/`);
      expect(r.setCookie).toBe(`keelson-v-web=${r.release}; Path=/; HttpOnly; SameSite=Lax`);
      cookies[r.release] ??= r.setCookie!.split(";")[0]!;
    }
    for (const release of ["r-canary", "r-stable"]) {
      const cookie = cookies[release]!;
      expect(cookie).toBe(`keelson-v-web=${release}`);
      const seen = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const r = await get(`${gw.url}/`, { cookie: `theme=dark; ${cookie}` });
        seen.add(r.release);
        expect(r.setCookie).toBeUndefined();
      }
      expect([...seen]).toEqual([release]);
    }
    // A cookie for a release that no longer runs: chosen again by weight, with a new cookie.
    const stale = await get(`${gw.url}/`, { cookie: "keelson-v-web=r-retired" });
    expect(stale.setCookie).toBe(`keelson-v-web=${stale.release}; Path=/; HttpOnly; SameSite=Lax`);
  });

  it("applies new weights to new requests only: a request in flight on the old release finishes there", async () => {
    const hold = gate();
    let holding = 0;
    const stable = await startReplica("r-stable", "s1", (req, res) => {
      req.resume();
      if (req.url === "/slow") {
        holding++;
        void hold.wait.then(() => res.end(JSON.stringify({ release: "r-stable", name: "s1" })));
      } else {
        res.end(JSON.stringify({ release: "r-stable", name: "s1" }));
      }
    });
    const canary = await startReplica("r-canary", "c1");
    const gw = await startGateway();
    const endpoints = [
      { release: "r-stable", url: stable },
      { release: "r-canary", url: canary },
    ];
    gw.setTable(table(endpoints, { split: split(false, 100, 0) }));
    const slow = get(`${gw.url}/slow`);
    await waitFor(() => holding === 1, { what: "the slow request at the stable replica" });

    gw.setTable(table(endpoints, { split: split(false, 0, 100) }));
    for (let i = 0; i < 50; i++) expect((await get(`${gw.url}/`)).release).toBe("r-canary");
    hold.open();
    expect(await slow).toMatchObject({ status: 200, release: "r-stable" });
  });
});

describe("A/B routes and user affinity", () => {
  it("sends requests matching a header rule to the canary at weight 0, and nothing else", async () => {
    const gw = await startGateway();
    const rules: TrafficSplit = { ...split(false, 100, 0), match: [{ release: "r-canary", headers: { "x-user-group": { exact: "beta" } } }] };
    gw.setTable(table(await releases(), { split: rules }));
    for (let i = 0; i < 50; i++) expect((await get(`${gw.url}/`, { "X-User-Group": "beta" })).release).toBe("r-canary");
    for (let i = 0; i < 50; i++) expect((await get(`${gw.url}/`, { "x-user-group": "beta-2" })).release).toBe("r-stable");
    for (let i = 0; i < 50; i++) expect((await get(`${gw.url}/`)).release).toBe("r-stable");
    // The pin still comes first.
    expect((await get(`${gw.url}/`, { "x-user-group": "beta", "x-keelson-version": "preview" })).release).toBe("r-preview");
  });

  it("sends requests with a matching cookie to the canary before the sticky cookie, without setting one", async () => {
    const gw = await startGateway();
    const rules: TrafficSplit = { ...split(true, 100, 0), match: [{ release: "r-canary", cookies: { canary: { exact: "always" } } }] };
    gw.setTable(table(await releases(), { split: rules }));
    for (let i = 0; i < 30; i++) {
      const r = await get(`${gw.url}/`, { cookie: "theme=dark; keelson-v-web=r-stable; canary=always" });
      expect(r).toMatchObject({ status: 200, release: "r-canary", setCookie: undefined });
    }
    expect(await get(`${gw.url}/`, { cookie: "canary=never" })).toMatchObject({ release: "r-stable", setCookie: "keelson-v-web=r-stable; Path=/; HttpOnly; SameSite=Lax" });
  });

  it("keeps each user on one release for 20 requests by the affinity header, across gateways, the users' shares following the weights", { timeout: 60_000 }, async () => {
    const endpoints = await releases();
    const affine: TrafficSplit = {
      sticky: false,
      weights: [
        { release: "r-canary", weight: 30, label: "canary" },
        { release: "r-stable", weight: 70, label: "stable" },
      ],
      affinity: { header: "x-user-id" },
    };
    const gw = await startGateway();
    gw.setTable(table(endpoints, { split: affine }));
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const seen = new Map<string, Set<string>>(users.map((u) => [u, new Set()]));
    let next = 0;
    const worker = async () => {
      while (next < users.length * 20) {
        const user = users[next++ % users.length]!;
        seen.get(user)!.add((await get(`${gw.url}/`, { "x-user-id": user })).release);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const placed = new Map<string, string>();
    for (const [user, releases] of seen) {
      expect([...releases]).toHaveLength(1);
      placed.set(user, [...releases][0]!);
      // The canary is listed first: users hashing below 30% of the way are on it.
      expect(placed.get(user)).toBe(affinityHash("web", user) / 2 ** 32 < 0.3 ? "r-canary" : "r-stable");
    }
    // 200 users: a binomial spread of about 3 points (the unit tests hold 10,000 users to 2).
    const onCanary = [...placed.values()].filter((r) => r === "r-canary").length;
    expect(Math.abs(onCanary / users.length - 0.3)).toBeLessThan(0.1);
    // Another gateway (another seed, as after a restart) puts every user where the first did.
    const other = await startGateway({ random: createSeededRandom(99) });
    other.setTable(table(endpoints, { split: affine }));
    for (const user of users) expect((await get(`${other.url}/`, { "x-user-id": user })).release).toBe(placed.get(user));
    // Without the header: weighted random, so both releases show up.
    const anonymous = new Set<string>();
    for (let i = 0; i < 60; i++) anonymous.add((await get(`${gw.url}/`)).release);
    expect([...anonymous].sort()).toEqual(["r-canary", "r-stable"]);
  });

  it("routes WebSocket upgrades by match rule and affinity too", async () => {
    const gw = await startGateway();
    gw.setTable(
      table(
        [
          { release: "r-stable", url: await startUpgradeReplica("r-stable") },
          { release: "r-canary", url: await startUpgradeReplica("r-canary") },
        ],
        {
          split: {
            sticky: false,
            weights: [
              { release: "r-canary", weight: 50 },
              { release: "r-stable", weight: 50 },
            ],
            match: [{ release: "r-canary", headers: { "x-user-group": { prefix: "beta" } } }],
            affinity: { cookie: "uid" },
          },
        },
      ),
    );
    for (let i = 0; i < 10; i++) expect(await upgradeRelease(gw.url, { "X-User-Group": "beta-testers", cookie: `uid=u${i}` })).toBe("r-canary");
    for (let i = 0; i < 20; i++) {
      const expected = affinityHash("web", `u${i}`) / 2 ** 32 < 0.5 ? "r-canary" : "r-stable";
      expect(await upgradeRelease(gw.url, { cookie: `uid=u${i}` })).toBe(expected);
    }
  });
});

/** A replica that accepts every upgrade, saying its release in the 101 answer, and then stays silent. */
async function startUpgradeReplica(release: string): Promise<string> {
  const server = createServer((req, res) => res.writeHead(400).end());
  const sockets = new Set<Socket>();
  server.on("upgrade", (req: IncomingMessage, socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Release: ${release}\r\n\r\n`);
  });
  const url = await listen(server);
  // Upgraded sockets are no longer the server's: destroyed before it closes, or close would wait for them.
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  return url;
}

/** Sends an upgrade through the gateway and returns the release the replica that took it names. */
async function upgradeRelease(gatewayUrl: string, headers: Record<string, string>): Promise<string> {
  const { port } = new URL(gatewayUrl);
  const socket = connect(Number(port), "127.0.0.1");
  let extra = "";
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`;
  socket.write(`GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${extra}\r\n`);
  let head = "";
  try {
    for await (const chunk of socket) {
      head += (chunk as Buffer).toString("latin1");
      if (head.includes("\r\n\r\n")) break;
    }
  } finally {
    socket.destroy();
  }
  expect(head).toMatch(/^HTTP\/1\.1 101/);
  return /\r\nx-release: ([^\r]+)/i.exec(head)?.[1] ?? "";
}

describe("WebSocket pass-through", () => {
  it("tunnels an upgrade to the replica and echoes messages both ways, counting the tunnel", async () => {
    const url = await startWebSocketEcho();
    const gw = await startGateway();
    gw.setTable(table([{ release: "r1", url }]));
    const ws = new WebSocket(`${gw.url.replace("http", "ws")}/chat`);
    const messages: string[] = [];
    ws.addEventListener("message", (e) => messages.push(String(e.data)));
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve());
      ws.addEventListener("error", () => reject(new Error("websocket failed")));
    });
    ws.send("hello");
    const big = "x".repeat(70_000);
    ws.send(big);
    await waitFor(() => messages.length === 2, { what: "two echoes" });
    expect(messages[0]).toBe("echo: hello");
    expect(messages[1]).toBe(`echo: ${big}`);
    const metrics = async () => (await request(`${gw.adminUrl}/metrics`)).body.text();
    expect(await metrics()).toContain('keelson_gateway_upgrades_total{service="web",outcome="upgraded"} 1');
    expect(await metrics()).toContain('keelson_gateway_websockets_open{service="web"} 1');
    ws.close();
    await waitFor(async () => !(await metrics()).includes("keelson_gateway_websockets_open{"), { what: "the tunnel to close" });
  });

  it("passes a refused upgrade back and closes the connection, so nothing reaches the replica unrouted", async () => {
    let requests = 0;
    const url = await startReplica("r1", "plain", (req, res) => {
      requests++;
      req.resume();
      res.writeHead(426, { "content-type": "text/plain" }).end("no websockets here");
    });
    const gw = await startGateway();
    gw.setTable(table([{ release: "r1", url }]));
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      // A second request on the same connection must go nowhere.
      socket.write("GET /sneaky HTTP/1.1\r\nHost: x\r\n\r\n");
    });
    await once(socket, "close");
    const answer = Buffer.concat(chunks).toString();
    expect(answer).toMatch(/^HTTP\/1\.1 426/);
    expect(answer).toContain("no websockets here");
    expect(requests).toBe(1);
  });

  it("answers an upgrade for a service without replicas with 503 JSON", async () => {
    const gw = await startGateway();
    gw.setTable(table([]));
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    await once(socket, "close");
    const answer = Buffer.concat(chunks).toString();
    expect(answer).toMatch(/^HTTP\/1\.1 503/);
    expect(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4))).toMatchObject({ error: { code: "KEELSON_ERR_NO_ENDPOINT" } });
  });
});

describe("server-sent events", () => {
  const quiet: ServicePolicy = { ...DEFAULT_SERVICE_POLICY, timeoutMs: 400, perTryTimeoutMs: 400 };

  /** A replica that sends three events 700 ms apart, longer than every timeout of the gateway. */
  async function slowStream(contentType: string): Promise<string> {
    return startReplica("r1", "sse", (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": contentType, "cache-control": "no-cache" });
      res.write("data: one\n\n");
      const t1 = setTimeout(() => res.write("data: two\n\n"), 700);
      const t2 = setTimeout(() => res.end("data: three\n\n"), 1_400);
      res.on("close", () => (clearTimeout(t1), clearTimeout(t2)));
    });
  }

  it("lets events flow for longer than the deadline and the body silence timeout", async () => {
    const gw = await startGateway({ bodyIdleTimeoutMs: 300 });
    gw.setTable(table([{ release: "r1", url: await slowStream("text/event-stream; charset=utf-8") }], { policy: quiet }));
    const t0 = performance.now();
    const res = await request(`${gw.url}/events`, { dispatcher: client });
    expect(res.statusCode).toBe(200);
    const arrivals: Array<[string, number]> = [];
    for await (const chunk of res.body) arrivals.push([Buffer.from(chunk as Buffer).toString(), performance.now() - t0]);
    expect(arrivals.map(([t]) => t).join("")).toBe("data: one\n\ndata: two\n\ndata: three\n\n");
    // Each event arrived as it was sent, not buffered until the end.
    expect(arrivals[0]![1]).toBeLessThan(500);
    expect(arrivals.at(-1)![1]).toBeGreaterThan(1_300);
  });

  it("cuts an ordinary response body that stays silent longer than bodyIdleTimeoutMs", async () => {
    const gw = await startGateway({ bodyIdleTimeoutMs: 300 });
    gw.setTable(table([{ release: "r1", url: await slowStream("text/plain") }], { policy: quiet }));
    const t0 = performance.now();
    const res = await request(`${gw.url}/download`, { dispatcher: client });
    expect(res.statusCode).toBe(200);
    let got = "";
    const err = await (async () => {
      for await (const chunk of res.body) got += Buffer.from(chunk as Buffer).toString();
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(got).toBe("data: one\n\n");
    expect(performance.now() - t0).toBeLessThan(300 + 1_000);
  });
});

/** A minimal WebSocket server (RFC 6455) that echoes text messages with an "echo: " prefix. */
async function startWebSocketEcho(): Promise<string> {
  const server = createServer((req, res) => res.writeHead(400).end());
  const sockets = new Set<Socket>();
  server.on("upgrade", (req: IncomingMessage, socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const accept = createHash("sha1")
      .update(`${req.headers["sec-websocket-key"] as string}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (buffer.length < 2) return;
        const opcode = buffer[0]! & 0x0f;
        let length = buffer[1]! & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffer.length < 4) return;
          length = buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (buffer.length < 10) return;
          length = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (buffer.length < offset + 4 + length) return;
        const mask = buffer.subarray(offset, offset + 4);
        const payload = Buffer.from(buffer.subarray(offset + 4, offset + 4 + length));
        for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
        buffer = buffer.subarray(offset + 4 + length);
        if (opcode === 8) {
          socket.end(frame(8, payload));
          return;
        }
        if (opcode === 1) socket.write(frame(1, Buffer.concat([Buffer.from("echo: "), payload])));
      }
    });
  });
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  return listen(server);
}

function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65_536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (n >= 126 && n < 65_536) {
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else if (n >= 65_536) {
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}
