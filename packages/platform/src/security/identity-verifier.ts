// Checks who a call comes from: a JWT-SVID against the CA's public keys, or the SPIFFE id in
// a client certificate's URI SAN. Used on the gateway's hot path, so verified tokens are cached
// and `cached()` answers synchronously; the control plane uses the same verifier for its API.
import type { PeerCertificate } from "node:tls";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import { IDENTITY_AUDIENCE, isServiceName } from "./ca.js";

/** Why a token was refused. */
export type IdentityRefusal = "malformed" | "bad-signature" | "unknown-key" | "expired" | "not-yet-valid" | "wrong-audience" | "wrong-trust-domain";

export type IdentityVerdict =
  | { ok: true; service: string; /** ms since the epoch */ expiresAt: number }
  | { ok: false; reason: IdentityRefusal; /** For logs; never shown to the caller verbatim. */ detail: string };

export interface IdentityVerifier {
  /** Verifies `token` (a compact JWT-SVID); never rejects. */
  verify(token: string): Promise<IdentityVerdict>;
  /**
   * The verdict on `token` when it was verified before and is still in the cache, else
   * undefined: `cached(t) ?? await verify(t)` answers most requests without awaiting.
   * A positive verdict is dropped once its token expires.
   */
  cached(token: string): IdentityVerdict | undefined;
}

export interface IdentityVerifierOptions {
  /** The CA's public keys (CertificateAuthority.jwks(), carried in the routing table). */
  jwks: JSONWebKeySet;
  /** Only tokens for `spiffe://<trustDomain>/…` are accepted. */
  trustDomain: string;
  /** Injectable clock (ms since the epoch). */
  now?: () => number;
  /** Verdicts kept (default 10,000); the least recently used go first. */
  cacheSize?: number;
  /** Leeway for `exp`/`nbf` against clock differences (default 5 s). */
  clockToleranceMs?: number;
}

/** Tokens longer than this are refused unparsed (a JWT-SVID is a few hundred bytes). */
const MAX_TOKEN_LENGTH = 8192;

/**
 * A verifier of identity tokens for one trust domain and one key set. When the key set
 * changes, make a new verifier (its cache belongs to the old keys).
 *
 * @example
 * const verifier = createIdentityVerifier({ jwks: table.identity.jwks, trustDomain: table.project });
 * const verdict = verifier.cached(token) ?? (await verifier.verify(token));
 * if (!verdict.ok) return deny(401, verdict.reason);
 */
export function createIdentityVerifier(options: IdentityVerifierOptions): IdentityVerifier {
  const { trustDomain } = options;
  const now = options.now ?? Date.now;
  const capacity = Math.max(1, options.cacheSize ?? 10_000);
  const clockTolerance = Math.round((options.clockToleranceMs ?? 5_000) / 1000);
  const keys = createLocalJWKSet(options.jwks);
  /** token → verdict, oldest use first (Map keeps insertion order). */
  const cache = new Map<string, IdentityVerdict>();
  /** Verifications under way, so a burst with one new token verifies it once. */
  const pending = new Map<string, Promise<IdentityVerdict>>();

  const refuse = (reason: IdentityRefusal, detail: string): IdentityVerdict => ({ ok: false, reason, detail });

  function cached(token: string): IdentityVerdict | undefined {
    const verdict = cache.get(token);
    if (verdict === undefined) return undefined;
    if (verdict.ok && verdict.expiresAt <= now()) {
      cache.delete(token);
      return undefined;
    }
    // Move to the young end.
    cache.delete(token);
    cache.set(token, verdict);
    return verdict;
  }

  function remember(token: string, verdict: IdentityVerdict): void {
    // "Not yet valid" may become valid: ask again next time.
    if (!verdict.ok && verdict.reason === "not-yet-valid") return;
    cache.delete(token);
    while (cache.size >= capacity) {
      const oldest = cache.keys().next();
      if (oldest.done === true) break;
      cache.delete(oldest.value);
    }
    cache.set(token, verdict);
  }

  async function check(token: string): Promise<IdentityVerdict> {
    if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return refuse("malformed", "empty or oversized token");
    try {
      const { payload } = await jwtVerify(token, keys, {
        algorithms: ["ES256"],
        audience: IDENTITY_AUDIENCE,
        requiredClaims: ["sub", "exp", "iat"],
        currentDate: new Date(now()),
        clockTolerance,
      });
      const id = parseSpiffeId(payload.sub as string);
      if (id === undefined) return refuse("malformed", `sub is not a SPIFFE id of a service: ${JSON.stringify(payload.sub)}`);
      if (id.trustDomain !== trustDomain) return refuse("wrong-trust-domain", `token is for trust domain ${JSON.stringify(id.trustDomain)}, not ${JSON.stringify(trustDomain)}`);
      return { ok: true, service: id.service, expiresAt: (payload.exp as number) * 1000 };
    } catch (err) {
      return classify(err);
    }
  }

  return {
    cached,
    verify(token) {
      const hit = cached(token);
      if (hit !== undefined) return Promise.resolve(hit);
      let run = pending.get(token);
      if (run === undefined) {
        run = check(token).then((verdict) => {
          pending.delete(token);
          remember(token, verdict);
          return verdict;
        });
        pending.set(token, run);
      }
      return run;
    },
  };
}

/** Maps jose's errors to a refusal reason. */
function classify(err: unknown): IdentityVerdict {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const reason = ((): IdentityRefusal => {
    switch (code) {
      case "ERR_JWT_EXPIRED":
        return "expired";
      case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
        return "bad-signature";
      case "ERR_JWKS_NO_MATCHING_KEY":
      case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
        return "unknown-key";
      case "ERR_JWT_CLAIM_VALIDATION_FAILED": {
        const claim = (err as { claim?: unknown }).claim;
        if (claim === "aud") return "wrong-audience";
        if (claim === "nbf" || (claim === "iat" && /future/i.test(message))) return "not-yet-valid";
        return "malformed";
      }
      default:
        // ERR_JWS_INVALID, ERR_JWT_INVALID, ERR_JOSE_ALG_NOT_ALLOWED, bad base64, bad JSON…
        return "malformed";
    }
  })();
  return { ok: false, reason, detail: message };
}

/**
 * Splits `spiffe://<trustDomain>/<service>`; undefined for anything else (other schemes, a
 * query or fragment, more than one path segment, or a segment that is not a service name).
 */
export function parseSpiffeId(uri: string): { trustDomain: string; service: string } | undefined {
  if (typeof uri !== "string" || !uri.startsWith("spiffe://")) return undefined;
  const rest = uri.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const trustDomain = rest.slice(0, slash);
  const service = rest.slice(slash + 1);
  if (!/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/.test(trustDomain) || !isServiceName(service)) return undefined;
  return { trustDomain, service };
}

/**
 * The service a verified client certificate names: its one `spiffe://<trustDomain>/<service>`
 * URI SAN. Undefined when there is no certificate, no such SAN, more than one, or another
 * trust domain. It reads names only: check `socket.authorized` (the chain) first.
 *
 * @example
 * const service = socket.authorized ? serviceOfCertificate(socket.getPeerCertificate(), project) : undefined;
 */
export function serviceOfCertificate(peer: PeerCertificate | undefined, trustDomain: string): string | undefined {
  const san = peer?.subjectaltname;
  if (typeof san !== "string" || san === "") return undefined;
  // Node writes "URI:spiffe://a/b, DNS:localhost, IP Address:127.0.0.1"; values with special
  // characters come JSON-quoted (URI:"…"), which a valid SPIFFE id never needs.
  const uris = san
    .split(", ")
    .filter((entry) => entry.startsWith("URI:"))
    .map((entry) => entry.slice(4));
  const spiffe = uris.filter((uri) => uri.startsWith("spiffe://") || uri.startsWith('"spiffe://'));
  if (spiffe.length !== 1) return undefined;
  const id = parseSpiffeId(spiffe[0] as string);
  return id !== undefined && id.trustDomain === trustDomain ? id.service : undefined;
}
