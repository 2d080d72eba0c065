// Tests for identity checks: real mTLS handshakes on 127.0.0.1 with CA-issued certificates
// (and refusals of another CA's), and JWT-SVID verification with each reason for refusal.
import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { connect, createServer, type PeerCertificate, type TLSSocket } from "node:tls";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { loadOrCreateCa, type CertificateAuthority } from "./ca.js";
import { createIdentityVerifier, parseSpiffeId, serviceOfCertificate } from "./identity-verifier.js";

const HOUR = 3600_000;
const T0 = Date.UTC(2030, 0, 1);
let dirs: { dir: string; cleanup: () => Promise<void> }[] = [];
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let caKeyPem: string;

beforeAll(async () => {
  dirs = [await makeTempDir("keelson-ca-"), await makeTempDir("keelson-ca-other-")];
  ca = await loadOrCreateCa({ dir: dirs[0]!.dir, trustDomain: "shop" });
  otherCa = await loadOrCreateCa({ dir: dirs[1]!.dir, trustDomain: "shop" });
  caKeyPem = await readFile(join(dirs[0]!.dir, "ca-key.pem"), "utf8");
});
afterAll(async () => {
  await Promise.all(dirs.map((d) => d.cleanup()));
});

interface Handshake {
  /** What the server saw: the service of an authorized peer, or the TLS error. */
  server: { service: string | undefined; authorized: boolean } | { error: string };
  client: { ok: true } | { error: string };
}

/**
 * A TLS server (cert for keelson-gateway, requiring client certs from `ca`) and one client
 * presenting `clientCert`; resolves once both sides are settled.
 */
async function handshake(clientCert: { certPem: string; keyPem: string }, clientTrusts: string): Promise<Handshake> {
  const serverCert = await ca.issueCertificate({ service: "keelson-gateway", ttlMs: HOUR });
  let serverSide: (v: Handshake["server"]) => void = () => {};
  const serverDone = new Promise<Handshake["server"]>((resolve) => (serverSide = resolve));
  const server = createServer({ cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.caPem(), requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    serverSide({ service: serviceOfCertificate(socket.getPeerCertificate(), "shop"), authorized: socket.authorized });
    socket.end("hello");
  });
  server.on("tlsClientError", (err) => serverSide({ error: err.message }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const clientDone = new Promise<Handshake["client"]>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port, cert: clientCert.certPem, key: clientCert.keyPem, ca: clientTrusts, servername: "localhost" });
      let data = "";
      socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
      socket.on("end", () => resolve(data === "hello" ? { ok: true } : { error: `read ${JSON.stringify(data)}` }));
      // TLS 1.3: the server's refusal arrives after the client's handshake, as a read error.
      socket.on("error", (err) => resolve({ error: err.message }));
    });
    const [serverResult, client] = await Promise.all([serverDone, clientDone]);
    return { server: serverResult, client };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("mTLS with CA-issued certificates", () => {
  it("a real handshake on 127.0.0.1: the server reads the caller's service from its certificate", async () => {
    const orders = await ca.issueCertificate({ service: "orders", ttlMs: HOUR });
    const result = await handshake(orders, ca.caPem());
    expect(result.server).toEqual({ service: "orders", authorized: true });
    expect(result.client).toEqual({ ok: true });
  });

  it("refuses a client certificate from another CA", async () => {
    const impostor = await otherCa.issueCertificate({ service: "orders", ttlMs: HOUR });
    const result = await handshake(impostor, ca.caPem());
    // Node's server drops the connection without a secureConnection (so no service is ever read),
    // and the client never gets the greeting.
    expect(result.server).toHaveProperty("error");
    expect(result.client).toEqual({ error: 'read ""' });
  });

  it("a client that trusts only another CA refuses the server", async () => {
    const orders = await ca.issueCertificate({ service: "orders", ttlMs: HOUR });
    const result = await handshake(orders, otherCa.caPem());
    expect((result.client as { error: string }).error).toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);
  });
});

describe("serviceOfCertificate", () => {
  const peer = (subjectaltname: string | undefined) => ({ subjectaltname }) as PeerCertificate;
  it("takes the one spiffe URI SAN of the trust domain", () => {
    expect(serviceOfCertificate(peer("URI:spiffe://shop/orders, DNS:localhost, IP Address:127.0.0.1"), "shop")).toBe("orders");
    expect(serviceOfCertificate(peer("DNS:localhost, URI:spiffe://shop/keelson-gateway"), "shop")).toBe("keelson-gateway");
  });
  it("yields undefined for no certificate, another trust domain, two ids or a malformed one", () => {
    expect(serviceOfCertificate(undefined, "shop")).toBeUndefined();
    expect(serviceOfCertificate({} as PeerCertificate, "shop")).toBeUndefined();
    expect(serviceOfCertificate(peer("URI:spiffe://bank/orders"), "shop")).toBeUndefined();
    expect(serviceOfCertificate(peer("URI:spiffe://shop/orders, URI:spiffe://shop/payments"), "shop")).toBeUndefined();
    expect(serviceOfCertificate(peer("URI:spiffe://shop/orders/extra"), "shop")).toBeUndefined();
    expect(serviceOfCertificate(peer('URI:"spiffe://shop/orders, DNS:x"'), "shop")).toBeUndefined();
    expect(serviceOfCertificate(peer("DNS:localhost"), "shop")).toBeUndefined();
  });
});

describe("parseSpiffeId", () => {
  it("splits valid ids and refuses the rest", () => {
    expect(parseSpiffeId("spiffe://shop/orders")).toEqual({ trustDomain: "shop", service: "orders" });
    for (const bad of ["https://shop/orders", "spiffe://shop", "spiffe:///orders", "spiffe://shop/", "spiffe://shop/Orders", "spiffe://shop/a/b", "spiffe://shop/orders?x=1", "spiffe://sh op/orders"]) {
      expect(parseSpiffeId(bad), bad).toBeUndefined();
    }
  });
});

/** A token signed with the real CA key but with claims of our choosing. */
async function forge(claims: { sub?: string; aud?: string[]; iat?: number; exp?: number }, kid = ca.keyId): Promise<string> {
  let jwt = new SignJWT({ ...(claims.aud ? { aud: claims.aud } : {}) }).setProtectedHeader({ alg: "ES256", kid });
  if (claims.sub !== undefined) jwt = jwt.setSubject(claims.sub);
  if (claims.iat !== undefined) jwt = jwt.setIssuedAt(claims.iat);
  if (claims.exp !== undefined) jwt = jwt.setExpirationTime(claims.exp);
  return jwt.sign(createPrivateKey(caKeyPem));
}

describe("createIdentityVerifier", () => {
  const issuingCa = async (now: number) => loadOrCreateCa({ dir: dirs[0]!.dir, trustDomain: "shop", now: () => now });

  it("accepts a valid token and names its service and expiry", async () => {
    const token = await (await issuingCa(T0)).issueToken({ service: "orders", ttlMs: 24 * HOUR });
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop", now: () => T0 + HOUR });
    expect(await verifier.verify(token)).toEqual({ ok: true, service: "orders", expiresAt: T0 + 24 * HOUR });
  });

  it("refuses an expired token (injected clock)", async () => {
    const token = await (await issuingCa(T0)).issueToken({ service: "orders", ttlMs: HOUR });
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop", now: () => T0 + HOUR + 60_000 });
    expect(await verifier.verify(token)).toMatchObject({ ok: false, reason: "expired" });
  });

  it("refuses a tampered signature, and a tampered payload", async () => {
    const token = await (await issuingCa(T0)).issueToken({ service: "orders", ttlMs: HOUR });
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop", now: () => T0 });
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const mid = Math.floor(signature.length / 2);
    const flipped = `${signature.slice(0, mid)}${signature[mid] === "A" ? "B" : "A"}${signature.slice(mid + 1)}`;
    expect(await verifier.verify(`${header}.${payload}.${flipped}`)).toMatchObject({ ok: false, reason: "bad-signature" });
    const otherPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), sub: "spiffe://shop/payments" })).toString("base64url");
    expect(await verifier.verify(`${header}.${otherPayload}.${signature}`)).toMatchObject({ ok: false, reason: "bad-signature" });
  });

  it("refuses another CA's token: unknown key, or a bad signature when it claims our kid", async () => {
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop" });
    const foreign = await otherCa.issueToken({ service: "orders", ttlMs: HOUR });
    expect(await verifier.verify(foreign)).toMatchObject({ ok: false, reason: "unknown-key" });
    const otherKey = createPrivateKey(await readFile(join(dirs[1]!.dir, "ca-key.pem"), "utf8"));
    const now = Math.floor(Date.now() / 1000);
    const posing = await new SignJWT({ aud: ["keelson"] }).setProtectedHeader({ alg: "ES256", kid: ca.keyId }).setSubject("spiffe://shop/orders").setIssuedAt(now).setExpirationTime(now + 3600).sign(otherKey);
    expect(await verifier.verify(posing)).toMatchObject({ ok: false, reason: "bad-signature" });
  });

  it("refuses a wrong audience, another trust domain and a token without the required claims", async () => {
    const now = Math.floor(Date.now() / 1000);
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop" });
    expect(await verifier.verify(await forge({ sub: "spiffe://shop/orders", aud: ["other"], iat: now, exp: now + 60 }))).toMatchObject({ ok: false, reason: "wrong-audience" });
    expect(await verifier.verify(await forge({ sub: "spiffe://bank/orders", aud: ["keelson"], iat: now, exp: now + 60 }))).toMatchObject({ ok: false, reason: "wrong-trust-domain" });
    expect(await verifier.verify(await forge({ sub: "spiffe://shop/orders", aud: ["keelson"], iat: now }))).toMatchObject({ ok: false, reason: "malformed" });
    expect(await verifier.verify(await forge({ sub: "orders", aud: ["keelson"], iat: now, exp: now + 60 }))).toMatchObject({ ok: false, reason: "malformed" });
    // The same token is fine for the verifier of its own trust domain.
    const bankVerifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "bank" });
    expect(await bankVerifier.verify(await forge({ sub: "spiffe://bank/orders", aud: ["keelson"], iat: now, exp: now + 60 }))).toMatchObject({ ok: true, service: "orders" });
  });

  it("refuses garbage as malformed", async () => {
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop" });
    for (const junk of ["", "abc", "a.b.c", "x".repeat(10_000)]) {
      expect(await verifier.verify(junk), junk.slice(0, 10)).toMatchObject({ ok: false, reason: "malformed" });
    }
  });

  it("caches verdicts for synchronous answers and drops a positive one once its token expires", async () => {
    let now = T0;
    const token = await (await issuingCa(T0)).issueToken({ service: "orders", ttlMs: HOUR });
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop", now: () => now, clockToleranceMs: 0 });
    expect(verifier.cached(token)).toBeUndefined();
    const [a, b] = await Promise.all([verifier.verify(token), verifier.verify(token)]);
    expect(a).toBe(b);
    expect(verifier.cached(token)).toEqual({ ok: true, service: "orders", expiresAt: T0 + HOUR });
    expect(verifier.cached("a.b.c")).toBeUndefined();
    await verifier.verify("a.b.c");
    expect(verifier.cached("a.b.c")).toMatchObject({ ok: false, reason: "malformed" });
    now = T0 + HOUR;
    expect(verifier.cached(token)).toBeUndefined();
    expect(await verifier.verify(token)).toMatchObject({ ok: false, reason: "expired" });
  });

  it("keeps at most cacheSize verdicts, evicting the least recently used", async () => {
    const issuer = await issuingCa(T0);
    const [t1, t2, t3] = await Promise.all(["a", "b", "c"].map((service) => issuer.issueToken({ service, ttlMs: HOUR })));
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop", now: () => T0, cacheSize: 2 });
    await verifier.verify(t1!);
    await verifier.verify(t2!);
    expect(verifier.cached(t1!)).toMatchObject({ service: "a" }); // t1 is now the most recent
    await verifier.verify(t3!);
    expect(verifier.cached(t2!)).toBeUndefined();
    expect(verifier.cached(t1!)).toMatchObject({ service: "a" });
    expect(verifier.cached(t3!)).toMatchObject({ service: "c" });
  });
});
