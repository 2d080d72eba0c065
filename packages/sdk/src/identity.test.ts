// Tests for the service identity the SDK reads from Keelson's files: the token (cached, re-read
// when the file changes, a missing file tolerated with one warning) and, with certificates made
// by openssl, mTLS calls through createClient to a local https server that requires them.
import { randomBytes } from "node:crypto";
import { copyFileSync, readFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { hasOpenssl, makeTempDir, opensslCa } from "#test-support";
import { createClient } from "./client.js";
import { createIdentity, type Identity } from "./identity.js";
import { createLogger, type Logger } from "./logger.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir("keelson-sdk-identity-"));
});
afterAll(async () => {
  await cleanup();
});

const identities: Identity[] = [];
afterEach(async () => {
  await Promise.all(identities.splice(0).map((i) => i.close()));
});

function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const base = createLogger({ level: "silent" });
  return { warnings, logger: { ...base, warn: (msg: string) => void warnings.push(msg) } };
}

/** Replaces `path` the way the control plane does: a whole new file renamed over the old one. */
async function replace(path: string, text: string): Promise<void> {
  const temp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temp, text, { mode: 0o600 });
  await rename(temp, path);
}

describe("createIdentity: the token", () => {
  it("reads the token, caches it, and re-reads it only after checkMs when the file changed", async () => {
    const file = join(dir, "token-a.jwt");
    await writeFile(file, "token-1\n", { mode: 0o600 });
    let now = 1_000;
    const identity = createIdentity({ identityFile: file, now: () => now, checkMs: 5000, tlsDir: "" });
    identities.push(identity);
    expect(identity.token()).toBe("token-1");
    expect(identity.identityHeaders()).toEqual({ "x-keelson-identity": "token-1" });
    expect(identity.authorization()).toBe("Bearer token-1");
    await replace(file, "token-2");
    now += 4999;
    expect(identity.token()).toBe("token-1");
    now += 1;
    expect(identity.token()).toBe("token-2");
    expect(identity.authorization()).toBe("Bearer token-2");
  });

  it("takes the file from $KEELSON_IDENTITY_FILE", async () => {
    const file = join(dir, "token-env.jwt");
    await writeFile(file, "from-env");
    const before = process.env.KEELSON_IDENTITY_FILE;
    process.env.KEELSON_IDENTITY_FILE = file;
    try {
      expect(createIdentity({ tlsDir: "" }).token()).toBe("from-env");
    } finally {
      if (before === undefined) delete process.env.KEELSON_IDENTITY_FILE;
      else process.env.KEELSON_IDENTITY_FILE = before;
    }
  });

  it("without a file: no token, no header, one warning; the token appears when the file does", async () => {
    const file = join(dir, "later", "token.jwt");
    const { logger, warnings } = recordingLogger();
    let now = 0;
    const identity = createIdentity({ identityFile: file, now: () => now, checkMs: 10, logger, tlsDir: "" });
    identities.push(identity);
    for (let i = 0; i < 5; i++) {
      now += 10;
      expect(identity.token()).toBeUndefined();
    }
    expect(identity.identityHeaders()).toEqual({});
    expect(identity.authorization()).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("KEELSON_IDENTITY_FILE");
    await mkdir(join(dir, "later"));
    await writeFile(file, "late-token");
    now += 10;
    expect(identity.token()).toBe("late-token");
  });

  it("no identity file configured: no token and no warning", () => {
    const { logger, warnings } = recordingLogger();
    const identity = createIdentity({ identityFile: "", tlsDir: "", logger });
    expect([identity.token(), identity.identityHeaders(), identity.tls]).toEqual([undefined, {}, false]);
    expect(warnings).toEqual([]);
  });
});

describe("createClient: the identity header", () => {
  it("sends the service's token on every call, replacing one the app set; none with identity: false", async () => {
    const file = join(dir, "token-client.jwt");
    await writeFile(file, "svc-token");
    const seen: (string | undefined)[] = [];
    const fetchStub: typeof fetch = (_input, init) => {
      seen.push(new Headers(init?.headers).get("x-keelson-identity") ?? undefined);
      return Promise.resolve(new Response("{}"));
    };
    const silent = createLogger({ level: "silent" });
    const identity = createIdentity({ identityFile: file, tlsDir: "" });
    const client = createClient({ gatewayUrl: "http://127.0.0.1:9", identity, fetch: fetchStub, logger: silent, tracing: false });
    await client.call("inventory", "/a");
    await client.call("inventory", "/b", { headers: { "x-keelson-identity": "forged" } });
    const anonymous = createClient({ gatewayUrl: "http://127.0.0.1:9", identity: false, fetch: fetchStub, logger: silent, tracing: false });
    await anonymous.call("inventory", "/c", { headers: { "x-keelson-identity": "forged" } });
    expect(seen).toEqual(["svc-token", "svc-token", undefined]);
  });
});

const opensslAvailable = hasOpenssl();
if (!opensslAvailable) process.stderr.write("SKIP sdk mTLS tests: openssl is not installed (the e2e suite covers mTLS with the platform CA)\n");


describe.skipIf(!opensslAvailable)("mTLS through createClient to an https: gateway", () => {
  let server: Server;
  let url: string;
  let ca: ReturnType<typeof opensslCa>;
  let serverDir: string;
  let tlsDir: string;
  const silent = createLogger({ level: "silent" });

  beforeAll(async () => {
    const caDir = join(dir, "ca");
    serverDir = join(dir, "gateway");
    tlsDir = join(dir, "orders-tls");
    for (const d of [caDir, serverDir, tlsDir]) await mkdir(d, { recursive: true });
    ca = opensslCa(caDir);
    ca.issue("keelson-gateway", serverDir);
    ca.issue("orders", tlsDir);
    const read = (name: string) => readFileSync(join(serverDir, name));
    server = createServer({ cert: read("cert.pem"), key: read("key.pem"), ca: read("ca.pem"), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ san: peer.subjectaltname, cn: peer.subject?.CN, identity: req.headers["x-keelson-identity"] ?? null }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(join(dir, "ca"), { recursive: true, force: true });
  });

  it("presents the service's certificate and sends its token", async () => {
    const tokenFile = join(tlsDir, "token.jwt");
    await writeFile(tokenFile, "orders-token");
    const identity = createIdentity({ identityFile: tokenFile, tlsDir, logger: silent });
    identities.push(identity);
    expect(identity.tls).toBe(true);
    const client = createClient({ gatewayUrl: url, identity, logger: silent, tracing: false });
    expect(await client.json("inventory", "/api/inventory")).toEqual({ san: "URI:spiffe://shop/orders, DNS:localhost, IP Address:127.0.0.1", cn: "orders", identity: "orders-token" });
  });

  it("picks up rotated certificate files without a restart", async () => {
    let now = 0;
    const rotDir = join(dir, "rotating-tls");
    await mkdir(rotDir, { recursive: true });
    ca.issue("orders", rotDir);
    const identity = createIdentity({ identityFile: "", tlsDir: rotDir, logger: silent, now: () => now, checkMs: 1000 });
    identities.push(identity);
    const client = createClient({ gatewayUrl: url, identity, logger: silent, tracing: false });
    const first = await identity.dispatcher();
    expect(first).toBeDefined();
    expect(await client.json("inventory", "/x")).toMatchObject({ cn: "orders" });

    ca.issue("payments", rotDir);
    now += 999;
    expect(await client.json("inventory", "/x")).toMatchObject({ cn: "orders" });
    now += 1;
    expect(await client.json("inventory", "/x")).toMatchObject({ cn: "payments", san: expect.stringContaining("spiffe://shop/payments") });
    expect(await identity.dispatcher()).not.toBe(first);
  });

  it("keeps the current certificate while the new pair is half written", async () => {
    let now = 0;
    const pairDir = join(dir, "half-tls");
    const otherDir = join(dir, "other-tls");
    await mkdir(pairDir, { recursive: true });
    await mkdir(otherDir, { recursive: true });
    ca.issue("orders", pairDir);
    const identity = createIdentity({ identityFile: "", tlsDir: pairDir, logger: silent, now: () => now, checkMs: 1 });
    identities.push(identity);
    const first = await identity.dispatcher();
    // A new cert.pem beside the old key.pem: not a pair.
    ca.issue("payments", otherDir);
    copyFileSync(join(otherDir, "cert.pem"), join(pairDir, "cert.pem"));
    now += 1;
    expect(await identity.dispatcher()).toBe(first);
    copyFileSync(join(otherDir, "key.pem"), join(pairDir, "key.pem"));
    now += 1;
    expect(await identity.dispatcher()).not.toBe(first);
  });
});
