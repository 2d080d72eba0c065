// Credentials on external routes: an API key (compared by SHA-256 against the hashes the table
// carries; the gateway never holds the keys) or a JWT verified against the issuer's public keys.
// JWT verification is asynchronous: `prepare` verifies ahead of the exchange and caches the
// verdict, so `check` on the hot path is a map lookup.
import { createHash } from "node:crypto";
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from "jose";
import type { RouteAuth } from "@keelson/protocol";

/** Why a request was refused, for the 401 answer. */
export type RouteAuthVerdict = { ok: true } | { ok: false; message: string };

export interface RouteAuthCheck {
  /** The credential's verdict, when it can be given without waiting (API keys always; JWTs once verified). */
  check(headers: IncomingHeaders): RouteAuthVerdict | undefined;
  /** Verifies the request's JWT and caches the verdict; undefined when there is nothing to wait for. */
  prepare(headers: IncomingHeaders): Promise<void> | undefined;
  /** The route's auth as the table gave it (a new table with the same auth keeps this check and its cache). */
  readonly key: string;
}

type IncomingHeaders = Record<string, string | string[] | undefined>;

const MAX_CACHE = 10_000;
const MAX_TOKEN_LENGTH = 16 * 1024;

/** Compiles a route's auth; `previous` checks are reused when the auth did not change (their caches survive). */
export function compileRouteAuth(auth: RouteAuth | undefined, previous?: ReadonlyMap<string, RouteAuthCheck>): RouteAuthCheck | undefined {
  if (auth === undefined || auth === "public") return undefined;
  const key = JSON.stringify(auth);
  const reused = previous?.get(key);
  if (reused !== undefined) return reused;
  return "apiKey" in auth ? apiKeyCheck(auth.apiKey.header, auth.apiKey.sha256, key) : jwtCheck(auth.jwt, key);
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function apiKeyCheck(header: string, hashes: readonly string[], key: string): RouteAuthCheck {
  const accepted = new Set(hashes);
  return {
    key,
    check(headers) {
      const presented = first(headers[header]);
      if (presented === undefined || presented.length === 0) return { ok: false, message: `this route needs an API key in the ${header} header` };
      if (presented.length > 4096 || !accepted.has(createHash("sha256").update(presented).digest("hex"))) return { ok: false, message: "the API key is not valid for this route" };
      return { ok: true };
    },
    prepare: () => undefined,
  };
}

function jwtCheck(config: Extract<RouteAuth, { jwt: unknown }>["jwt"], key: string): RouteAuthCheck {
  const keys: JWTVerifyGetKey = config.jwksUrl !== undefined ? createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 }) : createLocalJWKSet({ keys: (config.jwks?.keys ?? []) as never[] });
  /** token → expiry (ms since the epoch) of a verified token, or the refusal. */
  const cache = new Map<string, { until: number; verdict: RouteAuthVerdict }>();
  const pending = new Map<string, Promise<void>>();
  const bearer = (headers: IncomingHeaders) => {
    const h = first(headers.authorization);
    const m = h === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m?.[1];
  };
  const remember = (token: string, until: number, verdict: RouteAuthVerdict) => {
    if (cache.size >= MAX_CACHE) cache.delete(cache.keys().next().value as string);
    cache.set(token, { until, verdict });
  };
  return {
    key,
    check(headers) {
      const token = bearer(headers);
      if (token === undefined) return { ok: false, message: "this route needs a JWT: authorization: Bearer <token>" };
      if (token.length > MAX_TOKEN_LENGTH) return { ok: false, message: "the JWT is too large" };
      const hit = cache.get(token);
      if (hit === undefined) return undefined;
      if (Date.now() >= hit.until) {
        cache.delete(token);
        // A verified token past its expiry is refused; a remembered refusal is checked again.
        return hit.verdict.ok ? { ok: false, message: "the JWT has expired" } : undefined;
      }
      return hit.verdict;
    },
    prepare(headers) {
      const token = bearer(headers);
      if (token === undefined || token.length > MAX_TOKEN_LENGTH || cache.has(token)) return undefined;
      let running = pending.get(token);
      if (running === undefined) {
        running = jwtVerify(token, keys, {
          issuer: config.issuer,
          ...(config.audience === undefined ? {} : { audience: config.audience }),
          algorithms: config.algorithms ?? ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
          clockTolerance: 5,
        })
          .then(
            ({ payload }) => remember(token, typeof payload.exp === "number" ? payload.exp * 1000 : Date.now() + 60_000, { ok: true }),
            (err: unknown) => {
              const code = (err as { code?: string }).code;
              const message =
                code === "ERR_JWT_EXPIRED"
                  ? "the JWT has expired"
                  : code === "ERR_JWT_CLAIM_VALIDATION_FAILED"
                    ? `the JWT's claims are not accepted (${(err as { claim?: string }).claim ?? "claim"})`
                    : code === "ERR_JWKS_TIMEOUT" || code === "ERR_JOSE_GENERIC"
                      ? "the issuer's keys could not be fetched"
                      : "the JWT is not valid for this route";
              // A refusal is cached briefly: a bad token must not cost a verification per request.
              remember(token, Date.now() + 30_000, { ok: false, message });
            },
          )
          .finally(() => pending.delete(token));
        pending.set(token, running);
      }
      return running;
    },
  };
}
