// Keeps the gateway's routing table current: follows the control plane's SSE stream
// (`/v1/watch/routing`), validates and applies each table, and saves the last good one to
// `${stateDir}/routing.json` so a restarted gateway serves at once even without a control plane.
import { credentialHeader } from "./credential-file.js";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import type { RoutingTable } from "@keelson/protocol";
import { RoutingTableSchema } from "@keelson/protocol";
import type { GatewayLogger } from "./logger.js";
import { silentLogger } from "./logger.js";

/** File name of the saved table inside the gateway's state folder. */
export const ROUTING_FILE = "routing.json";

/** Loads the saved table, or undefined when there is none or it is unreadable (logged). */
export async function loadRoutingTable(stateDir: string, log: GatewayLogger = silentLogger): Promise<RoutingTable | undefined> {
  const file = join(stateDir, ROUTING_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") log.warn({ err, file }, "cannot read the saved routing table");
    return undefined;
  }
  const table = parseRoutingTable(text);
  if (!table.ok) {
    log.warn({ file, problem: table.problem }, "ignoring the saved routing table: it is not valid");
    return undefined;
  }
  return table.value;
}

/** Saves a table atomically: a reader sees the old file or the new one, never half of one. */
export async function saveRoutingTable(stateDir: string, table: RoutingTable): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const file = join(stateDir, ROUTING_FILE);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(`${JSON.stringify(table, undefined, 2)}\n`);
      // Flushed before the rename, so a crash cannot leave an empty file under the real name.
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Parses and validates a table received as text (JSON). */
export function parseRoutingTable(text: string): { ok: true; value: RoutingTable } | { ok: false; problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, problem: `not JSON: ${(err as Error).message}` };
  }
  const parsed = RoutingTableSchema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const problem = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "(table)"}: ${i.message}`)
    .join("; ");
  return { ok: false, problem };
}

export interface RoutingWatchOptions {
  /**
   * Base URL of the control plane, e.g. http://127.0.0.1:7070; several instances of it as a
   * comma-separated list: the watch moves to the next one when the one it follows fails.
   */
  controlPlaneUrl: string;
  stateDir: string;
  /** Called with every valid table the control plane sends, in order. */
  onTable(table: RoutingTable): void;
  /** File holding the gateway's identity token, sent as its bearer credential (re-read when it changes). */
  credentialFile?: string;
  /**
   * The gateway's admin URL, sent to the control plane (`x-keelson-gateway-admin`) so that the
   * leading instance scrapes the metrics and load of every gateway that follows any instance.
   */
  adminUrl?: string;
  /** Called when the stream connects (true) or drops (false). */
  onConnection?(connected: boolean): void;
  log?: GatewayLogger;
  /** First reconnect delay (default 250 ms); doubles per failed attempt up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  /** Longest reconnect delay (default 10 s). */
  maxBackoffMs?: number;
  /** With no byte at all (not even a heartbeat) for this long the stream counts as dead (default 45 s). */
  idleTimeoutMs?: number;
  /** Source of jitter in [0, 1); injectable for tests. */
  random?: () => number;
}

export interface RoutingWatch {
  /** Starts following the stream in the background; never rejects. */
  start(): void;
  /** Stops following and waits for the last table to be saved. */
  stop(): Promise<void>;
  readonly connected: boolean;
}

/** The header a gateway's watch names its admin URL in. */
export const GATEWAY_ADMIN_HEADER = "x-keelson-gateway-admin";

/** Largest event the watch buffers; a bigger one means a broken stream, not a big project. */
const MAX_EVENT_BYTES = 32 * 1024 * 1024;

/**
 * Follows `${controlPlaneUrl}/v1/watch/routing`. Each `event: routing` carries a RoutingTable as
 * JSON; comment lines are heartbeats. An invalid table is logged and skipped (the last good one
 * stays). When the stream ends or the control plane is unreachable it reconnects with capped
 * exponential backoff and jitter; the gateway keeps serving the last table meanwhile.
 */
export function createRoutingWatch(options: RoutingWatchOptions): RoutingWatch {
  const log = options.log ?? silentLogger;
  const urls = controlPlaneUrls(options.controlPlaneUrl).map((u) => `${u}/v1/watch/routing`);
  let index = 0;
  const initialBackoffMs = options.initialBackoffMs ?? 250;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  const random = options.random ?? Math.random;
  // Its own connection pool, so destroying it on stop cannot disturb anything else.
  const agent = new Agent({ connectTimeout: 5_000 });
  const abort = new AbortController();
  let connected = false;
  let loop: Promise<void> | undefined;

  // Saves are coalesced: only the newest table matters, and writes never overlap.
  let pendingSave: RoutingTable | undefined;
  let saving: Promise<void> | undefined;
  const drainSaves = async () => {
    try {
      while (pendingSave !== undefined) {
        const next = pendingSave;
        pendingSave = undefined;
        try {
          await saveRoutingTable(options.stateDir, next);
        } catch (err) {
          log.error({ err, stateDir: options.stateDir }, "cannot save the routing table; the gateway keeps serving it from memory");
        }
      }
    } finally {
      // Runs in the same tick as the last empty check, so no queued table can be missed.
      saving = undefined;
    }
  };
  const queueSave = (table: RoutingTable) => {
    pendingSave = table;
    saving ??= drainSaves();
  };

  const setConnected = (value: boolean) => {
    if (connected === value) return;
    connected = value;
    options.onConnection?.(value);
  };

  const onEvent = (type: string, data: string) => {
    if (type !== "routing") return;
    const parsed = parseRoutingTable(data);
    if (!parsed.ok) {
      log.warn({ problem: parsed.problem }, "ignoring an invalid routing table from the control plane; keeping the last good one");
      return;
    }
    try {
      options.onTable(parsed.value);
    } catch (err) {
      log.error({ err, version: parsed.value.version }, "applying a routing table failed");
      return;
    }
    log.info({ version: parsed.value.version, routes: parsed.value.routes.length, services: parsed.value.services.length }, "routing table applied");
    queueSave(parsed.value);
  };

  const followOnce = async (url: string): Promise<void> => {
    const res = await request(url, {
      dispatcher: agent,
      signal: abort.signal,
      headers: {
        accept: "text/event-stream",
        ...(options.adminUrl === undefined ? {} : { [GATEWAY_ADMIN_HEADER]: options.adminUrl }),
        ...(await authorization(options.credentialFile)),
      },
      headersTimeout: 10_000,
      bodyTimeout: idleTimeoutMs,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`the control plane answered ${res.statusCode}`);
    }
    setConnected(true);
    log.info({ url }, "following the control plane's routing stream");
    const parser = createSseParser(onEvent);
    const decoder = new TextDecoder();
    // Iterating consumes the body; leaving the loop by throw destroys it.
    for await (const chunk of res.body) parser.push(decoder.decode(chunk as Uint8Array, { stream: true }));
  };

  const run = async () => {
    let attempt = 0;
    while (!abort.signal.aborted) {
      const began = Date.now();
      const url = urls[index % urls.length]!;
      try {
        await followOnce(url);
        if (!abort.signal.aborted) log.warn({ url }, "the control plane closed the routing stream; reconnecting");
      } catch (err) {
        if (abort.signal.aborted) break;
        log.warn({ url, err: describe(err) }, "routing stream unavailable; serving the last table and retrying");
      }
      const wasConnected = connected;
      setConnected(false);
      if (abort.signal.aborted) break;
      // Several control-plane instances: try the next one (a follower serves the table as well).
      index = (index + 1) % urls.length;
      // A stream that stayed up for a while earns a fresh backoff; one that drops at once does not.
      if (wasConnected && Date.now() - began > initialBackoffMs) attempt = 0;
      const ceiling = Math.min(maxBackoffMs, initialBackoffMs * 2 ** Math.min(attempt, 30));
      attempt++;
      const delay = ceiling / 2 + (random() * ceiling) / 2;
      try {
        await sleep(delay, undefined, { signal: abort.signal });
      } catch {
        break;
      }
    }
  };

  return {
    start() {
      loop ??= run();
    },
    async stop() {
      abort.abort();
      await loop;
      await saving;
      await agent.destroy().catch(() => undefined);
    },
    get connected() {
      return connected;
    },
  };
}

/** The control-plane URLs of a comma-separated list, without trailing slashes. */
export function controlPlaneUrls(list: string): string[] {
  const urls = list
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter((u) => u !== "");
  if (urls.length === 0) throw new Error(`no control-plane URL in ${JSON.stringify(list)}`);
  return urls;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * An incremental Server-Sent Events parser (WHATWG HTML §9.2.6): feed it text as it arrives,
 * in pieces of any size; it calls `onEvent(type, data)` per complete event. Comment lines
 * (":" heartbeats), `id` and `retry` are ignored. Throws when one event outgrows 32 MiB.
 */
export function createSseParser(onEvent: (type: string, data: string) => void): { push(text: string): void } {
  let buffer = "";
  let skipLeadingLf = false;
  let eventType = "";
  let data: string[] = [];
  let dataBytes = 0;

  const line = (text: string) => {
    if (text.length === 0) {
      if (data.length > 0) onEvent(eventType || "message", data.join("\n"));
      eventType = "";
      data = [];
      dataBytes = 0;
      return;
    }
    if (text.charCodeAt(0) === 58 /* : */) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "event") eventType = value;
    else if (field === "data") {
      dataBytes += value.length;
      if (dataBytes > MAX_EVENT_BYTES) throw new Error("server-sent event larger than 32 MiB");
      data.push(value);
    }
  };

  return {
    push(text) {
      let start = 0;
      if (skipLeadingLf && text.charCodeAt(0) === 10) start = 1;
      skipLeadingLf = false;
      for (let i = start; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        line(buffer + text.slice(start, i));
        buffer = "";
        if (c === 13) {
          if (i + 1 < text.length) {
            if (text.charCodeAt(i + 1) === 10) i++;
          } else {
            // A CR at the end of a piece may be the first half of a CRLF.
            skipLeadingLf = true;
          }
        }
        start = i + 1;
      }
      if (start < text.length) {
        buffer += text.slice(start);
        if (buffer.length > MAX_EVENT_BYTES) throw new Error("server-sent event line larger than 32 MiB");
      }
    },
  };
}

async function authorization(file: string | undefined): Promise<Record<string, string>> {
  const header = await credentialHeader(file);
  return header === undefined ? {} : { authorization: header };
}
