// Runs a load now and again every `intervalMs` after the previous one settles (never two at once),
// paused while the tab is hidden. The API has no event stream for browsers yet, so views poll.
import { useEffect, useState } from "preact/hooks";

export interface Polled<T> {
  data: T | undefined;
  error: Error | undefined;
  updatedAt: Date | undefined;
}

export function usePolling<T>(load: (signal: AbortSignal) => Promise<T>, intervalMs: number, onError: (err: Error) => boolean): Polled<T> {
  const [state, setState] = useState<Polled<T>>({ data: undefined, error: undefined, updatedAt: undefined });
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let running = false;
    async function tick() {
      timer = undefined;
      if (document.hidden) return; // visibilitychange resumes
      running = true;
      try {
        const data = await load(controller.signal);
        if (!stopped) setState({ data, error: undefined, updatedAt: new Date() });
      } catch (err) {
        if (stopped) return;
        // onError true: the caller took over (logged out); stop polling.
        if (onError(err as Error)) return;
        setState((prev) => ({ ...prev, error: err as Error }));
      } finally {
        running = false;
      }
      if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
    }
    function onVisibility() {
      if (!document.hidden && !running && timer === undefined && !stopped) void tick();
    }
    document.addEventListener("visibilitychange", onVisibility);
    void tick();
    return () => {
      stopped = true;
      controller.abort();
      if (timer !== undefined) clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [load, intervalMs, onError]);
  return state;
}
