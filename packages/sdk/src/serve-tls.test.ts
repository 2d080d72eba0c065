// serve() for a service with `tls: true`: HTTPS with the replica's certificate, only the gateway's
// and the control plane's client certificates let in, renewed files served without a restart.
// Certificates are made by openssl (the SDK does not import the platform's CA).
import { X509Certificate } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { hasOpenssl, makeTempDir, opensslCa, waitFor } from "#test-support";
import { createLogger } from "./logger.js";
import { json } from "./respond.js";
import { serve, type ServiceHandle } from "./serve.js";

const opensslAvailable = hasOpenssl();
if (!opensslAvailable) process.stderr.write("SKIP serve() TLS tests: openssl is not installed (the gateway tests cover https upstreams with the platform CA)\n");

describe.skipIf(!opensslAvailable)("serve() over TLS", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let ca: ReturnType<typeof opensslCa>;
  const handles: ServiceHandle[] = [];
  const silent = createLogger({ level: "silent" });
  const folder = async (name: string, service: string) => {
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    ca.issue(service, d);
    return d;
  };
  const pem = async (d: string) => {
    const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => readFile(join(d, f), "utf8")));
    return { cert, key, ca: caPem };
  };
  /** GET over https presenting the certificate in `clientDir` (or none). */
  const get = async (url: string, clientDir: string | undefined) => {
    const { ca: caPem, ...client } = await pem(clientDir ?? serverDir);
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(url, { ca: caPem, servername: "localhost", agent: false, ...(clientDir === undefined ? {} : client) }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  };
  let serverDir: string;
  let gatewayDir: string;
  let controlPlaneDir: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-sdk-serve-tls-"));
    const caDir = join(dir, "ca");
    await mkdir(caDir);
    ca = opensslCa(caDir);
    serverDir = await folder("orders", "orders");
    gatewayDir = await folder("gateway", "keelson-gateway");
    controlPlaneDir = await folder("controlplane", "keelson-controlplane");
  });
  afterEach(async () => {
    await Promise.all(handles.splice(0).map((h) => h.close()));
    vi.unstubAllEnvs();
  });
  afterAll(async () => {
    await cleanup();
  });

  const start = async (tlsDir: string, checkMs = 5000, logger = silent) => {
    const h = await serve({ port: 0, signals: [], logger, tracing: false, tls: { dir: tlsDir, checkMs }, handler: (_req, res) => json(res, 200, { hello: "tls" }) });
    handles.push(h);
    return h;
  };

  it("answers the gateway and the control plane over https, and nobody else", async () => {
    const lines: Record<string, unknown>[] = [];
    const h = await start(serverDir, 5000, createLogger({ write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) }));
    expect(h.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await get(`${h.url}/api/x`, gatewayDir)).toEqual({ status: 200, body: JSON.stringify({ hello: "tls" }) });
    expect((await get(`${h.url}/ready`, controlPlaneDir)).status).toBe(200);
    // Another service of the same CA: the handshake completes, then the connection is cut.
    const paymentsDir = await folder("payments", "payments");
    await expect(get(`${h.url}/api/x`, paymentsDir)).rejects.toThrow();
    expect(lines.filter((l) => String(l.msg).startsWith("refused a TLS client")).map((l) => l.peer)).toEqual(["spiffe://shop/payments"]);
    // No client certificate: no handshake.
    await expect(get(`${h.url}/api/x`, undefined)).rejects.toThrow();
    // The gateway's name from another CA: no handshake.
    const otherCaDir = join(dir, "other-ca");
    await mkdir(otherCaDir, { recursive: true });
    const strangerDir = join(dir, "stranger");
    await mkdir(strangerDir);
    opensslCa(otherCaDir).issue("keelson-gateway", strangerDir);
    const stranger = await pem(strangerDir);
    const server = await pem(serverDir);
    await expect(
      new Promise((resolve, reject) => {
        const req = httpsRequest(`${h.url}/api/x`, { ca: server.ca, cert: stranger.cert, key: stranger.key, servername: "localhost", agent: false }, resolve);
        req.on("error", reject);
        req.end();
      }),
    ).rejects.toThrow();
    // Plain HTTP to the TLS port gets no answer from the handler.
    const plain = await new Promise<number | string>((resolve) => {
      const req = httpRequest(`${h.url.replace("https:", "http:")}/api/x`, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
    expect(plain).not.toBe(200);
  });

  it("serves renewed certificate files to new connections without a restart", async () => {
    const rotating = await folder("rotating", "orders");
    const h = await start(rotating, 20);
    const client = await pem(gatewayDir);
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: "127.0.0.1", port: h.port, ...client, servername: "localhost" }, () => {
          const serial = socket.getPeerX509Certificate()?.serialNumber ?? "";
          socket.end();
          resolve(serial);
        });
        socket.once("error", reject);
      });
    const before = await servedSerial();
    expect(before).toBe(new X509Certificate(await readFile(join(rotating, "cert.pem"))).serialNumber);
    ca.issue("orders", rotating);
    const wanted = new X509Certificate(await readFile(join(rotating, "cert.pem"))).serialNumber;
    expect(wanted).not.toBe(before);
    await waitFor(async () => ((await servedSerial()) === wanted ? true : undefined), { timeoutMs: 5_000, what: "the renewed certificate" });
    expect((await get(`${h.url}/api/x`, gatewayDir)).status).toBe(200);
  });

  it("takes the folder from $KEELSON_TLS_DIR only when $KEELSON_TLS_SERVE is 1", async () => {
    vi.stubEnv("KEELSON_TLS_DIR", serverDir);
    vi.stubEnv("KEELSON_TLS_SERVE", "");
    const plain = await serve({ port: 0, signals: [], logger: silent, tracing: false, handler: (_req, res) => json(res, 200, {}) });
    handles.push(plain);
    expect(plain.url).toMatch(/^http:\/\//);
    vi.stubEnv("KEELSON_TLS_SERVE", "1");
    const secure = await serve({ port: 0, signals: [], logger: silent, tracing: false, handler: (_req, res) => json(res, 200, {}) });
    handles.push(secure);
    expect(secure.url).toMatch(/^https:\/\//);
    expect((await get(`${secure.url}/healthz`, controlPlaneDir)).status).toBe(200);
  });

  it("fails fast when the TLS files cannot be read", async () => {
    await expect(serve({ port: 0, signals: [], logger: silent, tracing: false, tls: { dir: join(dir, "missing") }, handler: () => undefined })).rejects.toThrow(/cannot read the TLS files/);
  });
});
