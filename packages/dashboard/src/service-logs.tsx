// The Service view's logs tail: the last lines of every replica, merged in time order, then new
// ones as they come (the API's follow stream), searched by the API (so older matches are found,
// not only those on screen). A dropped stream is opened again after a few seconds. A hidden tab
// closes it: browsers allow six connections per server, and the event stream holds one already.
import { useEffect, useRef, useState } from "preact/hooks";
import { UnauthorizedError, type Api } from "./api.js";
import { appendBounded, createLineSplitter, highlight, parseLogLine } from "./log-lines.js";
import { followLogs, type LogLine } from "./service-api.js";
import "./service-view.css";

/** Lines shown (the tail asked for, and the most kept as new ones come). */
export const LOG_TAIL = 200;
const RETRY_MS = 5_000;

/** A line with its place in the stream: a stable key as older lines scroll out. */
type Shown = LogLine & { n: number };

interface Tail {
  lines: Shown[];
  state: "connecting" | "following" | "retrying" | "hidden";
  error: string | undefined;
}

export function ServiceLogs(props: { api: Api; name: string; onUnauthorized: () => void }) {
  const { api, name, onUnauthorized } = props;
  const [search, setSearch] = useState("");
  const [tail, setTail] = useState<Tail>({ lines: [], state: "connecting", error: undefined });
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;
  const visible = usePageVisible();

  useEffect(() => {
    if (!visible) {
      setTail((prev) => ({ ...prev, state: "hidden", error: undefined }));
      return;
    }
    const controller = new AbortController();
    let retry: ReturnType<typeof setTimeout> | undefined;
    let seq = 0;
    async function open(): Promise<void> {
      retry = undefined;
      let error: string | undefined;
      try {
        const res = await followLogs(api, name, { tail: LOG_TAIL, grep: search, signal: controller.signal });
        // A new stream starts with its own tail: it replaces what the last one showed.
        setTail({ lines: [], state: "following", error: undefined });
        if (res.body === null) throw new Error("the control plane sent no log stream");
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const splitter = createLineSplitter();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const lines = splitter.push(value).flatMap((text): Shown[] => {
            const line = parseLogLine(text);
            return line === undefined ? [] : [{ ...line, n: seq++ }];
          });
          if (lines.length > 0) setTail((prev) => ({ ...prev, lines: appendBounded(prev.lines, lines, LOG_TAIL) }));
        }
        error = "the control plane ended the log stream";
      } catch (err) {
        if (controller.signal.aborted) return;
        if (err instanceof UnauthorizedError) {
          unauthorized.current();
          return;
        }
        error = (err as Error).message;
      }
      if (controller.signal.aborted) return;
      setTail((prev) => ({ ...prev, state: "retrying", error }));
      retry = setTimeout(() => void open(), RETRY_MS);
    }
    setTail({ lines: [], state: "connecting", error: undefined });
    void open();
    return () => {
      controller.abort();
      if (retry !== undefined) clearTimeout(retry);
    };
  }, [api, name, search, visible]);

  function submit(e: Event) {
    e.preventDefault();
    setSearch(String(new FormData(e.currentTarget as HTMLFormElement).get("grep") ?? "").trim());
  }

  return (
    <section aria-labelledby="logs-heading" class="logs">
      <h2 id="logs-heading">Logs</h2>
      <form class="filters" role="search" aria-label="Search the logs" onSubmit={submit}>
        <label>
          Search logs <input name="grep" type="search" defaultValue={search} placeholder="text in a line" autoComplete="off" maxLength={200} />
        </label>
        <button type="submit">Search</button>
      </form>
      <p class="meta" aria-live="polite" data-field="logs-state">
        {tail.state === "connecting"
          ? "Connecting…"
          : tail.state === "hidden"
            ? "Paused while the tab is hidden."
            : tail.state === "retrying"
              ? `Not following: ${tail.error ?? "the stream dropped"}. Reconnecting…`
              : search === ""
                ? `The last ${LOG_TAIL} lines of every replica, and new ones as they come.`
                : `The last ${LOG_TAIL} lines containing “${search}”, and new ones as they come.`}
      </p>
      {tail.state === "connecting" ? null : tail.lines.length === 0 ? (
        <p data-field="logs-empty">{search === "" ? "No log lines yet." : `No lines contain “${search}” yet; new ones will appear here.`}</p>
      ) : (
        <LogList lines={tail.lines} search={search} />
      )}
    </section>
  );
}

/** Whether the page is visible (not a background tab, not a minimized window). */
function usePageVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState === "visible");
  useEffect(() => {
    const onChange = () => setVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", onChange);
    return () => document.removeEventListener("visibilitychange", onChange);
  }, []);
  return visible;
}

/** The lines, newest at the bottom; it keeps to the bottom as lines come unless the reader scrolled up. */
function LogList(props: { lines: Shown[]; search: string }) {
  const box = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [props.lines]);
  return (
    <ol
      class="log-lines"
      ref={box}
      tabIndex={0}
      aria-label="Log lines, oldest first"
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      {props.lines.map((l) => (
        <li key={l.n} class={l.stream} data-replica={l.replica}>
          <time dateTime={l.t}>{new Date(l.t).toLocaleTimeString()}</time> <span class="replica">{l.replica}</span>{" "}
          <span class="text">{highlight(l.line, props.search).map((p, k) => (p.match ? <mark key={k}>{p.text}</mark> : p.text))}</span>
        </li>
      ))}
    </ol>
  );
}
