// Probes of replicas that serve HTTPS (`tls: true`): the check presents the control plane's
// client certificate and trusts only the project's CA; without it the replica cannot be probed.
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { createIdentityIssuer, loadOrCreateCa, serviceOfCertificate, type IdentityIssuer } from "../security/index.js";
import { checkHttp, readProbeTls, startProbeLoops } from "./replica-probes.js";
import type { ReplicaSpec } from "./runtime-driver.js";

describe("https probes", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let issuer: IdentityIssuer;
  let server: Server;
  let port: number;
  let clientDir: string;
  const callers: (string | undefined)[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-probe-tls-"));
    const ca = await loadOrCreateCa({ dir: join(dir, "ca"), trustDomain: "shop" });
    issuer = createIdentityIssuer({ ca, stateDir: dir, ttlMs: 3_600_000, mtls: true });
    const replicaDir = (await issuer.ensure("orders")).tlsDir as string;
    clientDir = (await issuer.ensure("keelson-controlplane")).tlsDir as string;
    const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => readFile(join(replicaDir, f), "utf8")));
    server = createServer({ cert, key, ca: caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      callers.push(serviceOfCertificate((req.socket as TLSSocket).getPeerCertificate(), "shop"));
      res.statusCode = req.url === "/ready" ? 200 : 503;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
    callers.length = 0;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await cleanup();
  });

  it("passes with the control plane's certificate and reports the status otherwise", async () => {
    const tls = await readProbeTls(clientDir);
    expect(await checkHttp(port, "/ready", 2000, tls)).toEqual({ ok: true });
    expect(await checkHttp(port, "/other", 2000, tls)).toEqual({ ok: false, reason: "GET /other answered 503" });
    expect(callers).toEqual(["keelson-controlplane", "keelson-controlplane"]);
  });

  it("fails over plain HTTP and without a client certificate", async () => {
    expect((await checkHttp(port, "/ready", 2000)).ok).toBe(false);
    const { cert: _cert, key: _key, ...caOnly } = await readProbeTls(clientDir);
    expect((await checkHttp(port, "/ready", 2000, { ...caOnly, cert: "", key: "" })).ok).toBe(false);
    expect(callers).toEqual([]);
  });

  it("re-reads the certificate files when they are renewed", async () => {
    const first = await readProbeTls(clientDir);
    expect(await readProbeTls(clientDir)).toBe(first);
    await issuer.forget("keelson-controlplane");
    await issuer.ensure("keelson-controlplane");
    const second = await readProbeTls(clientDir);
    expect(second.cert).not.toBe(first.cert);
    expect(await checkHttp(port, "/ready", 2000, second)).toEqual({ ok: true });
  });

  it("a probe loop of a spec with tls becomes ready", async () => {
    const spec = {
      id: "orders-r1-0",
      port,
      readiness: { path: "/ready", intervalMs: 50, timeoutMs: 1000, failureThreshold: 3 },
      liveness: undefined,
      tls: { clientDir },
    } as unknown as ReplicaSpec;
    let ready = false;
    const stop = startProbeLoops({ spec, onReady: () => (ready = true), onUnready: () => undefined, onLivenessFailed: () => undefined });
    try {
      await waitFor(() => (ready ? true : undefined), { timeoutMs: 5000, what: "the replica to be ready" });
    } finally {
      stop();
    }
    expect(callers[0]).toBe("keelson-controlplane");
  });

  it("a probe loop without tls never gets a TLS replica ready", async () => {
    const spec = {
      id: "orders-r1-0",
      port,
      readiness: { path: "/ready", intervalMs: 20, timeoutMs: 500, failureThreshold: 3 },
      liveness: undefined,
    } as unknown as ReplicaSpec;
    let ready = false;
    let checks = 0;
    server.on("tlsClientError", () => checks++);
    const stop = startProbeLoops({ spec, onReady: () => (ready = true), onUnready: () => undefined, onLivenessFailed: () => undefined });
    try {
      await waitFor(() => (checks >= 3 ? true : undefined), { timeoutMs: 5000, what: "three refused probes" });
    } finally {
      stop();
    }
    expect(ready).toBe(false);
  });

  it("a loop that starts ready (an adopted replica) says nothing while it passes, and unready only after the threshold", async () => {
    let readyCalls = 0;
    const unready: string[] = [];
    const passing = { spec: { id: "orders-r1-0", port, readiness: { path: "/ready", intervalMs: 20, timeoutMs: 1000, failureThreshold: 3 }, liveness: undefined, tls: { clientDir } } as unknown as ReplicaSpec };
    let stop = startProbeLoops({ ...passing, initiallyReady: true, onReady: () => readyCalls++, onUnready: (r) => unready.push(r), onLivenessFailed: () => undefined });
    try {
      await waitFor(() => (callers.length >= 3 ? true : undefined), { timeoutMs: 5000, what: "three passing probes" });
    } finally {
      stop();
    }
    expect(readyCalls).toBe(0);
    expect(unready).toEqual([]);
    callers.length = 0;
    const failing = { spec: { ...passing.spec, readiness: { path: "/nope", intervalMs: 20, timeoutMs: 1000, failureThreshold: 3 } } as unknown as ReplicaSpec };
    stop = startProbeLoops({ ...failing, initiallyReady: true, onReady: () => readyCalls++, onUnready: (r) => unready.push(r), onLivenessFailed: () => undefined });
    try {
      await waitFor(() => (unready.length > 0 ? true : undefined), { timeoutMs: 5000, what: "the loop to report unready" });
    } finally {
      stop();
    }
    expect(callers.length).toBeGreaterThanOrEqual(3);
    expect(unready[0]).toMatch(/^readiness failed 3 times: GET \/nope answered 503/);
    expect(readyCalls).toBe(0);
  });
});
