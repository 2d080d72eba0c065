// Tests for the project CA: files and their modes, reloading, the permission check on the key,
// and what issued certificates and tokens contain.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { CONTROL_PLANE_IDENTITY, isServiceName, loadOrCreateCa } from "./ca.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function tempDir(): Promise<string> {
  const { dir, cleanup } = await makeTempDir("keelson-ca-");
  cleanups.push(cleanup);
  return dir;
}

const HOUR = 3600_000;

describe("loadOrCreateCa", () => {
  it("creates a P-256 CA with a 10-year self-signed certificate, the key 0600 in a 0700 folder", async () => {
    const dir = join(await tempDir(), "ca");
    const t0 = Date.UTC(2030, 0, 1);
    const ca = await loadOrCreateCa({ dir, trustDomain: "shop", now: () => t0 });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, "ca-key.pem"))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await readFile(join(dir, "ca.pem"), "utf8"));
    expect(cert.subject).toBe("CN=keelson-ca shop");
    expect(cert.ca).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    const years = (Date.parse(cert.validTo) - t0) / (365 * 24 * HOUR);
    expect(years).toBeGreaterThan(9.9);
    expect(years).toBeLessThan(10.1);
    expect(ca.caPem()).toBe(cert.toString());
  });

  it("loads the same CA again: same key id, same certificate", async () => {
    const dir = await tempDir();
    const first = await loadOrCreateCa({ dir, trustDomain: "shop" });
    const second = await loadOrCreateCa({ dir, trustDomain: "shop" });
    expect(second.keyId).toBe(first.keyId);
    expect(second.caPem()).toBe(first.caPem());
    expect(second.jwks()).toEqual(first.jwks());
  });

  it("two loads racing on an empty folder end with one key", async () => {
    const dir = await tempDir();
    const [a, b] = await Promise.all([loadOrCreateCa({ dir, trustDomain: "shop" }), loadOrCreateCa({ dir, trustDomain: "shop" })]);
    expect(a.keyId).toBe(b.keyId);
  });

  it("refuses a key file that group or others may read, naming the path and the fix", async () => {
    const dir = await tempDir();
    await loadOrCreateCa({ dir, trustDomain: "shop" });
    const keyPath = join(dir, "ca-key.pem");
    await chmod(keyPath, 0o644);
    const err = (await loadOrCreateCa({ dir, trustDomain: "shop" }).catch((e: unknown) => e)) as { code: string; message: string };
    expect(err.code).toBe("KEELSON_ERR_VAULT");
    expect(err.message).toContain(keyPath);
    expect(err.message).toContain("chmod 600");
  });

  it("reissues a lost CA certificate from the same key, so tokens keep verifying", async () => {
    const dir = await tempDir();
    const first = await loadOrCreateCa({ dir, trustDomain: "shop" });
    await writeFile(join(dir, "ca.pem"), "garbage");
    const second = await loadOrCreateCa({ dir, trustDomain: "shop" });
    expect(second.keyId).toBe(first.keyId);
    expect(new X509Certificate(second.caPem()).subject).toBe("CN=keelson-ca shop");
  });

  it("refuses an invalid trust domain", async () => {
    const dir = await tempDir();
    await expect(loadOrCreateCa({ dir, trustDomain: "Shop/../x" })).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
  });
});

describe("issueCertificate", () => {
  it("issues a leaf for spiffe://<project>/<service> with localhost SANs, both EKUs and a fresh key", async () => {
    const t0 = Date.UTC(2030, 0, 1);
    const ca = await loadOrCreateCa({ dir: await tempDir(), trustDomain: "shop", now: () => t0 });
    const issued = await ca.issueCertificate({ service: "orders", ttlMs: 24 * HOUR });
    const again = await ca.issueCertificate({ service: "orders", ttlMs: 24 * HOUR });
    const cert = new X509Certificate(issued.certPem);
    const caCert = new X509Certificate(ca.caPem());
    expect(issued.spiffeId).toBe("spiffe://shop/orders");
    expect(cert.subjectAltName).toBe("URI:spiffe://shop/orders, DNS:localhost, IP Address:127.0.0.1");
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(issued.keyPem))).toBe(true);
    expect(cert.keyUsage).toEqual(expect.arrayContaining(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]));
    expect(Date.parse(cert.validTo)).toBe(t0 + 24 * HOUR);
    expect(issued.notAfter.getTime()).toBe(t0 + 24 * HOUR);
    expect(again.keyPem).not.toBe(issued.keyPem);
    expect(cert.serialNumber).not.toBe(new X509Certificate(again.certPem).serialNumber);
  });

  it("refuses names that are not service names, path tricks included", async () => {
    const ca = await loadOrCreateCa({ dir: await tempDir(), trustDomain: "shop" });
    for (const service of ["../etc", "Orders", "", "a/b", "orders-", "x".repeat(64)]) {
      await expect(ca.issueCertificate({ service, ttlMs: HOUR })).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
      await expect(ca.issueToken({ service, ttlMs: HOUR })).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT" });
    }
    expect((await ca.issueCertificate({ service: "keelson-gateway", ttlMs: HOUR })).spiffeId).toBe("spiffe://shop/keelson-gateway");
    expect((await ca.issueCertificate({ service: CONTROL_PLANE_IDENTITY, ttlMs: HOUR })).spiffeId).toBe("spiffe://shop/keelson-controlplane");
    expect(isServiceName(CONTROL_PLANE_IDENTITY)).toBe(true);
  });
});

describe("issueToken and jwks", () => {
  it("signs an ES256 JWT-SVID whose kid is the RFC 7638 thumbprint in the key set", async () => {
    const t0 = Date.UTC(2030, 0, 1);
    const ca = await loadOrCreateCa({ dir: await tempDir(), trustDomain: "shop", now: () => t0 });
    const token = await ca.issueToken({ service: "orders", ttlMs: 24 * HOUR });
    expect(decodeProtectedHeader(token)).toEqual({ alg: "ES256", kid: ca.keyId, typ: "JWT" });
    expect(decodeJwt(token)).toEqual({ sub: "spiffe://shop/orders", aud: ["keelson"], iat: t0 / 1000, exp: t0 / 1000 + 24 * 3600 });
    const { keys } = ca.jwks();
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: "EC", crv: "P-256", kid: ca.keyId, alg: "ES256", use: "sig" });
    expect(keys[0]).not.toHaveProperty("d");
    expect(ca.keyId).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
