// The project's certificate authority: one ECDSA P-256 key that signs both the services' X.509
// certificates (mTLS on the gateway's mesh listener) and their JWT-SVID identity tokens, so one
// trust root — kept as ca.pem and ca-key.pem in the control plane's state — covers both modes.
import "reflect-metadata";
import { X509CertificateGenerator, X509Certificate, BasicConstraintsExtension, KeyUsagesExtension, KeyUsageFlags, ExtendedKeyUsageExtension, ExtendedKeyUsage, SubjectAlternativeNameExtension, SubjectKeyIdentifierExtension, AuthorityKeyIdentifierExtension } from "@peculiar/x509";
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { CONTROL_PLANE_SERVICE_NAME, GATEWAY_SERVICE_NAME, KeelsonError } from "@keelson/protocol";
import { SignJWT, calculateJwkThumbprint, exportJWK, type JWK } from "jose";
import { allowsGroupOrOther, writePrivateFile } from "./private-file.js";

/** The audience every Keelson identity token carries. */
export const IDENTITY_AUDIENCE = "keelson";

/** RFC 1123 label, like manifest service names; `keelson-gateway` also fits it. */
const SERVICE_NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** SPIFFE trust domain characters (the project name in practice). */
const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$/;

const CA_VALIDITY_MS = 10 * 365 * 24 * 3600_000;
/** A CA certificate this close to its end is reissued (same key, so tokens keep verifying). */
const CA_REISSUE_BEFORE_MS = 365 * 24 * 3600_000;
/** Certificates start a little in the past, so a peer whose clock lags does not refuse them. */
const BACKDATE_MS = 5 * 60_000;
const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const crypto = webcrypto;

/** The control plane's own identity: the client certificate of its probes of replicas that serve TLS. */
export const CONTROL_PLANE_IDENTITY = CONTROL_PLANE_SERVICE_NAME;

/** Whether `name` may be a service identity: a manifest service name or the reserved `keelson-gateway` and `keelson-controlplane`. */
export function isServiceName(name: string): boolean {
  return name === GATEWAY_SERVICE_NAME || name === CONTROL_PLANE_IDENTITY || SERVICE_NAME.test(name);
}

/** Throws KEELSON_ERR_INVALID_INPUT unless `name` is a valid service name (so it is also a safe path segment). */
export function assertServiceName(name: string): void {
  if (typeof name !== "string" || !isServiceName(name)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `not a valid service name for an identity: ${JSON.stringify(name)} (lowercase letters, digits and "-", starting with a letter, at most 63 characters)`, { details: { service: name } });
  }
}

/** `spiffe://<trustDomain>/<service>`. */
export function spiffeId(trustDomain: string, service: string): string {
  return `spiffe://${trustDomain}/${service}`;
}

export interface IssuedCertificate {
  /** The leaf certificate (PEM). */
  certPem: string;
  /** Its fresh private key (PKCS#8 PEM). */
  keyPem: string;
  notAfter: Date;
  spiffeId: string;
}

/** A JSON Web Key Set holding the CA's public key. */
export interface IdentityJwks {
  keys: (JWK & { kid: string; alg: "ES256"; use: "sig" })[];
}

export interface CertificateAuthority {
  readonly trustDomain: string;
  /** RFC 7638 thumbprint of the CA's public key, the `kid` of every token it signs. */
  readonly keyId: string;
  /** The CA certificate (PEM), the trust root peers verify certificates against. */
  caPem(): string;
  /** A certificate for `spiffe://<trustDomain>/<service>` with a fresh P-256 key, valid for `ttlMs`. */
  issueCertificate(options: { service: string; ttlMs: number }): Promise<IssuedCertificate>;
  /** A compact JWT-SVID (ES256) for `spiffe://<trustDomain>/<service>`, valid for `ttlMs`. */
  issueToken(options: { service: string; ttlMs: number }): Promise<string>;
  /** The public key set that verifies the tokens (createIdentityVerifier takes it). */
  jwks(): IdentityJwks;
}

export interface LoadOrCreateCaOptions {
  /** Folder of ca.pem and ca-key.pem (made with mode 0700 when absent). */
  dir: string;
  /** The SPIFFE trust domain: the project's name. */
  trustDomain: string;
  /** Injectable clock (ms since the epoch). */
  now?: () => number;
}

/**
 * Loads the CA kept in `dir`, or creates it (a P-256 key and a 10-year self-signed certificate)
 * the first time. A key file readable by group or others is refused with KEELSON_ERR_VAULT.
 *
 * @example
 * const ca = await loadOrCreateCa({ dir: join(stateDir, "ca"), trustDomain: manifest.project });
 * const token = await ca.issueToken({ service: "orders", ttlMs: 24 * 3600_000 });
 */
export async function loadOrCreateCa(options: LoadOrCreateCaOptions): Promise<CertificateAuthority> {
  const { dir, trustDomain } = options;
  const now = options.now ?? Date.now;
  if (!TRUST_DOMAIN.test(trustDomain)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `not a valid trust domain: ${JSON.stringify(trustDomain)} (lowercase letters, digits, ".", "-" and "_")`, { details: { trustDomain } });
  }
  const keyPath = join(dir, "ca-key.pem");
  const certPath = join(dir, "ca.pem");
  await mkdir(dir, { recursive: true, mode: 0o700 });

  const privateKey = await loadOrCreateKey(keyPath);
  const publicKey = createPublicKey(privateKey);
  const signingKey = await crypto.subtle.importKey("pkcs8", privateKey.export({ type: "pkcs8", format: "der" }), EC, false, ["sign"]);
  const verifyKey = await crypto.subtle.importKey("spki", publicKey.export({ type: "spki", format: "der" }), EC, true, ["verify"]);
  const subject = `CN=keelson-ca ${trustDomain}`;

  let caCert = await readCaCert(certPath);
  if (caCert === undefined || !(await usable(caCert, { publicKey, subject, now: now() }))) {
    const notBefore = new Date(now() - BACKDATE_MS);
    caCert = await X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: serialNumber(),
        name: subject,
        notBefore,
        notAfter: new Date(notBefore.getTime() + CA_VALIDITY_MS),
        signingAlgorithm: SIGNING,
        keys: { privateKey: signingKey, publicKey: verifyKey },
        extensions: [
          new BasicConstraintsExtension(true, 0, true),
          new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
          await SubjectKeyIdentifierExtension.create(verifyKey, false, crypto),
        ],
      },
      crypto,
    );
    await writePrivateFile(certPath, pemText(caCert));
  }
  const issuer = caCert;
  const caPem = pemText(issuer);
  const authorityKeyId = await AuthorityKeyIdentifierExtension.create(verifyKey, false, crypto);

  const publicJwk = await exportJWK(publicKey);
  const keyId = await calculateJwkThumbprint(publicJwk, "sha256");
  const jwk = { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y, kid: keyId, alg: "ES256" as const, use: "sig" as const };

  return {
    trustDomain,
    keyId,
    caPem: () => caPem,
    async issueCertificate({ service, ttlMs }) {
      assertServiceName(service);
      assertTtl(ttlMs);
      const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
      const id = spiffeId(trustDomain, service);
      const issuedAt = now();
      const notAfter = new Date(issuedAt + ttlMs);
      const cert = await X509CertificateGenerator.create(
        {
          serialNumber: serialNumber(),
          subject: `CN=${service}`,
          issuer: issuer.subject,
          notBefore: new Date(issuedAt - BACKDATE_MS),
          notAfter,
          signingAlgorithm: SIGNING,
          publicKey: keys.publicKey,
          signingKey,
          extensions: [
            new BasicConstraintsExtension(false, undefined, true),
            new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement, true),
            new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth], false),
            new SubjectAlternativeNameExtension(
              [
                { type: "url", value: id },
                { type: "dns", value: "localhost" },
                { type: "ip", value: "127.0.0.1" },
              ],
              false,
            ),
            await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
            authorityKeyId,
          ],
        },
        crypto,
      );
      const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
      const keyPem = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }).export({ type: "pkcs8", format: "pem" }) as string;
      return { certPem: pemText(cert), keyPem, notAfter, spiffeId: id };
    },
    async issueToken({ service, ttlMs }) {
      assertServiceName(service);
      assertTtl(ttlMs);
      const iat = Math.floor(now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: "ES256", kid: keyId, typ: "JWT" })
        .setSubject(spiffeId(trustDomain, service))
        .setAudience([IDENTITY_AUDIENCE])
        .setIssuedAt(iat)
        .setExpirationTime(iat + Math.max(1, Math.floor(ttlMs / 1000)))
        .sign(privateKey);
    },
    jwks: () => ({ keys: [{ ...jwk }] }),
  };
}

/** Reads the CA key, refusing one with group/other permissions; creates it when absent. */
async function loadOrCreateKey(keyPath: string): Promise<KeyObject> {
  for (;;) {
    const existing = await stat(keyPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    if (existing !== undefined) {
      if (allowsGroupOrOther(existing.mode)) {
        throw new KeelsonError("KEELSON_ERR_VAULT", `the CA key ${keyPath} is readable by others (mode ${(existing.mode & 0o777).toString(8)}); run \`chmod 600 ${keyPath}\``, { details: { path: keyPath, mode: (existing.mode & 0o777).toString(8) } });
      }
      try {
        const key = createPrivateKey(await readFile(keyPath, "utf8"));
        if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new Error("not an ECDSA P-256 key");
        return key;
      } catch (err) {
        throw new KeelsonError("KEELSON_ERR_VAULT", `the CA key ${keyPath} is not a usable ECDSA P-256 private key: ${err instanceof Error ? err.message : String(err)}`, { details: { path: keyPath }, cause: err });
      }
    }
    const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const der = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
    const pem = createPrivateKey({ key: der, format: "der", type: "pkcs8" }).export({ type: "pkcs8", format: "pem" }) as string;
    // Exclusive: when another process created the key meanwhile, the loop reads theirs.
    await writePrivateFile(keyPath, pem, { exclusive: true });
  }
}

async function readCaCert(path: string): Promise<X509Certificate | undefined> {
  try {
    return new X509Certificate(await readFile(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** The stored CA certificate fits the key and the trust domain, and is far from its end. */
async function usable(cert: X509Certificate, want: { publicKey: KeyObject; subject: string; now: number }): Promise<boolean> {
  if (cert.subject !== want.subject) return false;
  if (cert.notAfter.getTime() - want.now < CA_REISSUE_BEFORE_MS) return false;
  const spki = Buffer.from(cert.publicKey.rawData);
  if (!spki.equals(want.publicKey.export({ type: "spki", format: "der" }))) return false;
  return cert.verify({ signatureOnly: true }, crypto);
}

/** PEM with the final newline tools expect. */
function pemText(cert: X509Certificate): string {
  return `${cert.toString("pem").trimEnd()}\n`;
}

function assertTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs < 1000) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `identity lifetime must be at least 1 s, got ${ttlMs} ms`);
}

/** A positive 128-bit serial number (hex), as RFC 5280 asks. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01;
  return bytes.toString("hex");
}
