// Replicas that serve HTTPS (`tls: true`): the gateway reaches them with its own certificate and
// accepts only a replica whose certificate is that service's SPIFFE id; plain HTTP never reaches
// them; without a certificate of its own the gateway skips https endpoints.
import { readFile } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect as netConnect } from "node:net";
import type { Duplex } from "node:stream";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { request } from "undici";
import { DEFAULT_SERVICE_POLICY, type IdentityTrust } from "@keelson/protocol";
import { makeTempDir, waitFor } from "#test-support";
import { createIdentityIssuer, loadOrCreateCa, serviceOfCertificate, type CertificateAuthority, type IdentityIssuer } from "../security/index.js";
import { createGateway, type Gateway } from "./gateway-server.js";
import { buildRoutingTable } from "./routing-table.js";

describe("gateway to replicas over mutual TLS", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let ca: CertificateAuthority;
  let issuer: IdentityIssuer;
  let gw: Gateway | undefined;
  const servers: Server[] = [];

  /** An https replica with `service`'s certificate that requires a client certificate of the CA and names the caller. */
  async function replica(service: string): Promise<number> {
    const tlsDir = (await issuer.ensure(service)).tlsDir as string;
    const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => readFile(join(tlsDir, f), "utf8")));
    const server = createServer({ cert, key, ca: caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = serviceOfCertificate((req.socket as TLSSocket).getPeerCertificate(), "shop");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ served: service, peer: peer ?? null, path: req.url }));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as { port: number }).port;
  }

  async function gateway(withTls: boolean, endpoints: { service: string; url: string }[]): Promise<Gateway> {
    const gatewayDir = (await issuer.ensure("keelson-gateway")).tlsDir as string;
    gw = createGateway({
      host: "127.0.0.1",
      port: 0,
      adminPort: 0,
      stateDir: join(dir, "gw"),
      processMetrics: false,
      ...(withTls ? { meshPort: 0, meshTls: { dir: gatewayDir, reloadIntervalMs: 50 } } : {}),
    });
    await gw.start();
    const trust: IdentityTrust = { trustDomain: "shop", jwks: ca.jwks() as unknown as IdentityTrust["jwks"], caPem: ca.caPem(), mtls: true };
    const services = [...new Set(endpoints.map((e) => e.service))];
    gw.setTable(
      buildRoutingTable({
        project: "shop",
        version: 1,
        identity: trust,
        services: services.map((name) => ({ name, routes: [{ path: `/${name}`, stripPrefix: true }], policy: { ...DEFAULT_SERVICE_POLICY, retries: { ...DEFAULT_SERVICE_POLICY.retries, attempts: 0 } } })),
        endpoints: endpoints.map((e, i) => ({ service: e.service, replicaId: `${e.service}-${i}`, url: e.url, release: "r1" })),
      }),
    );
    return gw;
  }

  const get = async (path: string) => {
    const res = await request(`${(gw as Gateway).url}${path}`);
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-upstream-tls-"));
    ca = await loadOrCreateCa({ dir: join(dir, "ca"), trustDomain: "shop" });
    issuer = createIdentityIssuer({ ca, stateDir: dir, ttlMs: 3_600_000, mtls: true });
  });
  afterEach(async () => {
    await gw?.stop({ drainMs: 100 });
    gw = undefined;
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    await cleanup();
  });

  it("reaches an https replica with the gateway's certificate", async () => {
    const port = await replica("orders");
    await gateway(true, [{ service: "orders", url: `https://127.0.0.1:${port}` }]);
    expect(await get("/orders/list")).toEqual({ status: 200, body: { served: "orders", peer: "keelson-gateway", path: "/list" } });
  });

  it("refuses a replica whose certificate is another service's (502)", async () => {
    // The table says "billing" is there, but the server presents the certificate of "orders".
    const port = await replica("orders");
    await gateway(true, [{ service: "billing", url: `https://127.0.0.1:${port}` }]);
    const res = await get("/billing/pay");
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ error: { code: "KEELSON_ERR_UPSTREAM" } });
  });

  it("cannot reach an https replica over plain HTTP, through the gateway or directly", async () => {
    const port = await replica("orders");
    await gateway(true, [{ service: "orders", url: `http://127.0.0.1:${port}` }]);
    const res = await get("/orders/list");
    expect(res.status).toBe(502);
    const direct = await new Promise<number | string>((resolve) => {
      const req = httpRequest(`http://127.0.0.1:${port}/list`, { agent: false }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
    expect(direct).not.toBe(200);
  });

  it("skips https endpoints when the gateway has no certificate to present", async () => {
    const port = await replica("orders");
    await gateway(false, [{ service: "orders", url: `https://127.0.0.1:${port}` }]);
    const res = await get("/orders/list");
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: { code: "KEELSON_ERR_NO_ENDPOINT" } });
  });

  it("tunnels WebSocket upgrades over TLS, to the right service only", async () => {
    const tlsDir = (await issuer.ensure("chat")).tlsDir as string;
    const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => readFile(join(tlsDir, f), "utf8")));
    const server = createServer({ cert, key, ca: caPem, requestCert: true, rejectUnauthorized: true }, (_req, res) => res.writeHead(400).end());
    const upgraded = new Set<Duplex>();
    server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
      upgraded.add(socket);
      socket.on("error", () => socket.destroy());
      const peer = serviceOfCertificate((req.socket as TLSSocket).getPeerCertificate(), "shop");
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Peer: ${peer ?? "none"}\r\n\r\n`);
      socket.pipe(socket);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
    await gateway(true, [
      { service: "chat", url },
      // The same server under another service's name: its certificate says "chat".
      { service: "impostor", url },
    ]);
    const upgrade = async (path: string) => {
      const socket = netConnect(Number(new URL((gw as Gateway).url).port), "127.0.0.1");
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
      let text = "";
      try {
        for await (const chunk of socket) {
          text += (chunk as Buffer).toString("latin1");
          if (text.includes("\r\n\r\n") && !text.startsWith("HTTP/1.1 101")) break;
          if (text.startsWith("HTTP/1.1 101") && text.endsWith("\r\n\r\n")) socket.write("ping");
          if (text.endsWith("ping")) break;
        }
      } finally {
        socket.destroy();
      }
      return text;
    };
    const ok = await upgrade("/chat/ws");
    expect(ok).toMatch(/^HTTP\/1\.1 101/);
    expect(ok).toMatch(/\r\nx-peer: keelson-gateway\r\n/i);
    expect(ok.endsWith("ping")).toBe(true);
    expect(await upgrade("/impostor/ws")).toMatch(/^HTTP\/1\.1 502/);
    for (const s of upgraded) s.destroy();
  });

  it("presents the renewed gateway certificate on new connections", async () => {
    let t = Date.now();
    issuer = createIdentityIssuer({ ca, stateDir: dir, ttlMs: 60_000, mtls: true, now: () => t });
    const seen: string[] = [];
    const tlsDir = (await issuer.ensure("orders")).tlsDir as string;
    const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => readFile(join(tlsDir, f), "utf8")));
    const server = createServer({ cert, key, ca: caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seen.push((req.socket as TLSSocket).getPeerX509Certificate()?.serialNumber ?? "");
      // A fresh connection for every request, so each one shows the certificate presented now.
      res.setHeader("connection", "close");
      res.end("{}");
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    await gateway(true, [{ service: "orders", url: `https://127.0.0.1:${(server.address() as { port: number }).port}` }]);
    expect((await get("/orders/a")).status).toBe(200);
    const first = seen[0];
    t += 50_000;
    expect(await issuer.renewDue()).toContain("keelson-gateway");
    await waitFor(
      async () => {
        expect((await get("/orders/b")).status).toBe(200);
        return seen.at(-1) !== first ? true : undefined;
      },
      { timeoutMs: 5_000, what: "the renewed gateway certificate" },
    );
  });
});
