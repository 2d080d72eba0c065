// A follower's API: every instance answers every endpoint, but state-changing work (deploys,
// scaling, replicas, the loops) belongs to the leader, and much of what is read (replica states,
// live metrics) lives in its memory. So a follower forwards API requests to the leader as they
// are, streaming both ways (NDJSON progress, SSE), as Vault's standby nodes do; it answers the
// few things it knows itself: health, readiness, its own metrics and the routing table gateways
// follow (read from the store).
import type { IncomingMessage, ServerResponse } from "node:http";
import { KeelsonError } from "@keelson/protocol";
import { Agent, request } from "undici";
import type { LeaderRecord } from "../store/index.js";
import { drained, sendError } from "./http.js";

/** Paths a follower answers itself. */
const LOCAL_PATHS = new Set(["/healthz", "/readyz", "/metrics", "/v1/routing", "/v1/watch/routing"]);

/** Marks a forwarded request, so that one is never forwarded twice (a stale leader record). */
export const FORWARDED_HEADER = "x-keelson-forwarded-by";

// Hop-by-hop headers (RFC 9110 §7.6.1) are the connection's own; undici refuses some of them.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host"]);

export interface LeaderForwarder {
  /** True when it took the request (this instance follows, and the path is not answered locally). */
  forward(req: IncomingMessage, res: ServerResponse): boolean;
  close(): Promise<void>;
}

export function createLeaderForwarder(options: {
  /** This instance's id, sent in FORWARDED_HEADER. */
  self: string;
  /** Whether this instance follows right now. */
  following: () => boolean;
  /** The leader as recorded (cached by the caller). */
  leader: () => Promise<LeaderRecord | undefined>;
  /** PEM the leader's HTTPS certificate is checked against (the API's own certificate when TLS is on). */
  ca?: string;
  log: { warn(obj: object, msg: string): void };
}): LeaderForwarder {
  const agent = new Agent({ connectTimeout: 3_000, ...(options.ca === undefined ? {} : { connect: { ca: options.ca } }) });

  async function pass(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers[FORWARDED_HEADER] !== undefined) {
      throw new KeelsonError("KEELSON_ERR_NO_LEADER", "this request was forwarded to an instance that does not lead either: the leader record is stale while an election runs; retry");
    }
    const leader = await options.leader();
    if (leader === undefined || leader.id === options.self) {
      throw new KeelsonError("KEELSON_ERR_NO_LEADER", "no control-plane instance leads right now; retry in a moment");
    }
    const headers: Record<string, string | string[]> = { [FORWARDED_HEADER]: options.self };
    const named = new Set(String(req.headers.connection ?? "").toLowerCase().split(",").map((h) => h.trim()));
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
      headers[name] = value;
    }
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    let upstream: Awaited<ReturnType<typeof request>>;
    try {
      upstream = await request(new URL(req.url ?? "/", leader.url), {
        method: req.method as "GET",
        headers,
        ...(hasBody ? { body: req } : {}),
        dispatcher: agent,
        signal: abort.signal,
        // Deploys stream progress for minutes, watches for longer: no body timeout.
        headersTimeout: 60_000,
        bodyTimeout: 0,
      });
    } catch (err) {
      throw new KeelsonError("KEELSON_ERR_NO_LEADER", `the leading control plane (${leader.url}, term ${leader.term}) did not answer: ${(err as Error).message}; retry in a moment`);
    }
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
    res.writeHead(upstream.statusCode, out);
    res.flushHeaders();
    try {
      for await (const chunk of upstream.body) {
        if (!res.write(chunk as Buffer)) await drained(res);
      }
    } catch (err) {
      if (!abort.signal.aborted) options.log.warn({ err, path: req.url }, "forwarding the leader's answer broke off");
    }
    res.end();
  }

  return {
    forward(req, res) {
      if (!options.following()) return false;
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      if (LOCAL_PATHS.has(path)) return false;
      pass(req, res).catch((err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof KeelsonError && err.code === "KEELSON_ERR_NO_LEADER") res.setHeader("retry-after", "1");
        sendError(res, err instanceof KeelsonError ? err : new KeelsonError("KEELSON_ERR_NO_LEADER", `forwarding to the leader failed: ${String(err)}`));
      });
      return true;
    },
    async close() {
      await agent.destroy().catch(() => undefined);
    },
  };
}
