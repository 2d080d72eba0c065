// Live data for the views: one event stream per logged-in tab (useEventStream), and loads that
// run again when it reports a change (useLiveLoad), with a slow safety poll in case it misses one.
import { useEffect, useRef, useState } from "preact/hooks";
import type { KeelsonEvent } from "@keelson/protocol";
import { UnauthorizedError, type Api } from "./api.js";
import { watchEvents } from "./event-stream.js";

/** A reload every 30 s even without events: the stream can miss what the event log never records. */
export const SAFETY_POLL_MS = 30_000;
/** Events arrive in bursts (a scale is several replica events): one reload per burst. */
const COALESCE_MS = 150;

export interface Live {
  /** Grows by one per event received and per (re)connection: views reload when it changes. */
  revision: number;
  /** The stream is open. */
  connected: boolean;
  /** Why it dropped, while it waits to reconnect. */
  dropped: string | undefined;
  lastEvent: KeelsonEvent | undefined;
}

export function useEventStream(api: Api, onUnauthorized: () => void): Live {
  const [live, setLive] = useState<Live>({ revision: 0, connected: false, dropped: undefined, lastEvent: undefined });
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;
  useEffect(() => {
    const controller = new AbortController();
    void watchEvents({
      token: api.token,
      signal: controller.signal,
      onOpen: () => setLive((prev) => ({ ...prev, revision: prev.revision + 1, connected: true, dropped: undefined })),
      onEvent: (event) => setLive((prev) => ({ ...prev, revision: prev.revision + 1, lastEvent: event })),
      onDrop: (err, retryInMs) => setLive((prev) => ({ ...prev, connected: false, dropped: `${err.message}; reconnecting in ${Math.round(retryInMs / 1000)} s` })),
      onUnauthorized: () => unauthorized.current(),
    });
    return () => controller.abort();
  }, [api]);
  return live;
}

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  updatedAt: Date | undefined;
}

/**
 * Runs `load` now, again (once per burst) whenever `revision` changes, and every SAFETY_POLL_MS;
 * never two at once. A refused token stops it and calls `onUnauthorized` (the app logs out).
 */
export function useLiveLoad<T>(load: (signal: AbortSignal) => Promise<T>, revision: number, onUnauthorized: () => void): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: undefined, error: undefined, updatedAt: undefined });
  const request = useRef<() => void>(() => {});
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let running = false;
    let again = false;
    async function run() {
      timer = undefined;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        const data = await load(controller.signal);
        if (!stopped) setState({ data, error: undefined, updatedAt: new Date() });
      } catch (err) {
        if (stopped) return;
        if (err instanceof UnauthorizedError) {
          stopped = true;
          onUnauthorized();
          return;
        }
        setState((prev) => ({ ...prev, error: err as Error }));
      } finally {
        running = false;
      }
      if (stopped) return;
      if (again) {
        again = false;
        schedule(COALESCE_MS);
      } else schedule(SAFETY_POLL_MS);
    }
    function schedule(ms: number) {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => void run(), ms);
    }
    request.current = () => {
      if (stopped) return;
      if (running) again = true;
      else schedule(COALESCE_MS);
    };
    void run();
    return () => {
      stopped = true;
      controller.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [load, onUnauthorized]);
  // The first revision is the stream opening: the load above already ran for it.
  const seen = useRef(revision);
  useEffect(() => {
    if (revision === seen.current) return;
    seen.current = revision;
    request.current();
  }, [revision]);
  return state;
}
