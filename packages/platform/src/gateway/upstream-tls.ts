// The gateway as a TLS client of replicas that serve HTTPS (`tls: true`): it presents its own
// certificate (the mesh listener's, from the project's CA) and accepts a replica only when the
// replica's certificate is that service's SPIFFE id. The files are renewed in place; they are
// looked at again at most every `reloadIntervalMs`, and new connections use the new ones.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ConnectionOptions, PeerCertificate } from "node:tls";
import { buildConnector } from "undici";
import { serviceOfCertificate } from "../security/index.js";

/** What every TLS connection to a replica of `service` is made with (node `tls.connect` options). */
export type UpstreamTlsOptions = () => ConnectionOptions;

export interface UpstreamTls {
  /** TLS options for connections to replicas of `service` in `trustDomain` (throws when the files cannot be read). */
  optionsFor(service: string, trustDomain: string): UpstreamTlsOptions;
  /** An undici connector for a replica's Pool, rebuilt when the gateway's certificate files change. */
  connectorFor(service: string, trustDomain: string, timeoutMs: number): buildConnector.connector;
}

const FILES = ["cert.pem", "key.pem", "ca.pem"] as const;

/**
 * Reads cert.pem, key.pem and ca.pem from `dir` (synchronously: a few small files, read again
 * only when their mtimes changed, and stat'ed at most every `reloadIntervalMs`).
 *
 * @example
 * const tls = createUpstreamTls({ dir: ".keelson/identity/keelson-gateway" });
 * const pool = new Pool("https://127.0.0.1:4100", { connect: tls.connectorFor("orders", "shop", 10_000) });
 */
export function createUpstreamTls(options: { dir: string; reloadIntervalMs?: number; now?: () => number }): UpstreamTls {
  const { dir } = options;
  const reloadMs = options.reloadIntervalMs ?? 30_000;
  const now = options.now ?? (() => performance.now());
  let files: { cert: string; key: string; ca: string; stamp: string } | undefined;
  let checkedAt = -Infinity;

  const current = () => {
    const t = now();
    if (files !== undefined && t - checkedAt < reloadMs) return files;
    const stamp = FILES.map((name) => statSync(join(dir, name)).mtimeMs).join(",");
    checkedAt = t;
    if (files?.stamp !== stamp) {
      const [cert, key, ca] = FILES.map((name) => readFileSync(join(dir, name), "utf8")) as [string, string, string];
      // Caught between the key and the certificate of a renewal: keep the old pair, look again next time.
      if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
        if (files !== undefined) {
          checkedAt = -Infinity;
          return files;
        }
        throw new Error(`${join(dir, "cert.pem")} does not match ${join(dir, "key.pem")}`);
      }
      files = { cert, key, ca, stamp };
    }
    return files;
  };

  const optionsFor = (service: string, trustDomain: string): UpstreamTlsOptions => {
    // Any certificate of the CA names localhost: the name check is the SPIFFE id instead.
    const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
      const named = serviceOfCertificate(cert, trustDomain);
      return named === service ? undefined : new Error(`the replica's certificate is ${named === undefined ? "no service" : `"${named}"`} of spiffe://${trustDomain}, not "${service}"`);
    };
    return () => {
      const f = current();
      return { cert: f.cert, key: f.key, ca: f.ca, servername: "localhost", minVersion: "TLSv1.2", checkServerIdentity };
    };
  };

  return {
    optionsFor,
    connectorFor(service, trustDomain, timeoutMs) {
      const tlsOptions = optionsFor(service, trustDomain);
      let built: { stamp: string; connect: buildConnector.connector } | undefined;
      return (opts, callback) => {
        let stamp: string;
        let connectOptions: ConnectionOptions;
        try {
          connectOptions = tlsOptions();
          stamp = files?.stamp ?? "";
        } catch (err) {
          callback(err instanceof Error ? err : new Error(String(err)), null);
          return;
        }
        // A new connector for new files: new connections present the renewed certificate, while
        // open keep-alive connections keep the session they started with (still valid: the old
        // certificate lives a third of its lifetime past renewal).
        if (built?.stamp !== stamp) built = { stamp, connect: buildConnector({ ...connectOptions, timeout: timeoutMs } as buildConnector.BuildOptions) };
        built.connect({ ...opts, servername: "localhost" }, callback);
      };
    },
  };
}
