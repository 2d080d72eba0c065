// Scale from zero, the control-plane side of the gateway: while requests for a service with no
// replica are held, ask the control plane once to start one (POST /v1/services/{name}/activate,
// with the gateway's identity credential), retrying a failed ask at most every `retryMs`.
import { Agent, request } from "undici";
import { credentialHeader } from "./credential-file.js";
import { controlPlaneUrls } from "./routing-watch.js";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";

/**
 * Where a gateway process reports its hold episodes. An episode of a service begins with the
 * first request held for it and ends when none is held any more (an endpoint arrived, or every
 * held request timed out or left).
 */
export interface ServiceActivator {
  /** An episode of `service` began; a second call within the same episode changes nothing. */
  holding(service: string): void;
  /** The episode of `service` ended. */
  released(service: string): void;
  /** Cancels retries and asks in flight. */
  stop(): Promise<void>;
}

/** What the control plane answers to an activate call (202). */
export interface ActivateAnswer {
  service: string;
  /** Replica count before and after. */
  from: number;
  to: number;
}

/** Asks the control plane to start a replica of `service`; rejects when it did not accept. */
export type ActivateCall = (service: string, signal: AbortSignal) => Promise<ActivateAnswer | undefined>;

export interface ServiceActivatorOptions {
  activate: ActivateCall;
  /** Least time between two asks of one episode after a failure (default 1 s). */
  retryMs?: number;
  log?: GatewayLogger;
}

interface Episode {
  attempts: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * One ask per episode and service: `holding` starts it, a failure is logged and asked again after
 * `retryMs` while the episode lasts, success ends the asking (the replica is on its way; the
 * routing table will bring it). An ask still running when its episode ends is let finish.
 *
 * @example
 * const activator = createServiceActivator({ activate: createActivateCall({ controlPlaneUrl }).call });
 * activator.holding("orders"); // POST /v1/services/orders/activate, once
 */
export function createServiceActivator(options: ServiceActivatorOptions): ServiceActivator {
  const log = options.log ?? silentLogger;
  const retryMs = options.retryMs ?? 1_000;
  const episodes = new Map<string, Episode>();
  const abort = new AbortController();

  const ask = (service: string, episode: Episode) => {
    episode.attempts++;
    const began = Date.now();
    options.activate(service, abort.signal).then(
      (answer) => {
        log.info({ service, attempts: episode.attempts, ms: Date.now() - began, ...(answer === undefined ? {} : { from: answer.from, to: answer.to }) }, "asked the control plane to start a replica of a service scaled to zero");
      },
      (err: unknown) => {
        if (abort.signal.aborted) return;
        const current = episodes.get(service) === episode;
        log.warn(
          { service, attempts: episode.attempts, err: err instanceof Error ? err.message : String(err), retryInMs: current ? retryMs : undefined },
          current ? "asking the control plane to start a replica failed; asking again while requests are held" : "asking the control plane to start a replica failed",
        );
        if (!current) return;
        episode.timer = setTimeout(() => {
          episode.timer = undefined;
          if (episodes.get(service) === episode && !abort.signal.aborted) ask(service, episode);
        }, retryMs);
      },
    );
  };

  return {
    holding(service) {
      if (episodes.has(service) || abort.signal.aborted) return;
      const episode: Episode = { attempts: 0, timer: undefined };
      episodes.set(service, episode);
      ask(service, episode);
    },
    released(service) {
      const episode = episodes.get(service);
      if (episode === undefined) return;
      if (episode.timer !== undefined) clearTimeout(episode.timer);
      episodes.delete(service);
    },
    async stop() {
      abort.abort();
      for (const e of episodes.values()) if (e.timer !== undefined) clearTimeout(e.timer);
      episodes.clear();
    },
  };
}

export interface ActivateCallOptions {
  /** Base URL of the control plane, e.g. http://127.0.0.1:7070 */
  controlPlaneUrl: string;
  /** File holding the gateway's identity token (re-read when it changes), sent as its bearer credential. */
  credentialFile?: string;
  /** Longest wait for the control plane's answer (default 5 s). */
  timeoutMs?: number;
}

/**
 * The activate call over HTTP: `POST {controlPlaneUrl}/v1/services/{name}/activate` with
 * `authorization: Bearer <identity token>`. 2xx is success (202 `{ service, from, to }`);
 * anything else rejects with the status and the error body's message.
 */
export function createActivateCall(options: ActivateCallOptions): { call: ActivateCall; close(): Promise<void> } {
  // With several control-plane instances, the first: any instance forwards the call to the leader.
  const base = controlPlaneUrls(options.controlPlaneUrl)[0]!;
  const timeoutMs = options.timeoutMs ?? 5_000;
  // Its own pool, closed with the gateway, like the routing watch's.
  const agent = new Agent({ connectTimeout: timeoutMs });
  return {
    async call(service, signal) {
      const authorization = await credentialHeader(options.credentialFile);
      const res = await request(`${base}/v1/services/${encodeURIComponent(service)}/activate`, {
        dispatcher: agent,
        method: "POST",
        signal,
        headers: { "content-type": "application/json", accept: "application/json", ...(authorization === undefined ? {} : { authorization }) },
        body: "{}",
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await res.body.text();
      if (res.statusCode < 200 || res.statusCode > 299) {
        let why = text.slice(0, 200);
        try {
          const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
          if (typeof body.error?.message === "string") why = `${String(body.error.code)}: ${body.error.message}`;
        } catch {
          // Not JSON: the text as it is.
        }
        throw new Error(`the control plane answered ${res.statusCode}${why === "" ? "" : ` (${why})`}`);
      }
      try {
        const body = JSON.parse(text) as Partial<ActivateAnswer>;
        return typeof body.from === "number" && typeof body.to === "number" ? { service: String(body.service ?? service), from: body.from, to: body.to } : undefined;
      } catch {
        return undefined;
      }
    },
    close: () => agent.destroy().catch(() => undefined),
  };
}
