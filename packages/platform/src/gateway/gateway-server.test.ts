// Tests for the gateway's proxy and admin listeners against real upstream node:http servers
// (and raw TCP servers for broken upstreams) on 127.0.0.1.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
import type { Server as TcpServer, Socket } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import type { CallerRule, ErrorBody, IdentityTrust, RoutingTable, ServicePolicy } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY, KeelsonError } from "@keelson/protocol";
import { freePort, makeTempDir, waitFor } from "#test-support";
import type { Gateway, GatewayOptions, GatewayState } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";
import type { StatsSnapshot } from "./live-stats.js";
import { buildRoutingTable } from "./routing-table.js";
import { createMeshIdentity, type MeshIdentity } from "./fixtures/mesh-identity.js";

// --- fixtures ---

interface Upstream {
  name: string;
  url: string;
  server: Server;
  /** Requests seen, in order. */
  seen: Array<{ method: string; url: string; headers: IncomingMessage["headers"] }>;
  /** TCP connections accepted. */
  connections: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, up: Upstream) => void;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";
let mesh: MeshIdentity;

beforeAll(async () => {
  mesh = await createMeshIdentity("test");
});
afterAll(async () => {
  await mesh.cleanup();
});

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-gateway-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An upstream replica answering `{ name, method, url, headers }`, unless `handler` says otherwise. */
async function startUpstream(name: string, handler?: Handler): Promise<Upstream> {
  const up: Upstream = { name, url: "", server: undefined as unknown as Server, seen: [], connections: 0 };
  const server = createServer((req, res) => {
    up.seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    if (handler) return handler(req, res, up);
    req.resume();
    const body = JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
  // Longer than the gateway pool's idle time, as MACHINE.md advises.
  server.keepAliveTimeout = 10_000;
  server.on("connection", () => up.connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  up.url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  up.server = server;
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return up;
}

/** A raw TCP upstream for answers node:http would refuse to write. */
async function startTcpUpstream(onSocket: (socket: Socket) => void): Promise<{ url: string; server: TcpServer }> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    onSocket(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  cleanups.push(() => new Promise((r) => (sockets.forEach((s) => s.destroy()), server.close(r))));
  return { url: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`, server };
}

async function startGateway(options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir, processMetrics: false, ...options });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

let version = 0;
/** A table with the given services (name → replica URLs), routes and policies. */
function table(
  services: Record<string, string[]>,
  routes: Array<{ service: string; path: string; host?: string; stripPrefix?: boolean; maxBodyBytes?: number }> = [],
  policies: Record<string, ServicePolicy> = {},
  mesh?: { identity: IdentityTrust; callers: Record<string, CallerRule[]> },
): RoutingTable {
  return buildRoutingTable({
    project: "test",
    version: ++version,
    ...(mesh === undefined ? {} : { identity: mesh.identity }),
    services: Object.keys(services).map((name) => ({
      name,
      ...(mesh?.callers[name] === undefined ? {} : { callers: mesh.callers[name] }),
      routes: routes
        .filter((r) => r.service === name)
        .map((r) => ({ path: r.path, host: r.host, stripPrefix: r.stripPrefix ?? false, ...(r.maxBodyBytes === undefined ? {} : { maxBodyBytes: r.maxBodyBytes }) })),
      ...(policies[name] === undefined ? {} : { policy: policies[name] }),
    })),
    endpoints: Object.entries(services).flatMap(([service, urls]) => urls.map((url, i) => ({ service, replicaId: `${service}-${i + 1}`, url, release: "r1" }))),
  });
}

const client = new Agent({ keepAliveTimeout: 1_000 });

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

async function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> {
  const res = await request(url, { dispatcher: client, method: (init.method ?? "GET") as "GET", headers: init.headers, body: init.body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: <T,>() => JSON.parse(text) as T };
}

/** Sends bytes exactly as written and returns the whole answer (the request must ask to close). */
async function raw(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.write(text);
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  await once(socket, "close");
  return Buffer.concat(chunks).toString("latin1");
}

async function canConnect(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  return new Promise((resolve) => {
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

// --- tests ---

describe("routing", () => {
  it("round-robins across two replicas over reused keep-alive connections when the policy says so", async () => {
    const a = await startUpstream("a");
    const b = await startUpstream("b");
    const gw = await startGateway();
    gw.setTable(table({ web: [a.url, b.url] }, [{ service: "web", path: "/" }], { web: { ...DEFAULT_SERVICE_POLICY, loadBalancer: "round-robin" } }));
    const names: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await send(`${gw.url}/hello`);
      expect(r.status).toBe(200);
      names.push(r.json<{ name: string }>().name);
    }
    expect(names).toEqual(["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
    expect(a.connections).toBe(1);
    expect(b.connections).toBe(1);
  });

  it("routes by exact host before any-host routes", async () => {
    const shop = await startUpstream("shop");
    const web = await startUpstream("web");
    const gw = await startGateway();
    gw.setTable(table({ shop: [shop.url], web: [web.url] }, [{ service: "shop", path: "/", host: "shop.example.com" }, { service: "web", path: "/" }]));
    expect((await send(`${gw.url}/x`, { headers: { host: "Shop.Example.com:8080" } })).json().name).toBe("shop");
    expect((await send(`${gw.url}/x`, { headers: { host: "other.example.com" } })).json().name).toBe("web");
    expect((await send(`${gw.url}/x`)).json().name).toBe("web");
  });

  it("strips the route prefix when the route says so and keeps it otherwise", async () => {
    const api = await startUpstream("api");
    const docs = await startUpstream("docs");
    const gw = await startGateway();
    gw.setTable(table({ api: [api.url], docs: [docs.url] }, [{ service: "api", path: "/api", stripPrefix: true }, { service: "docs", path: "/docs" }]));
    expect((await send(`${gw.url}/api/users?page=2`)).json().url).toBe("/users?page=2");
    expect((await send(`${gw.url}/api`)).json().url).toBe("/");
    expect((await send(`${gw.url}/docs/intro`)).json().url).toBe("/docs/intro");
  });

  it("sends a mesh call with x-keelson-service straight to that service, as the verified caller", async () => {
    const internal = await startUpstream("internal");
    const web = await startUpstream("web");
    const gw = await startGateway({ meshPort: 0 });
    gw.setTable(table({ internal: [internal.url], web: [web.url] }, [{ service: "web", path: "/" }], {}, { identity: mesh.trust, callers: { internal: [{ service: "web" }] } }));
    const token = await mesh.tokenFor("web");
    // A claimed caller header is replaced by the verified identity; the identity token is not passed on.
    const r = await send(`${gw.meshUrl}/orders/1`, { headers: { "x-keelson-service": "internal", "x-keelson-caller": "payments", "x-keelson-identity": token } });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ name: "internal", url: "/orders/1" });
    const seen = r.json<{ headers: Record<string, string> }>().headers;
    expect(seen["x-keelson-caller"]).toBe("web");
    expect(seen["x-keelson-identity"]).toBeUndefined();
    expect(web.seen).toHaveLength(0);
  });

  it("checks an external route's API key (by hash) and JWT (against the issuer's public keys)", async () => {
    const up = await startUpstream("api");
    const gw = await startGateway();
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(publicKey)), kty: "EC", kid: "k1", alg: "ES256" };
    gw.setTable(
      buildRoutingTable({
        project: "test",
        version: ++version,
        services: [
          {
            name: "api",
            routes: [
              { path: "/keyed", stripPrefix: false, auth: { apiKey: { header: "x-api-key", sha256: [createHash("sha256").update("k-123").digest("hex")] } } },
              { path: "/jwt", stripPrefix: false, auth: { jwt: { issuer: "https://issuer.test", audience: "shop", jwks: { keys: [jwk] } } } },
              { path: "/open", stripPrefix: false },
            ],
          },
        ],
        endpoints: [{ service: "api", replicaId: "api-1", url: up.url, release: "r1" }],
      }),
    );
    expect((await send(`${gw.url}/open`)).status).toBe(200);
    expect((await send(`${gw.url}/keyed`)).status).toBe(401);
    expect((await send(`${gw.url}/keyed`, { headers: { "x-api-key": "k-124" } })).status).toBe(401);
    expect((await send(`${gw.url}/keyed`, { headers: { "x-api-key": "k-123" } })).status).toBe(200);
    const sign = (claims: { iss?: string; aud?: string; exp?: number }) =>
      new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer(claims.iss ?? "https://issuer.test").setAudience(claims.aud ?? "shop").setExpirationTime(claims.exp ?? "5m").sign(privateKey);
    const missing = await send(`${gw.url}/jwt`);
    expect(missing.status).toBe(401);
    expect(missing.headers["www-authenticate"]).toBe('Bearer realm="keelson"');
    expect((await send(`${gw.url}/jwt`, { headers: { authorization: `Bearer ${await sign({})}` } })).status).toBe(200);
    expect((await send(`${gw.url}/jwt`, { headers: { authorization: `Bearer ${await sign({ iss: "https://evil.test" })}` } })).status).toBe(401);
    expect((await send(`${gw.url}/jwt`, { headers: { authorization: `Bearer ${await sign({ aud: "other" })}` } })).status).toBe(401);
    const expired = await send(`${gw.url}/jwt`, { headers: { authorization: `Bearer ${await sign({ exp: Math.floor(Date.now() / 1000) - 60 })}` } });
    expect(expired.status).toBe(401);
    expect(expired.json<ErrorBody>().error.message).toContain("expired");
    const other = await generateKeyPair("ES256");
    const forged = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer("https://issuer.test").setAudience("shop").setExpirationTime("5m").sign(other.privateKey);
    expect((await send(`${gw.url}/jwt`, { headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);
    // Only the requests with valid credentials reached the service.
    expect(up.seen.map((r) => r.url)).toEqual(["/open", "/keyed", "/jwt"]);
  });

  it("refuses service calls on the public listener, mesh calls without a valid identity (401) and callers the target does not allow (403)", async () => {
    const internal = await startUpstream("internal");
    const gw = await startGateway({ meshPort: 0 });
    gw.setTable(table({ internal: [internal.url], web: [], admin: [] }, [], {}, { identity: mesh.trust, callers: { internal: [{ service: "web", paths: ["/orders"], methods: ["GET"] }] } }));
    const pub = await send(`${gw.url}/orders/1`, { headers: { "x-keelson-service": "internal", "x-keelson-caller": "web" } });
    expect(pub.status).toBe(403);
    expect(pub.json<ErrorBody>().error.code).toBe("KEELSON_ERR_FORBIDDEN");
    const anonymous = await send(`${gw.meshUrl}/orders/1`, { headers: { "x-keelson-service": "internal", "x-keelson-caller": "web" } });
    expect(anonymous.status).toBe(401);
    const forged = await send(`${gw.meshUrl}/orders/1`, { headers: { "x-keelson-service": "internal", "x-keelson-identity": `${(await mesh.tokenFor("web")).slice(0, -4)}AAAA` } });
    expect(forged.status).toBe(401);
    const foreign = await createMeshIdentity("test");
    cleanups.push(() => foreign.cleanup());
    expect((await send(`${gw.meshUrl}/orders/1`, { headers: { "x-keelson-service": "internal", "x-keelson-identity": await foreign.tokenFor("web") } })).status).toBe(401);
    const web = await mesh.tokenFor("web");
    expect((await send(`${gw.meshUrl}/orders/1`, { headers: { "x-keelson-service": "internal", "x-keelson-identity": web } })).status).toBe(200);
    const post = await send(`${gw.meshUrl}/orders/1`, { method: "POST", headers: { "x-keelson-service": "internal", "x-keelson-identity": web } });
    expect(post.status).toBe(403);
    expect(post.json<ErrorBody>().error.message).toContain("services.web.calls");
    const admin = await send(`${gw.meshUrl}/orders/1`, { headers: { "x-keelson-service": "internal", "x-keelson-identity": await mesh.tokenFor("admin") } });
    expect(admin.status).toBe(403);
    expect(internal.seen).toHaveLength(1);
    const metrics = (await send(`${gw.adminUrl}/metrics`)).text;
    expect(metrics).toMatch(/keelson_gateway_rejections_total\{service="internal",reason="policy_denied"\} 2/);
  });

  it("keeps the pools of unchanged endpoints when a new table arrives", async () => {
    const a = await startUpstream("a");
    const gw = await startGateway();
    gw.setTable(table({ web: [a.url] }, [{ service: "web", path: "/" }]));
    await send(`${gw.url}/`);
    gw.setTable(table({ web: [a.url] }, [{ service: "web", path: "/" }, { service: "web", path: "/more" }]));
    await send(`${gw.url}/more`);
    expect(a.seen).toHaveLength(2);
    expect(a.connections).toBe(1);
  });

  it("stops sending to a removed endpoint and lets its in-flight request finish", async () => {
    const release = gate();
    const a = await startUpstream("a");
    const b = await startUpstream("b", (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("started;");
      void release.wait.then(() => res.end("finished"));
    });
    const gw = await startGateway();
    gw.setTable(table({ web: [b.url] }, [{ service: "web", path: "/" }]));
    const slow = send(`${gw.url}/slow`);
    await waitFor(() => b.seen.length === 1, { what: "the slow request to reach b" });

    gw.setTable(table({ web: [a.url] }, [{ service: "web", path: "/" }]));
    for (let i = 0; i < 6; i++) expect((await send(`${gw.url}/fast`)).json().name).toBe("a");
    expect(b.seen).toHaveLength(1);

    release.open();
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.text).toBe("started;finished");
  });
});

describe("streaming", () => {
  it("passes the first chunk of a response on before the upstream has finished", async () => {
    const rest = gate();
    let upstreamEnded = false;
    const up = await startUpstream("stream", (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first chunk\n");
      void rest.wait.then(() => {
        res.end("the rest\n");
        upstreamEnded = true;
      });
    });
    const gw = await startGateway();
    gw.setTable(table({ s: [up.url] }, [{ service: "s", path: "/" }]));
    const res = await request(`${gw.url}/stream`, { dispatcher: client });
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    expect(Buffer.from(first.value as Buffer).toString()).toBe("first chunk\n");
    expect(upstreamEnded).toBe(false);
    rest.open();
    let tail = "";
    for (let next = await it.next(); !next.done; next = await it.next()) tail += Buffer.from(next.value as Buffer).toString();
    expect(tail).toBe("the rest\n");
  });

  it("streams a large upload to the upstream while the client is still sending", async () => {
    let received = 0;
    const hash = createHash("sha256");
    const up = await startUpstream("sink", (req, res) => {
      req.on("data", (c: Buffer) => {
        received += c.length;
        hash.update(c);
      });
      req.on("end", () => res.end(JSON.stringify({ received, sha256: hash.digest("hex") })));
    });
    const gw = await startGateway();
    gw.setTable(table({ sink: [up.url] }, [{ service: "sink", path: "/", maxBodyBytes: 64 * 1024 * 1024 }]));

    const chunk = Buffer.alloc(1024 * 1024, 7);
    const total = 16;
    const expected = createHash("sha256");
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.write(`POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`);
    const writeChunk = (c: Buffer) => {
      socket.write(`${c.length.toString(16)}\r\n`);
      socket.write(c);
      return socket.write("\r\n");
    };
    writeChunk(chunk);
    expected.update(chunk);
    // The upstream holds the first MiB while the client has not sent the rest: nothing waits for the whole body.
    await waitFor(() => received >= chunk.length, { what: "the first MiB at the upstream" });
    for (let i = 1; i < total; i++) {
      expected.update(chunk);
      if (!writeChunk(chunk)) await once(socket, "drain");
    }
    socket.write("0\r\n\r\n");
    const replyChunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => replyChunks.push(c));
    await once(socket, "close");
    const reply = Buffer.concat(replyChunks).toString();
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    const body = JSON.parse(reply.slice(reply.indexOf("\r\n\r\n") + 4).replace(/^[0-9a-f]+\r\n/, "").replace(/\r\n0\r\n\r\n$/, "")) as { received: number; sha256: string };
    expect(body).toEqual({ received: total * chunk.length, sha256: expected.digest("hex") });
  });

  it("applies backpressure: a client that stops reading stops the upstream", async () => {
    const total = 64 * 1024 * 1024;
    let written = 0;
    let blocked = false;
    const up = await startUpstream("big", (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(total) });
      const block = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (written < total) {
          written += block.length;
          if (!res.write(block)) {
            blocked = true;
            res.once("drain", () => {
              blocked = false;
              pump();
            });
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const gw = await startGateway();
    gw.setTable(table({ big: [up.url] }, [{ service: "big", path: "/" }]));
    const res = await request(`${gw.url}/big`, { dispatcher: client, highWaterMark: 64 * 1024 });
    // The client reads nothing: the upstream must end up blocked with most of the body unsent.
    await waitFor(
      async () => {
        const before = written;
        await new Promise((r) => setTimeout(r, 50));
        return blocked && written === before;
      },
      { what: "the upstream to block on a full pipe" },
    );
    expect(written).toBeLessThan(total / 2);
    let got = 0;
    for await (const c of res.body) got += (c as Buffer).length;
    expect(got).toBe(total);
  });
});

describe("headers", () => {
  it("strips hop-by-hop request headers and sets x-forwarded-* and x-request-id", async () => {
    const up = await startUpstream("echo");
    const gw = await startGateway();
    gw.setTable(table({ echo: [up.url] }, [{ service: "echo", path: "/" }]));
    const answer = await raw(
      gw.url,
      [
        "GET /h HTTP/1.1",
        "Host: shop.example.com:8080",
        "Connection: close, X-Private-Hop",
        "X-Private-Hop: secret",
        "Keep-Alive: timeout=99",
        "TE: trailers",
        "Trailer: x-checksum",
        "Proxy-Authorization: Basic abc",
        "Proxy-Connection: keep-alive",
        "Upgrade: h2c",
        "X-Forwarded-For: 203.0.113.9",
        "X-Forwarded-Proto: https",
        "X-Custom: kept",
        "",
        "",
      ].join("\r\n"),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const seen = up.seen[0]!.headers;
    for (const h of ["x-private-hop", "keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection", "upgrade"]) expect(seen[h], h).toBeUndefined();
    expect(seen["connection"]).toBe("keep-alive");
    expect(seen["x-custom"]).toBe("kept");
    expect(seen["x-forwarded-for"]).toBe("203.0.113.9, 127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["x-forwarded-host"]).toBe("shop.example.com:8080");
    expect(seen["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.toLowerCase()).toContain(`x-request-id: ${seen["x-request-id"] as string}`);
  });

  it("keeps a request id the client sent and echoes it", async () => {
    const up = await startUpstream("echo");
    const gw = await startGateway();
    gw.setTable(table({ echo: [up.url] }, [{ service: "echo", path: "/" }]));
    const r = await send(`${gw.url}/`, { headers: { "x-request-id": "abc-123" } });
    expect(r.headers["x-request-id"]).toBe("abc-123");
    expect(up.seen[0]!.headers["x-request-id"]).toBe("abc-123");
  });

  it("strips hop-by-hop response headers, including those the upstream's Connection names", async () => {
    const up = await startTcpUpstream((socket) => {
      socket.once("data", () =>
        socket.end(
          [
            "HTTP/1.1 200 OK",
            "Content-Length: 2",
            "Connection: close, X-Upstream-Hop",
            "X-Upstream-Hop: secret",
            "Keep-Alive: timeout=999",
            "Proxy-Authenticate: Basic",
            "Trailer: x-sum",
            "Upgrade: h2c",
            "X-Request-Id: upstream-made-this",
            "Set-Cookie: a=1",
            "Set-Cookie: b=2",
            "X-Kept: yes",
            "",
            "ok",
          ].join("\r\n"),
        ),
      );
    });
    const gw = await startGateway();
    gw.setTable(table({ t: [up.url] }, [{ service: "t", path: "/" }]));
    const r = await send(`${gw.url}/`, { headers: { "x-request-id": "mine" } });
    expect(r.status).toBe(200);
    expect(r.text).toBe("ok");
    expect(r.headers["x-upstream-hop"]).toBeUndefined();
    expect(r.headers["proxy-authenticate"]).toBeUndefined();
    expect(r.headers["trailer"]).toBeUndefined();
    expect(r.headers["upgrade"]).toBeUndefined();
    // Node's own keep-alive header for the client connection, not the upstream's.
    expect(r.headers["keep-alive"]).not.toBe("timeout=999");
    expect(r.headers["x-request-id"]).toBe("mine");
    expect(r.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(r.headers["x-kept"]).toBe("yes");
  });
});

describe("errors", () => {
  const errorOf = (r: Reply) => r.json<ErrorBody>().error;

  it("answers 503 before any table is loaded", async () => {
    const gw = await startGateway();
    const r = await send(`${gw.url}/`);
    expect(r.status).toBe(503);
    expect(errorOf(r).code).toBe("KEELSON_ERR_NO_ENDPOINT");
  });

  it("answers 404 KEELSON_ERR_NO_ROUTE for a path no route takes and for an unknown service header", async () => {
    const up = await startUpstream("api");
    const gw = await startGateway({ meshPort: 0 });
    gw.setTable(table({ api: [up.url] }, [{ service: "api", path: "/api" }], {}, { identity: mesh.trust, callers: {} }));
    const r = await send(`${gw.url}/nope?x=1`);
    expect(r.status).toBe(404);
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_NO_ROUTE", details: { path: "/nope" } });
    const s = await send(`${gw.meshUrl}/api`, { headers: { "x-keelson-service": "ghost", "x-keelson-identity": await mesh.tokenFor("api") } });
    expect(s.status).toBe(404);
    expect(errorOf(s)).toMatchObject({ code: "KEELSON_ERR_NO_ROUTE", details: { service: "ghost" } });
    expect(errorOf(s).message).toContain('"ghost"');
  });

  it("answers 503 KEELSON_ERR_NO_ENDPOINT naming a service with no ready replica", async () => {
    const gw = await startGateway();
    gw.setTable(table({ orders: [] }, [{ service: "orders", path: "/" }]));
    const r = await send(`${gw.url}/x`);
    expect(r.status).toBe(503);
    expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_NO_ENDPOINT", details: { service: "orders" } });
    expect(errorOf(r).message).toContain('"orders"');
  });

  it("answers 502 KEELSON_ERR_UPSTREAM when the only replica refuses connections", async () => {
    const gw = await startGateway();
    gw.setTable(table({ orders: [`http://127.0.0.1:${await freePort()}`] }, [{ service: "orders", path: "/" }]));
    const r = await send(`${gw.url}/x`);
    expect(r.status).toBe(502);
    expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_UPSTREAM", details: { service: "orders", reason: "ECONNREFUSED" } });
    expect(errorOf(r).message).toBe('service "orders" failed: connection refused');
  });

  it("answers 502 KEELSON_ERR_UPSTREAM for a garbage answer", async () => {
    const up = await startTcpUpstream((socket) => socket.once("data", () => socket.end("this is not HTTP\r\n\r\n")));
    const gw = await startGateway();
    gw.setTable(table({ junk: [up.url] }, [{ service: "junk", path: "/" }]));
    const r = await send(`${gw.url}/`);
    expect(r.status).toBe(502);
    expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_UPSTREAM", details: { service: "junk" } });
  });

  it("answers 502 when the upstream resets every connection, after the policy's two retries of a GET", async () => {
    let accepted = 0;
    const up = await startTcpUpstream((socket) => {
      accepted++;
      socket.once("data", () => socket.resetAndDestroy());
    });
    const gw = await startGateway();
    gw.setTable(table({ flaky: [up.url] }, [{ service: "flaky", path: "/" }]));
    const r = await send(`${gw.url}/`);
    expect(r.status).toBe(502);
    expect(errorOf(r).code).toBe("KEELSON_ERR_UPSTREAM");
    expect(accepted).toBe(3);
  });

  it("answers 504 KEELSON_ERR_UPSTREAM_TIMEOUT when the upstream is too slow", async () => {
    const up = await startUpstream("slow", (req) => req.resume());
    const gw = await startGateway();
    gw.setTable(table({ slow: [up.url] }, [{ service: "slow", path: "/" }], { slow: { ...DEFAULT_SERVICE_POLICY, timeoutMs: 200, perTryTimeoutMs: 200 } }));
    const r = await send(`${gw.url}/`);
    expect(r.status).toBe(504);
    expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_UPSTREAM_TIMEOUT", details: { service: "slow", reason: "deadline" } });
    expect(up.seen).toHaveLength(1);
  });

  it("cuts the client response when the upstream dies mid-body", async () => {
    const up = await startUpstream("dies", (req, res) => {
      req.resume();
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setImmediate(() => res.socket?.destroy());
    });
    const gw = await startGateway();
    gw.setTable(table({ dies: [up.url] }, [{ service: "dies", path: "/" }]));
    await expect(send(`${gw.url}/`)).rejects.toThrow();
  });

  it("answers 400 to a malformed request and keeps serving", async () => {
    const up = await startUpstream("ok");
    const gw = await startGateway();
    gw.setTable(table({ ok: [up.url] }, [{ service: "ok", path: "/" }]));
    expect(await raw(gw.url, "NOT HTTP AT ALL\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw(gw.url, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    expect((await send(`${gw.url}/`)).status).toBe(200);
  });

  it("aborts the upstream request when the client goes away", async () => {
    let upstreamClosed = false;
    const up = await startUpstream("hold", (req, res) => {
      req.resume();
      res.on("close", () => (upstreamClosed = true));
    });
    const gw = await startGateway();
    gw.setTable(table({ hold: [up.url] }, [{ service: "hold", path: "/" }]));
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(() => up.seen.length === 1, { what: "the request at the upstream" });
    socket.destroy();
    await waitFor(() => upstreamClosed, { what: "the upstream request to be aborted" });
  });
});

describe("retries", () => {
  it("retries on the next replica when one refuses connections: no GET and no POST fails", async () => {
    const live = await startUpstream("live");
    const gw = await startGateway();
    gw.setTable(table({ web: [`http://127.0.0.1:${await freePort()}`, live.url] }, [{ service: "web", path: "/" }]));
    for (let i = 0; i < 20; i++) expect((await send(`${gw.url}/get/${i}`)).status).toBe(200);
    // A refused connection means the request never left: even a POST is safe to send again.
    const post = await send(`${gw.url}/post`, { method: "POST", body: "payload", headers: { "content-type": "text/plain" } });
    expect(post.status).toBe(200);
    expect(live.seen.length).toBeGreaterThanOrEqual(21);
  });

  it("retries a GET once when a reused keep-alive connection is reset, but not a POST", async () => {
    // Every second request on a connection finds it reset: the stale keep-alive race.
    const perSocket = new WeakMap<object, number>();
    const up = await startUpstream("racy", (req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n >= 2) {
        req.socket.resetAndDestroy();
        return;
      }
      req.resume();
      res.end("ok");
    });
    const gw = await startGateway();
    gw.setTable(table({ racy: [up.url] }, [{ service: "racy", path: "/" }]));
    for (let i = 0; i < 6; i++) expect((await send(`${gw.url}/`)).status).toBe(200);
    expect(up.seen.length).toBeGreaterThan(6);

    expect((await send(`${gw.url}/`)).status).toBe(200);
    const post = await send(`${gw.url}/`, { method: "POST", body: "x" });
    expect(post.status).toBe(502);
  });
});

describe("admin listener", () => {
  it("serves /healthz, /readyz (503 until a table), /routes and /metrics with process metrics", async () => {
    const up = await startUpstream("web");
    const gw = await startGateway({ processMetrics: true });
    expect((await send(`${gw.adminUrl}/healthz`)).json()).toEqual({ status: "ok" });
    expect((await send(`${gw.adminUrl}/readyz`)).status).toBe(503);
    expect((await send(`${gw.adminUrl}/routes`)).status).toBe(404);

    const t = table({ web: [up.url] }, [{ service: "web", path: "/" }]);
    gw.setTable(t);
    const ready = await send(`${gw.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({ status: "ready", version: t.version, controlPlane: "none" });
    expect((await send(`${gw.adminUrl}/routes`)).json()).toEqual(t);

    const metrics = await send(`${gw.adminUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain(`keelson_gateway_routing_table_version ${t.version}`);
    expect(metrics.text).toContain("process_cpu_user_seconds_total");
    expect((await send(`${gw.adminUrl}/nope`)).status).toBe(404);
    expect((await send(`${gw.adminUrl}/healthz`, { method: "POST" })).status).toBe(405);
  });

  it("counts requests by service, version, route, replica and status class", async () => {
    const up = await startUpstream("web");
    const gw = await startGateway({ meshPort: 0 });
    gw.setTable(table({ web: [up.url], empty: [] }, [{ service: "web", path: "/" }], {}, { identity: mesh.trust, callers: { empty: [{ service: "web" }] } }));
    const identity = await mesh.tokenFor("web");
    const scrape = async () => (await send(`${gw.adminUrl}/metrics`)).text;
    const count = (text: string, labels: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`keelson_gateway_requests_total{${labels}}`));
      return line === undefined ? 0 : Number(line.split(" ").pop());
    };
    const before = await scrape();
    for (let i = 0; i < 3; i++) await send(`${gw.url}/`);
    await send(`${gw.meshUrl}/`, { headers: { "x-keelson-service": "empty", "x-keelson-identity": identity } });
    await send(`${gw.meshUrl}/`, { headers: { "x-keelson-service": "not-a-service", "x-keelson-identity": identity } });
    const after = await scrape();
    const web = 'service="web",version="r1",route="/",replica="web-1",code_class="2xx"';
    expect(count(after, web) - count(before, web)).toBe(3);
    expect(count(after, 'service="empty",version="none",route="internal",replica="none",code_class="5xx"')).toBe(1);
    expect(count(after, 'service="_unrouted",version="none",route="none",replica="none",code_class="4xx"')).toBe(1);
    expect(after).not.toContain("not-a-service");
    expect(after).toMatch(/keelson_gateway_request_duration_seconds_count\{service="web",version="r1",route="\/"\} 3/);
    expect(after).toMatch(/keelson_gateway_request_duration_seconds_bucket\{service="web",version="r1",route="\/",le="\+Inf"\} 3/);
  });
});

describe("lifecycle", () => {
  it("rejects a taken port with KEELSON_ERR_PORT_IN_USE naming the field", async () => {
    const first = await startGateway();
    const port = Number(new URL(first.url).port);
    const second = createGateway({ host: "127.0.0.1", port, adminPort: 0, stateDir, processMetrics: false });
    const err = await second.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_PORT_IN_USE");
    expect((err as KeelsonError).message).toBe(`gateway.port: 127.0.0.1:${port} is already in use`);
  });

  it("drains: stops accepting but lets an in-flight request finish", async () => {
    const release = gate();
    const up = await startUpstream("slow", (req, res) => {
      req.resume();
      void release.wait.then(() => res.end("done"));
    });
    const gw = await startGateway();
    gw.setTable(table({ slow: [up.url] }, [{ service: "slow", path: "/" }]));
    const inflight = send(`${gw.url}/`);
    await waitFor(() => up.seen.length === 1, { what: "the request at the upstream" });
    const stopped = gw.stop({ drainMs: 10_000 });
    await waitFor(() => send(`${gw.adminUrl}/readyz`).then((r) => r.status === 503, () => false), { what: "readyz to report draining" });
    expect(await canConnect(gw.url)).toBe(false);
    release.open();
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(r.text).toBe("done");
    expect(r.headers["connection"]).toBe("close");
    await stopped;
  });
});

describe("edge protection", () => {
  /** Writes `text`, then reads until the gateway closes; errors from writing into a closed socket are expected. */
  async function exchange(url: string, write: (socket: ReturnType<typeof connect>) => void): Promise<{ text: string; ms: number }> {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    socket.on("error", () => undefined);
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    write(socket);
    await once(socket, "close");
    return { text: Buffer.concat(chunks).toString("latin1"), ms: performance.now() - t0 };
  }
  const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as ErrorBody;
  const errorOf = (r: Reply) => r.json<ErrorBody>().error;

  it("answers 413 before forwarding anything when Content-Length is over the route's limit", async () => {
    const up = await startUpstream("sink");
    const gw = await startGateway();
    gw.setTable(table({ sink: [up.url] }, [{ service: "sink", path: "/", maxBodyBytes: 1_024 }]));
    const r = await send(`${gw.url}/upload`, { method: "POST", body: Buffer.alloc(2_000, 1) });
    expect(r.status).toBe(413);
    expect(errorOf(r)).toMatchObject({ code: "KEELSON_ERR_PAYLOAD_TOO_LARGE", details: { limit: 1_024 } });
    expect(r.headers["connection"]).toBe("close");
    expect(up.seen).toHaveLength(0);
    expect((await send(`${gw.url}/upload`, { method: "POST", body: Buffer.alloc(1_024, 1) })).status).toBe(200);
  });

  it("answers 413 when a chunked body grows past the limit mid-stream", async () => {
    const up = await startUpstream("sink", (req, res) => {
      req.resume();
      req.on("end", () => res.end("read it all"));
    });
    const gw = await startGateway();
    gw.setTable(table({ sink: [up.url] }, [{ service: "sink", path: "/", maxBodyBytes: 1_024 }]));
    const { text } = await exchange(gw.url, (socket) => {
      socket.write("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (let i = 0; i < 8; i++) socket.write(`200\r\n${"a".repeat(512)}\r\n`);
    });
    expect(text).toMatch(/^HTTP\/1\.1 413/);
    expect(bodyOf(text).error).toMatchObject({ code: "KEELSON_ERR_PAYLOAD_TOO_LARGE", details: { limit: 1_024 } });
  });

  it("answers 431 with JSON to headers larger than maxHeaderBytes", async () => {
    const up = await startUpstream("ok");
    const gw = await startGateway({ maxHeaderBytes: 8 * 1024 });
    gw.setTable(table({ ok: [up.url] }, [{ service: "ok", path: "/" }]));
    const { text } = await exchange(gw.url, (socket) => socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(10_000)}\r\n\r\n`));
    expect(text).toMatch(/^HTTP\/1\.1 431/);
    expect(bodyOf(text).error.code).toBe("KEELSON_ERR_HEADERS_TOO_LARGE");
    expect(up.seen).toHaveLength(0);
    expect((await send(`${gw.url}/`)).status).toBe(200);
  });

  it("answers 408 and closes a connection that trickles its headers (slowloris)", async () => {
    const up = await startUpstream("ok");
    const gw = await startGateway({ headersTimeoutMs: 300, connectionsCheckingIntervalMs: 50 });
    gw.setTable(table({ ok: [up.url] }, [{ service: "ok", path: "/" }]));
    let writes = 0;
    const { text, ms } = await exchange(gw.url, (socket) => {
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n");
      const timer = setInterval(() => {
        // Bounded: the gateway must cut it long before 50 header lines.
        if (socket.destroyed || ++writes > 50) return clearInterval(timer), socket.destroy();
        socket.write(`X-Slow-${writes}: 1\r\n`);
      }, 100);
      socket.on("close", () => clearInterval(timer));
    });
    expect(text).toMatch(/^HTTP\/1\.1 408/);
    expect(bodyOf(text).error.code).toBe("KEELSON_ERR_REQUEST_TIMEOUT");
    expect(ms).toBeLessThan(2_000);
    expect(writes).toBeLessThan(20);
    expect(up.seen).toHaveLength(0);
  });

  it("answers malformed requests, a missing Host and CONNECT with JSON errors", async () => {
    const up = await startUpstream("ok");
    const gw = await startGateway();
    gw.setTable(table({ ok: [up.url] }, [{ service: "ok", path: "/" }]));
    const garbage = await exchange(gw.url, (s) => s.write("NOT HTTP AT ALL\r\n\r\n"));
    expect(garbage.text).toMatch(/^HTTP\/1\.1 400/);
    expect(bodyOf(garbage.text).error.code).toBe("KEELSON_ERR_INVALID_INPUT");
    const noHost = await exchange(gw.url, (s) => s.write("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    expect(noHost.text).toMatch(/^HTTP\/1\.1 400/);
    expect(bodyOf(noHost.text).error.message).toContain("Host");
    const http10 = await exchange(gw.url, (s) => s.write("GET / HTTP/1.0\r\n\r\n"));
    expect(http10.text).toMatch(/^HTTP\/1\.1 200/);
    const tunnel = await exchange(gw.url, (s) => s.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"));
    expect(tunnel.text).toMatch(/^HTTP\/1\.1 405/);
    expect(up.seen).toHaveLength(1);
    const metrics = (await send(`${gw.adminUrl}/metrics`)).text;
    expect(metrics).toContain('keelson_gateway_client_errors_total{reason="bad_request"} 1');
  });

  it("keeps other services fast while one hangs behind its bulkhead", async () => {
    const stuck = await startUpstream("stuck", (req) => req.resume());
    const fine = await startUpstream("fine");
    const gw = await startGateway();
    gw.setTable(
      table({ stuck: [stuck.url], fine: [fine.url] }, [{ service: "stuck", path: "/stuck" }, { service: "fine", path: "/" }], {
        stuck: { ...DEFAULT_SERVICE_POLICY, timeoutMs: 1_500, perTryTimeoutMs: 1_500, bulkhead: { maxConcurrent: 5, maxQueue: 0, queueTimeoutMs: 100 } },
      }),
    );
    const hung = Array.from({ length: 20 }, () => send(`${gw.url}/stuck`));
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) expect((await send(`${gw.url}/ok`)).status).toBe(200);
    const fineMs = performance.now() - t0;
    const statuses = (await Promise.all(hung)).map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 503)).toHaveLength(15);
    expect(statuses.filter((s) => s === 504)).toHaveLength(5);
    // 100 requests to the healthy service did not wait for the stuck one's 1.5 s deadline.
    expect(fineMs).toBeLessThan(1_500);
    expect(stuck.seen).toHaveLength(5);
  });

  it("closes an idle keep-alive connection after keepAliveTimeoutMs", async () => {
    const up = await startUpstream("ok");
    const gw = await startGateway({ keepAliveTimeoutMs: 200 });
    gw.setTable(table({ ok: [up.url] }, [{ service: "ok", path: "/" }]));
    const { text, ms } = await exchange(gw.url, (s) => s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text.toLowerCase()).toContain("keep-alive: timeout=");
    // Closed by the gateway, not by the client (which never closes).
    expect(ms).toBeGreaterThanOrEqual(150);
    expect(ms).toBeLessThan(200 + 1_500);
  });

  it("leaks no sockets or in-flight slots after resets, garbage, aborts and refusals", async () => {
    const reset = await startTcpUpstream((socket) => socket.once("data", () => socket.resetAndDestroy()));
    const slow = await startUpstream("slow", (req) => req.resume());
    const gw = await startGateway();
    gw.setTable(table({ reset: [reset.url], slow: [slow.url] }, [{ service: "reset", path: "/reset" }, { service: "slow", path: "/slow", maxBodyBytes: 10 }]));
    const bad = [
      "GET /reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "BROKEN\r\n\r\n",
      `GET /slow HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20_000)}\r\n\r\n`,
      "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
    ];
    for (let round = 0; round < 5; round++) for (const text of bad) await exchange(gw.url, (s) => s.write(text));
    // Clients that give up mid-request.
    for (let i = 0; i < 5; i++) {
      const { port } = new URL(gw.url);
      const s = connect(Number(port), "127.0.0.1");
      s.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(() => slow.seen.length === i + 1, { what: "the request at the slow upstream" });
      s.destroy();
    }
    const state = await waitFor(
      async () => {
        const s = JSON.parse((await send(`${gw.adminUrl}/state`)).text) as GatewayState;
        // The admin request's own connection is not on the public listener.
        return s.connections.clients === 0 && s.services.every((x) => x.inflight === 0 && x.endpoints.every((e) => e.inflight === 0)) ? s : undefined;
      },
      { what: "every client socket closed and nothing in flight" },
    );
    expect(state.connections).toEqual({ clients: 0, tunnels: 0 });
    expect((await send(`${gw.url}/reset`)).status).toBe(502);
  });
});

describe("admin state and stats", () => {
  it("shows endpoints, breaker, bulkhead and split per service on /state", async () => {
    const a = await startUpstream("a");
    const gw = await startGateway();
    const t = buildRoutingTable({
      project: "test",
      version: ++version,
      services: [
        {
          name: "web",
          routes: [{ path: "/", stripPrefix: false }],
          policy: { ...DEFAULT_SERVICE_POLICY, bulkhead: { maxConcurrent: 10, maxQueue: 5, queueTimeoutMs: 100 } },
          split: { sticky: false, weights: [{ release: "r1", weight: 100, label: "stable" }] },
        },
      ],
      endpoints: [{ service: "web", replicaId: "web-1", url: a.url, release: "r1" }],
    });
    gw.setTable(t);
    for (let i = 0; i < 4; i++) await send(`${gw.url}/`);
    const state = JSON.parse((await send(`${gw.adminUrl}/state`)).text) as GatewayState;
    expect(state.version).toBe(t.version);
    const web = state.services.find((s) => s.name === "web")!;
    expect(web).toMatchObject({
      loadBalancer: "p2c-ewma",
      inflight: 0,
      split: { sticky: false, weights: [{ release: "r1", weight: 100, label: "stable" }] },
      breaker: { state: "closed", requests: 4, failures: 0 },
      bulkhead: { active: 0, queued: 0, maxConcurrent: 10, maxQueue: 5 },
      retryBudget: { requests: 4, retries: 0 },
    });
    expect(web.endpoints).toEqual([
      { replicaId: "web-1", url: a.url, release: "r1", inflight: 0, ewmaMs: expect.any(Number), consecutiveFailures: 0, ejected: false, timesEjected: 0 },
    ]);
    expect(web.endpoints[0]!.ewmaMs).toBeGreaterThan(0);
    expect(gw.state()).toMatchObject({ version: t.version, services: [{ name: "web" }] });
  });

  it("serves the rolling window per service, version and replica on /stats", async () => {
    const a = await startUpstream("a");
    const b = await startUpstream("b", (req, res) => (req.resume(), res.writeHead(500).end()));
    const gw = await startGateway();
    gw.setTable(
      table({ web: [a.url, b.url] }, [{ service: "web", path: "/" }], {
        web: { ...DEFAULT_SERVICE_POLICY, loadBalancer: "round-robin", outlierEjection: { ...DEFAULT_SERVICE_POLICY.outlierEjection, consecutiveFailures: 100 }, circuitBreaker: undefined },
      }),
    );
    for (let i = 0; i < 10; i++) await send(`${gw.url}/`);
    const stats = JSON.parse((await send(`${gw.adminUrl}/stats?window=10`)).text) as StatsSnapshot;
    expect(stats.windowSeconds).toBe(10);
    // A gateway started moments ago has seen only part of the window.
    expect(stats.coveredSeconds).toBeGreaterThan(0);
    expect(stats.coveredSeconds).toBeLessThan(10);
    expect(stats.series.map((s) => [s.replica, s.requests, s.errors])).toEqual([
      ["web-1", 5, 0],
      ["web-2", 5, 5],
    ]);
    expect(stats.versions).toEqual([expect.objectContaining({ service: "web", version: "r1", replicas: 2, requests: 10, errors: 5, errorRate: 0.5 })]);
    expect(stats.series[0]!.latencyMs!.p50).toBeGreaterThan(0);
    expect(gw.stats(10).versions[0]!.requests).toBe(10);
    expect((await send(`${gw.adminUrl}/stats?window=0`)).status).toBe(400);
  });
});
