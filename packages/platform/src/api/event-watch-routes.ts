// GET /v1/watch/events: the project's event log as Server-Sent Events, for browsers (the dashboard)
// and scripts. The store has no change feed, so each stream follows the log by reading it again
// every `pollMs`; a read takes at most 1,000 events, so a burst is sent over several reads.
import { KeelsonError } from "@keelson/protocol";
import type { Store } from "../store/index.js";
import { drained, type Route } from "./http.js";

/** Events read from the store per poll, at most. */
export const WATCH_PAGE = 1000;

export interface EventWatchDeps {
  store: Pick<Store, "listEvents">;
  project: string;
  /** How often each stream reads the log for new events (default 500 ms). */
  pollMs?: number;
  /** How often an idle stream sends a comment so proxies keep it open (default 15 s). */
  heartbeatMs?: number;
  log?: { warn(obj: object, msg?: string): void };
}

export interface EventWatch {
  /** Ends every open stream (the control plane is closing). */
  close(): void;
}

/**
 * Registers `GET /v1/watch/events?after=<seq>`: one `event: keelson` per event after `after`
 * (default: the newest event now), in seq order, each with its seq as the SSE id.
 */
export function addEventWatchRoutes(route: Route, deps: EventWatchDeps): EventWatch {
  const { store, project } = deps;
  const pollMs = deps.pollMs ?? 500;
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const open = new Set<() => void>();

  route("GET", "/v1/watch/events", "read", async (req, res, _p, u) => {
    const raw = u.searchParams.get("after") ?? req.headers["last-event-id"];
    let after: number;
    if (raw === undefined || raw === "" || Array.isArray(raw)) {
      const [last] = await store.listEvents({ project, descending: true, limit: 1 });
      after = last?.seq ?? 0;
    } else {
      after = Number(raw);
      if (!Number.isSafeInteger(after) || after < 0) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `after: expected an event seq (a whole number, 0 or more), got ${JSON.stringify(raw.slice(0, 40))}`);
    }

    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive" });
    res.flushHeaders();
    // Tells the client where the stream starts, so a reconnect can resume from there.
    res.write(`: after ${after}\n\n`);

    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let lastWrite = Date.now();
    const stop = () => {
      if (stopped) return;
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      open.delete(stop);
      if (!res.writableEnded) res.end();
    };
    open.add(stop);
    req.once("close", stop);
    res.once("close", stop);

    const tick = async () => {
      timer = undefined;
      let full = false;
      try {
        const events = await store.listEvents({ project, afterSeq: after, limit: WATCH_PAGE });
        if (stopped) return;
        full = events.length === WATCH_PAGE;
        for (const event of events) {
          res.write(`id: ${event.seq}\nevent: keelson\ndata: ${JSON.stringify(event)}\n\n`);
          after = event.seq;
        }
        if (events.length > 0) lastWrite = Date.now();
        else if (Date.now() - lastWrite >= heartbeatMs) {
          res.write(": heartbeat\n\n");
          lastWrite = Date.now();
        }
      } catch (err) {
        // A store hiccup: keep the stream, try again on the next tick.
        deps.log?.warn({ err }, "reading the event log for /v1/watch/events failed");
      }
      // A client that reads slowly holds the stream back rather than the server's memory.
      if (!stopped && res.writableNeedDrain) await drained(res);
      // A full page means more are waiting: read again at once.
      if (!stopped) timer = setTimeout(() => void tick(), full ? 0 : pollMs);
    };
    await tick();
  });

  return {
    close() {
      for (const stop of [...open]) stop();
    },
  };
}

