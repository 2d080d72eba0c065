// The service's identity as Keelson hands it to a replica: a JWT-SVID in $KEELSON_IDENTITY_FILE
// and, with mTLS, a certificate, its key and the CA in $KEELSON_TLS_DIR. The control plane
// rewrites these files before they expire, so they are re-read when they change (checked at
// most every few seconds). Missing or broken files never break the service: it warns once and
// calls without an identity (the gateway then answers 401, which says what is wrong).
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { GATEWAY_SERVICE_NAME, IDENTITY_HEADER, REPLICA_ENV } from "@keelson/protocol";
import type { Agent, Dispatcher } from "undici";
import { createLogger, type Logger } from "./logger.js";

export interface IdentityOptions {
  /** The token file; defaults to $KEELSON_IDENTITY_FILE. Unset or empty: no token. */
  identityFile?: string;
  /** Folder of cert.pem, key.pem and ca.pem; defaults to $KEELSON_TLS_DIR. Unset or empty: no client certificate. */
  tlsDir?: string;
  /** Look at the files for changes at most this often; default 5000 ms. */
  checkMs?: number;
  /** Injectable clock (ms). */
  now?: () => number;
  logger?: Logger;
}

export interface Identity {
  /** The current identity token, or undefined when there is none. */
  token(): string | undefined;
  /** `{ "x-keelson-identity": token }`, or `{}` without a token. */
  identityHeaders(): Record<string, string>;
  /** `Bearer <token>` for the control plane's API, or undefined without a token. */
  authorization(): string | undefined;
  /** Whether a TLS folder is configured (calls to an https: gateway then present its certificate). */
  readonly tls: boolean;
  /**
   * An undici dispatcher presenting the service's certificate and trusting only the project's
   * CA, rebuilt when the files change; undefined without a TLS folder or while its files are unusable.
   */
  dispatcher(): Promise<Dispatcher | undefined>;
  /** Closes the dispatcher (waiting for calls under way). */
  close(): Promise<void>;
}

const DEFAULT_CHECK_MS = 5000;

interface Watched {
  /** inode, mtime and size: a rename over the file changes the inode even within one mtime tick. */
  signature: string | undefined;
  checkedAt: number;
}

/** The file's signature, or undefined when it does not exist. Other errors throw. */
function signatureOf(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.mtimeMs}:${s.size}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw err;
  }
}

/**
 * Reads the service's identity from the files Keelson maintains. Most code needs none of its
 * own: createClient(), tracing and the flag provider use defaultIdentity().
 *
 * @example
 * const identity = createIdentity();
 * await fetch(`${process.env.KEELSON_FLAGS_URL}/v1/flags`, { headers: { authorization: identity.authorization() ?? "" } });
 */
export function createIdentity(options: IdentityOptions = {}): Identity {
  const log = options.logger ?? createLogger();
  const now = options.now ?? Date.now;
  const checkMs = options.checkMs ?? DEFAULT_CHECK_MS;
  const identityFile = nonEmpty(options.identityFile ?? process.env[REPLICA_ENV.IDENTITY_FILE]);
  const tlsDir = nonEmpty(options.tlsDir ?? process.env[REPLICA_ENV.TLS_DIR]);
  const project = nonEmpty(process.env[REPLICA_ENV.PROJECT]);
  const warned = new Set<string>();
  const warnOnce = (key: string, msg: string, fields: Record<string, unknown>) => {
    if (warned.has(key)) return;
    warned.add(key);
    try {
      log.warn(msg, fields);
    } catch {
      // A broken logger must not break the service.
    }
  };

  let token: string | undefined;
  const tokenWatch: Watched = { signature: undefined, checkedAt: -Infinity };

  function currentToken(): string | undefined {
    if (identityFile === undefined) return undefined;
    const at = now();
    if (at - tokenWatch.checkedAt < checkMs) return token;
    tokenWatch.checkedAt = at;
    try {
      const signature = signatureOf(identityFile);
      if (signature === undefined) {
        token = undefined;
        tokenWatch.signature = undefined;
        warnOnce("token-missing", `the identity file $${REPLICA_ENV.IDENTITY_FILE} does not exist; calling without an identity`, { path: identityFile });
        return undefined;
      }
      if (signature === tokenWatch.signature) return token;
      const text = readFileSync(identityFile, "utf8").trim();
      tokenWatch.signature = signature;
      token = text === "" ? undefined : text;
      // A later disappearance is worth a warning again.
      warned.delete("token-missing");
      warned.delete("token-unreadable");
    } catch (err) {
      // Unreadable (permissions?): keep the token we had, it may still be valid.
      warnOnce("token-unreadable", "the identity file could not be read; keeping the token read before", { path: identityFile, err: describe(err) });
    }
    return token;
  }

  let agent: Agent | undefined;
  let tlsSignature: string | undefined;
  let tlsCheckedAt = -Infinity;
  let tlsCheck: Promise<Dispatcher | undefined> | undefined;

  async function rebuildIfChanged(dir: string): Promise<Dispatcher | undefined> {
    const paths = { cert: join(dir, "cert.pem"), key: join(dir, "key.pem"), ca: join(dir, "ca.pem") };
    try {
      const signatures = [signatureOf(paths.cert), signatureOf(paths.key), signatureOf(paths.ca)];
      if (signatures.some((s) => s === undefined)) {
        warnOnce("tls-missing", `$${REPLICA_ENV.TLS_DIR} lacks cert.pem, key.pem or ca.pem; calls to an https: gateway carry no client certificate`, { dir });
        return agent;
      }
      const signature = signatures.join("|");
      if (signature === tlsSignature) return agent;
      const material = { cert: readFileSync(paths.cert, "utf8"), key: readFileSync(paths.key, "utf8"), ca: readFileSync(paths.ca, "utf8") };
      // Caught mid-rotation (a new cert beside the old key)? Keep the current agent, look again next time.
      if (!new X509Certificate(material.cert).checkPrivateKey(createPrivateKey(material.key))) return agent;
      const { Agent } = await import("undici");
      const next = new Agent({ connect: { ...material, checkServerIdentity: gatewayIdentityCheck(project) } });
      const previous = agent;
      agent = next;
      tlsSignature = signature;
      warned.delete("tls-missing");
      warned.delete("tls-unreadable");
      // Calls under way on the old certificate finish; new ones use the new one.
      if (previous !== undefined) void previous.close().catch(() => undefined);
      return agent;
    } catch (err) {
      warnOnce("tls-unreadable", "the TLS files could not be used; keeping the client certificate read before", { dir, err: describe(err) });
      return agent;
    }
  }

  return {
    token: currentToken,
    identityHeaders(): Record<string, string> {
      const t = currentToken();
      return t === undefined ? {} : { [IDENTITY_HEADER]: t };
    },
    authorization() {
      const t = currentToken();
      return t === undefined ? undefined : `Bearer ${t}`;
    },
    tls: tlsDir !== undefined,
    dispatcher() {
      if (tlsDir === undefined) return Promise.resolve(undefined);
      const at = now();
      if (at - tlsCheckedAt < checkMs) return tlsCheck ?? Promise.resolve(agent);
      tlsCheckedAt = at;
      tlsCheck = rebuildIfChanged(tlsDir);
      return tlsCheck;
    },
    async close() {
      const current = agent;
      agent = undefined;
      tlsSignature = undefined;
      tlsCheckedAt = -Infinity;
      await current?.close().catch(() => undefined);
    },
  };
}

/**
 * Accepts the server when its name matches the host (the gateway's certificate names
 * localhost and 127.0.0.1) or, for other host names (containers), when the certificate —
 * already chained to the project's CA — is the gateway's own SPIFFE id.
 */
function gatewayIdentityCheck(project: string | undefined): (host: string, cert: PeerCertificate) => Error | undefined {
  return (host, cert) => {
    const byName = checkServerIdentity(host, cert);
    if (byName === undefined) return undefined;
    const san = typeof cert.subjectaltname === "string" ? cert.subjectaltname.split(", ") : [];
    if (project !== undefined && san.includes(`URI:spiffe://${project}/${GATEWAY_SERVICE_NAME}`)) return undefined;
    return byName;
  };
}

let processIdentity: Identity | undefined;

/** The process's identity, made on first use from $KEELSON_IDENTITY_FILE and $KEELSON_TLS_DIR. */
export function defaultIdentity(): Identity {
  processIdentity ??= createIdentity();
  return processIdentity;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
