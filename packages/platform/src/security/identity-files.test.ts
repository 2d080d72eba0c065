// Tests for the identity files replicas read: what is written where and with which modes,
// renewal after two thirds of the lifetime (and the new token verifying), forgetting, and names.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { loadOrCreateCa, type CertificateAuthority } from "./ca.js";
import { createIdentityIssuer } from "./identity-files.js";
import { createIdentityVerifier } from "./identity-verifier.js";

const HOUR = 3600_000;
const T0 = Date.UTC(2030, 0, 1);
let stateDir: string;
let cleanup: () => Promise<void>;
let now: number;
let ca: CertificateAuthority;

beforeEach(async () => {
  ({ dir: stateDir, cleanup } = await makeTempDir("keelson-identity-"));
  now = T0;
  ca = await loadOrCreateCa({ dir: join(stateDir, "ca"), trustDomain: "shop", now: () => now });
});
afterEach(async () => {
  await cleanup();
});

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe("createIdentityIssuer", () => {
  it("writes the token alone without mTLS: file 0600 in a 0700 folder, verifying as the service", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: 24 * HOUR, mtls: false, now: () => now });
    const paths = await issuer.ensure("orders");
    const dir = join(stateDir, "identity", "orders");
    expect(paths).toEqual({ identityFile: join(dir, "token.jwt"), expiresAt: T0 + 24 * HOUR });
    expect(await readdir(dir)).toEqual(["token.jwt"]);
    expect(await mode(dir)).toBe(0o700);
    expect(await mode(join(stateDir, "identity"))).toBe(0o700);
    expect(await mode(paths.identityFile)).toBe(0o600);
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop", now: () => now });
    expect(await verifier.verify(await readFile(paths.identityFile, "utf8"))).toMatchObject({ ok: true, service: "orders" });
  });

  it("with mTLS also writes cert.pem, key.pem and ca.pem, all 0600, the key matching the certificate", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: 24 * HOUR, mtls: true, now: () => now });
    const { tlsDir } = await issuer.ensure("orders");
    expect(tlsDir).toBe(join(stateDir, "identity", "orders"));
    expect((await readdir(tlsDir!)).sort()).toEqual(["ca.pem", "cert.pem", "key.pem", "token.jwt"]);
    for (const file of ["ca.pem", "cert.pem", "key.pem", "token.jwt"]) expect(await mode(join(tlsDir!, file)), file).toBe(0o600);
    const cert = new X509Certificate(await readFile(join(tlsDir!, "cert.pem")));
    expect(cert.subjectAltName).toContain("URI:spiffe://shop/orders");
    expect(cert.checkPrivateKey(createPrivateKey(await readFile(join(tlsDir!, "key.pem"))))).toBe(true);
    expect(await readFile(join(tlsDir!, "ca.pem"), "utf8")).toBe(ca.caPem());
  });

  it("ensure is idempotent while the identity is fresh", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: 24 * HOUR, mtls: false, now: () => now });
    const first = await issuer.ensure("orders");
    const token = await readFile(first.identityFile, "utf8");
    now += HOUR;
    expect(await issuer.ensure("orders")).toEqual(first);
    expect(await readFile(first.identityFile, "utf8")).toBe(token);
  });

  it("renews identities once two thirds of their lifetime has passed; the new token verifies", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: 3 * HOUR, mtls: true, now: () => now });
    const orders = await issuer.ensure("orders");
    now += HOUR;
    await issuer.ensure("payments");
    const oldToken = await readFile(orders.identityFile, "utf8");
    const oldCert = await readFile(join(orders.tlsDir!, "cert.pem"), "utf8");

    now = T0 + 2 * HOUR - 1;
    expect(await issuer.renewDue()).toEqual([]);
    now = T0 + 2 * HOUR;
    expect(await issuer.renewDue()).toEqual(["orders"]);
    const newToken = await readFile(orders.identityFile, "utf8");
    expect(newToken).not.toBe(oldToken);
    expect(await readFile(join(orders.tlsDir!, "cert.pem"), "utf8")).not.toBe(oldCert);
    expect(await mode(orders.identityFile)).toBe(0o600);
    expect(await issuer.ensure("orders")).toMatchObject({ expiresAt: T0 + 5 * HOUR });

    // Past the old token's end, only the new one is accepted.
    now = T0 + 3 * HOUR + 60_000;
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "shop", now: () => now });
    expect(await verifier.verify(newToken)).toEqual({ ok: true, service: "orders", expiresAt: T0 + 5 * HOUR });
    expect(await verifier.verify(oldToken)).toMatchObject({ ok: false, reason: "expired" });
    expect(await issuer.renewDue()).toEqual(["payments"]);
  });

  it("start() renews on its own timer, stop() ends it", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: 3 * HOUR, mtls: false, now: () => now });
    const { identityFile } = await issuer.ensure("orders");
    const before = await readFile(identityFile, "utf8");
    now += 2 * HOUR;
    issuer.start(10);
    try {
      await waitFor(async () => (await readFile(identityFile, "utf8")) !== before, { what: "the token file to be rewritten" });
    } finally {
      issuer.stop();
    }
  });

  it("forget deletes the service's files and stops renewing it", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: 3 * HOUR, mtls: true, now: () => now });
    await issuer.ensure("orders");
    await issuer.forget("orders");
    expect(await readdir(join(stateDir, "identity"))).toEqual([]);
    now += 3 * HOUR;
    expect(await issuer.renewDue()).toEqual([]);
  });

  it("refuses names that could leave the identity folder", async () => {
    const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: HOUR, mtls: false, now: () => now });
    for (const service of ["..", "../ca", "a/b", "/etc", "Orders", ""]) {
      await expect(issuer.ensure(service), service).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
      await expect(issuer.forget(service), service).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
    }
    expect((await readdir(stateDir)).sort()).toEqual(["ca"]);
  });
});
