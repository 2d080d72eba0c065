// Follows GET /v1/watch/events with fetch and a streaming Server-Sent Events parser: EventSource
// cannot send the bearer header. Reconnects with backoff, resuming after the last event seen.
import type { KeelsonEvent } from "@keelson/protocol";
import { UnauthorizedError } from "./api.js";

/** One SSE message as the parser yields it (comments, such as heartbeats, are dropped). */
export interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
}

/**
 * A streaming SSE parser: feed it text as it arrives, it calls `onMessage` per complete message.
 * Follows the WHATWG rules that matter here: CRLF/LF/CR line ends, `:` comments, multi-line data.
 */
export function createSseParser(onMessage: (m: SseMessage) => void): { push(text: string): void } {
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  function line(text: string): void {
    if (text === "") {
      if (data.length > 0) onMessage({ event: event || "message", data: data.join("\n"), id });
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  return {
    push(text) {
      buffer += text;
      // A trailing CR may be half of a CRLF: keep it until the next chunk.
      const lines = buffer.split(/\r\n|\n|\r(?=[\s\S])/);
      buffer = lines.pop() ?? "";
      for (const l of lines) line(l);
    },
  };
}

export interface WatchOptions {
  token: string;
  /** Each new event, in seq order. */
  onEvent: (event: KeelsonEvent) => void;
  /** The stream is open (first connection or a reconnection): a view may reload what it shows. */
  onOpen: () => void;
  /** The stream dropped; it reconnects in `retryInMs`. */
  onDrop: (err: Error, retryInMs: number) => void;
  /** The API refused the token: the stream stops. */
  onUnauthorized: () => void;
  signal: AbortSignal;
}

const BACKOFF_MS = [1000, 2000, 5000, 10_000, 30_000];

/** Follows the event stream until `signal` aborts or the token is refused. */
export async function watchEvents(options: WatchOptions): Promise<void> {
  const { signal } = options;
  let after: number | undefined;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const query = after === undefined ? "" : `?after=${after}`;
      const res = await fetch(`/v1/watch/events${query}`, { headers: { authorization: `Bearer ${options.token}`, accept: "text/event-stream" }, signal });
      if (res.status === 401) throw new UnauthorizedError("the control plane refused the token");
      if (!res.ok || res.body === null) throw new Error(`the event stream answered ${res.status}`);
      failures = 0;
      options.onOpen();
      const parser = createSseParser((m) => {
        if (m.event !== "keelson") return;
        const event = JSON.parse(m.data) as KeelsonEvent;
        after = event.seq;
        options.onEvent(event);
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
      throw new Error("the event stream ended");
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof UnauthorizedError) {
        options.onUnauthorized();
        return;
      }
      const wait = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)] ?? 30_000;
      failures++;
      options.onDrop(err as Error, wait);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
  }
}
