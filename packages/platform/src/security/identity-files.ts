// Each service's identity on disk, where its replicas read it: <stateDir>/identity/<service>/
// holds token.jwt and, with mTLS, cert.pem, key.pem and ca.pem. Files are rewritten (whole,
// via rename) when two thirds of their lifetime has passed; replicas re-read them, no restarts.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { assertServiceName, type CertificateAuthority } from "./ca.js";
import { writePrivateFile } from "./private-file.js";

/** The logging surface the issuer needs (pino's shape). */
export interface IdentityLog {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Where a service's identity files are, as replicas are told (KEELSON_IDENTITY_FILE, KEELSON_TLS_DIR). */
export interface IdentityPaths {
  /** The token file (token.jwt). */
  identityFile: string;
  /** With mTLS: the folder of cert.pem, key.pem and ca.pem. */
  tlsDir?: string;
  /** ms since the epoch at which the current token (and certificate) expire. */
  expiresAt: number;
}

export interface IdentityIssuer {
  /** Writes the service's identity files unless fresh ones were written already; returns their paths. */
  ensure(service: string): Promise<IdentityPaths>;
  /** Rewrites every ensured identity past two thirds of its lifetime; resolves to the services renewed. */
  renewDue(): Promise<string[]>;
  /** Runs renewDue every `intervalMs` (default 60 s) on an unref'd timer. */
  start(intervalMs?: number): void;
  stop(): void;
  /** Deletes the service's identity files and stops renewing them. */
  forget(service: string): Promise<void>;
}

export interface IdentityIssuerOptions {
  ca: CertificateAuthority;
  /** The control plane's state folder; files go to <stateDir>/identity/<service>/. */
  stateDir: string;
  /** Lifetime of each token and certificate (manifest security.certTtl). */
  ttlMs: number;
  /** Also write a certificate, its key and the CA certificate. */
  mtls: boolean;
  /** Injectable clock (ms since the epoch). */
  now?: () => number;
  log?: IdentityLog;
}

interface Issued {
  paths: IdentityPaths;
  renewAt: number;
}

const silent: IdentityLog = { info() {}, error() {} };

/**
 * Keeps services' identity files written and fresh.
 *
 * @example
 * const issuer = createIdentityIssuer({ ca, stateDir, ttlMs: manifest.security.certTtl, mtls });
 * const { identityFile, tlsDir } = await issuer.ensure("orders");
 * issuer.start();
 */
export function createIdentityIssuer(options: IdentityIssuerOptions): IdentityIssuer {
  const { ca, ttlMs, mtls } = options;
  const now = options.now ?? Date.now;
  const log = options.log ?? silent;
  const root = join(options.stateDir, "identity");
  const issued = new Map<string, Issued>();
  /** One write at a time per service, so ensure, renewDue and forget never interleave. */
  const queues = new Map<string, Promise<unknown>>();
  let timer: NodeJS.Timeout | undefined;

  function serially<T>(service: string, work: () => Promise<T>): Promise<T> {
    const before = queues.get(service) ?? Promise.resolve();
    const run = before.then(work, work);
    const tail = run.catch(() => undefined);
    queues.set(service, tail);
    void tail.then(() => {
      if (queues.get(service) === tail) queues.delete(service);
    });
    return run;
  }

  async function write(service: string): Promise<Issued> {
    const dir = join(root, service);
    const issuedAt = now();
    const token = await ca.issueToken({ service, ttlMs });
    const identityFile = join(dir, "token.jwt");
    let tlsDir: string | undefined;
    if (mtls) {
      const cert = await ca.issueCertificate({ service, ttlMs });
      // The key first: a reader that sees a new cert.pem also finds its key (and checks the pair).
      await writePrivateFile(join(dir, "ca.pem"), ca.caPem());
      await writePrivateFile(join(dir, "key.pem"), cert.keyPem);
      await writePrivateFile(join(dir, "cert.pem"), cert.certPem);
      tlsDir = dir;
    }
    await writePrivateFile(identityFile, token);
    const paths: IdentityPaths = { identityFile, expiresAt: issuedAt + ttlMs, ...(tlsDir === undefined ? {} : { tlsDir }) };
    const entry = { paths, renewAt: issuedAt + Math.floor((ttlMs * 2) / 3) };
    issued.set(service, entry);
    return entry;
  }

  async function renewDue(): Promise<string[]> {
    const due = [...issued].filter(([, entry]) => entry.renewAt <= now()).map(([service]) => service);
    const renewed: string[] = [];
    await Promise.all(
      due.map((service) =>
        serially(service, async () => {
          const entry = issued.get(service);
          // Forgotten or renewed by ensure() meanwhile.
          if (entry === undefined || entry.renewAt > now()) return;
          await write(service);
          renewed.push(service);
          log.info({ service, expiresAt: new Date(issued.get(service)?.paths.expiresAt ?? 0).toISOString() }, "renewed service identity");
        }).catch((err: unknown) => {
          log.error({ service, err: err instanceof Error ? err.message : String(err) }, "renewing a service identity failed; retrying on the next round");
        }),
      ),
    );
    return renewed.sort();
  }

  return {
    ensure(service) {
      try {
        assertServiceName(service);
      } catch (err) {
        return Promise.reject(err);
      }
      return serially(service, async () => {
        const entry = issued.get(service);
        if (entry !== undefined && entry.renewAt > now()) return { ...entry.paths };
        return { ...(await write(service)).paths };
      });
    },
    renewDue,
    start(intervalMs = 60_000) {
      if (timer !== undefined) return;
      timer = setInterval(() => void renewDue(), intervalMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
    forget(service) {
      try {
        assertServiceName(service);
      } catch (err) {
        return Promise.reject(err);
      }
      return serially(service, async () => {
        issued.delete(service);
        await rm(join(root, service), { recursive: true, force: true });
      });
    },
  };
}
