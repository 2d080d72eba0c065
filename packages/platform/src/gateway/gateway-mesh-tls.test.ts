// The mesh listener over mutual TLS: a service's certificate from the project's CA is its
// identity; no certificate, or one from another CA, never completes the handshake; renewed
// certificates are picked up without a restart.
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { createServer, type Server } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { buildRoutingTable } from "./routing-table.js";
import { createGateway, type Gateway } from "./gateway-server.js";
import { makeTempDir, waitFor } from "#test-support";
import { createIdentityIssuer, loadOrCreateCa, type CertificateAuthority } from "../security/index.js";
import type { IdentityTrust } from "@keelson/protocol";

describe("mesh listener over mTLS", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let ca: CertificateAuthority;
  let gw: Gateway;
  let upstream: Server;
  let upstreamUrl: string;
  const agents: Agent[] = [];

  const agentFor = async (tlsDir: string) => {
    const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => readFile(join(tlsDir, f), "utf8")));
    const agent = new Agent({ connect: { cert, key, ca: caPem, servername: "localhost" } });
    agents.push(agent);
    return agent;
  };
  const call = async (agent: Agent | undefined, service = "api") => {
    const res = await request(`${gw.meshUrl}/data`, { ...(agent ? { dispatcher: agent } : {}), headers: { "x-keelson-service": service } });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-mesh-tls-"));
    ca = await loadOrCreateCa({ dir: join(dir, "ca"), trustDomain: "shop" });
    upstream = createServer((req, res) => res.end(JSON.stringify({ caller: req.headers["x-keelson-caller"] ?? null })));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close();
    await gw?.stop({ drainMs: 100 });
    await new Promise((r) => upstream.close(r));
    await cleanup();
  });

  async function start(issuer: ReturnType<typeof createIdentityIssuer>) {
    const gatewayTls = await issuer.ensure("keelson-gateway");
    gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, meshPort: 0, meshTls: { dir: gatewayTls.tlsDir as string, reloadIntervalMs: 50 }, stateDir: join(dir, "gw"), processMetrics: false });
    await gw.start();
    const trust: IdentityTrust = { trustDomain: "shop", jwks: ca.jwks() as unknown as IdentityTrust["jwks"], caPem: ca.caPem(), mtls: true };
    gw.setTable(
      buildRoutingTable({
        project: "shop",
        version: 1,
        identity: trust,
        services: [{ name: "api", routes: [], callers: [{ service: "web" }] }],
        endpoints: [{ service: "api", replicaId: "api-1", url: upstreamUrl, release: "r1" }],
      }),
    );
  }

  it("takes the caller from its certificate, enforces the call policy, and refuses certificates it cannot trust", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir: dir, ttlMs: 3_600_000, mtls: true });
    await start(issuer);
    expect(gw.meshUrl).toMatch(/^https:\/\//);
    const web = await agentFor((await issuer.ensure("web")).tlsDir as string);
    expect(await call(web)).toEqual({ status: 200, body: { caller: "web" } });
    const batch = await agentFor((await issuer.ensure("batch")).tlsDir as string);
    expect((await call(batch)).status).toBe(403);

    // No client certificate, or one from another project's CA: no handshake, no request.
    await expect(call(undefined)).rejects.toThrow();
    const other = await loadOrCreateCa({ dir: join(dir, "other-ca"), trustDomain: "shop" });
    const foreign = createIdentityIssuer({ ca: other, stateDir: join(dir, "foreign"), ttlMs: 3_600_000, mtls: true });
    const stranger = await agentFor((await foreign.ensure("web")).tlsDir as string);
    await expect(call(stranger)).rejects.toThrow();
  });

  it("serves a renewed gateway certificate without a restart", async () => {
    let t = Date.now();
    const issuer = createIdentityIssuer({ ca, stateDir: dir, ttlMs: 60_000, mtls: true, now: () => t });
    await start(issuer);
    const web = await agentFor((await issuer.ensure("web")).tlsDir as string);
    const first = await waitFor(async () => {
      const res = await request(`${gw.meshUrl}/data`, { dispatcher: web, headers: { "x-keelson-service": "api" } });
      await res.body.dump();
      return res.statusCode === 200 ? true : undefined;
    });
    expect(first).toBe(true);
    const before = await readFile(join(dir, "identity", "keelson-gateway", "cert.pem"), "utf8");
    t += 50_000;
    expect(await issuer.renewDue()).toEqual(expect.arrayContaining(["keelson-gateway", "web"]));
    const after = await readFile(join(dir, "identity", "keelson-gateway", "cert.pem"), "utf8");
    expect(after).not.toBe(before);
    // New connections get the new certificate once the gateway has re-read it.
    const [cert, key] = await Promise.all(["cert.pem", "key.pem"].map((f) => readFile(join(dir, "identity", "web", f), "utf8")));
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: "127.0.0.1", port: Number(new URL(gw.meshUrl as string).port), cert, key, ca: ca.caPem(), servername: "localhost" }, () => {
          const served = socket.getPeerX509Certificate()?.serialNumber ?? "";
          socket.end();
          resolve(served);
        });
        socket.once("error", reject);
      });
    const wanted = new X509Certificate(after).serialNumber;
    expect(wanted).not.toBe(new X509Certificate(before).serialNumber);
    await waitFor(async () => ((await servedSerial()) === wanted ? true : undefined), { timeoutMs: 5_000, what: "the renewed certificate" });
  });
});
