// Replica logs. A replica writes raw stdout/stderr to <id>.stdout / <id>.stderr; the
// driver's collector turns them into stamped JSON lines in <id>.log (rotated by size);
// readReplicaLogs merges those for `keelson logs` and lastLogLines feeds error messages.
import { appendFile, open, readFile, readdir, rename, rm, stat, truncate, writeFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { RuntimeLog } from "./replica-supervisor.js";

/** One collected line of a replica's output, as stored in <id>.log (one JSON object a line). */
export interface LogLine {
  /** ISO time at which the collector picked the line up. */
  t: string;
  replica: string;
  stream: LogStream;
  line: string;
}

export type LogStream = "stdout" | "stderr";

const STREAMS: readonly LogStream[] = ["stdout", "stderr"];

export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_KEEP = 3;
/** Raw capture files are truncated once fully collected and larger than this. */
export const DEFAULT_RAW_MAX_BYTES = 1024 * 1024;
export const DEFAULT_LOG_POLL_MS = 200;
/** A line that grows past this without a newline is cut, so one runaway line cannot grow memory. */
const MAX_LINE_BYTES = 64 * 1024;
const CHUNK_BYTES = 256 * 1024;

/** The files of one replica in its log folder. */
export function replicaLogPaths(logDir: string, replicaId: string): { stdout: string; stderr: string; log: string; offset: string } {
  return {
    stdout: join(logDir, `${replicaId}.stdout`),
    stderr: join(logDir, `${replicaId}.stderr`),
    log: join(logDir, `${replicaId}.log`),
    offset: join(logDir, `${replicaId}.offset`),
  };
}

export interface LogCollectorOptions {
  logDir: string;
  replicaId: string;
  /** Size at which <id>.log is rotated (default 10 MiB). */
  maxBytes?: number;
  /** Rotated files kept: <id>.log.1 (newest) ... <id>.log.<keep> (default 3). */
  keep?: number;
  /** Raw files are truncated once fully collected and larger than this (default 1 MiB). */
  rawMaxBytes?: number;
  /** How often the raw files are read (default 200 ms); 0 collects only when asked. */
  pollIntervalMs?: number;
  log?: RuntimeLog;
}

export interface LogCollector {
  /**
   * Collects what the raw files hold now. A line without its newline waits for it,
   * unless `final` (the process is gone, nothing will complete it).
   */
  collect(options?: { final?: boolean }): Promise<void>;
  /** Stops polling after one last collection. */
  close(options?: { final?: boolean }): Promise<void>;
}

/**
 * Tails a replica's raw stdout/stderr files into stamped JSON lines in <id>.log.
 *
 * The read offsets live in <id>.offset, written after the lines they cover, so a driver
 * that stops and a later one that resumes (adopt) lose nothing; a crash between the
 * two writes repeats at most one batch. Raw files are truncated in place (copytruncate)
 * once fully collected and past rawMaxBytes: the replica writes with O_APPEND and
 * carries on at the new end, but bytes it writes between our last read and the
 * truncate are lost (we re-check the size just before truncating to keep that window small).
 */
export function createLogCollector(options: LogCollectorOptions): LogCollector {
  const paths = replicaLogPaths(options.logDir, options.replicaId);
  const maxBytes = options.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
  const keep = options.keep ?? DEFAULT_LOG_KEEP;
  const rawMaxBytes = options.rawMaxBytes ?? DEFAULT_RAW_MAX_BYTES;
  const pollMs = options.pollIntervalMs ?? DEFAULT_LOG_POLL_MS;
  let offsets: Record<LogStream, number> | undefined;
  let logSize: number | undefined;
  let chain: Promise<void> = Promise.resolve();
  let lastError: string | undefined;
  let closed = false;

  const timer = pollMs > 0 ? setInterval(() => void collect().catch(() => undefined), pollMs) : undefined;
  timer?.unref();

  async function loadOffsets(): Promise<Record<LogStream, number>> {
    try {
      const saved = JSON.parse(await readFile(paths.offset, "utf8")) as Partial<Record<LogStream, unknown>>;
      const num = (v: unknown): number => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 0);
      return { stdout: num(saved.stdout), stderr: num(saved.stderr) };
    } catch {
      return { stdout: 0, stderr: 0 };
    }
  }

  async function saveOffsets(): Promise<void> {
    // Write-then-rename, so a reader (or a crash) never sees a half-written sidecar.
    const tmp = `${paths.offset}.tmp`;
    await writeFile(tmp, JSON.stringify(offsets));
    await rename(tmp, paths.offset);
  }

  async function rotate(): Promise<void> {
    if (keep <= 0) {
      await rm(paths.log, { force: true });
      return;
    }
    await rm(`${paths.log}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) await renameIfThere(`${paths.log}.${i}`, `${paths.log}.${i + 1}`);
    await renameIfThere(paths.log, `${paths.log}.1`);
  }

  async function writeRecords(records: LogLine[]): Promise<void> {
    logSize ??= await sizeOf(paths.log);
    let pending = "";
    let pendingBytes = 0;
    for (const record of records) {
      const text = `${JSON.stringify(record)}\n`;
      const bytes = Buffer.byteLength(text);
      if (logSize + pendingBytes > 0 && logSize + pendingBytes + bytes > maxBytes) {
        if (pending !== "") await appendFile(paths.log, pending);
        await rotate();
        logSize = 0;
        pending = "";
        pendingBytes = 0;
      }
      pending += text;
      pendingBytes += bytes;
    }
    if (pending !== "") await appendFile(paths.log, pending);
    logSize += pendingBytes;
  }

  /** Collects one raw file; returns whether its offset moved. */
  async function collectStream(stream: LogStream, t: string, final: boolean): Promise<boolean> {
    const current = offsets as Record<LogStream, number>;
    let fh: FileHandle;
    try {
      fh = await open(paths[stream], "r");
    } catch {
      if (current[stream] === 0) return false;
      current[stream] = 0;
      return true;
    }
    try {
      const size = (await fh.stat()).size;
      // Smaller than what we read: someone truncated or replaced it; start over.
      let changed = false;
      if (size < current[stream]) {
        current[stream] = 0;
        changed = true;
      }
      let pos = current[stream];
      while (pos < size) {
        const buf = Buffer.alloc(Math.min(CHUNK_BYTES, size - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        const data = buf.subarray(0, bytesRead);
        const atEnd = pos + bytesRead >= size;
        const lastNewline = data.lastIndexOf(0x0a);
        let consumed: number;
        if (final && atEnd) consumed = bytesRead;
        else if (lastNewline >= 0) consumed = lastNewline + 1;
        else if (bytesRead >= MAX_LINE_BYTES) consumed = bytesRead;
        else break; // a partial line: wait for its newline
        const text = data.subarray(0, consumed).toString("utf8");
        const lines = text.split("\n");
        if (text.endsWith("\n")) lines.pop();
        await writeRecords(lines.map((line) => ({ t, replica: options.replicaId, stream, line: line.endsWith("\r") ? line.slice(0, -1) : line })));
        pos += consumed;
        current[stream] = pos;
        changed = true;
      }
      return changed;
    } finally {
      await fh.close();
    }
  }

  async function collectOnce(final: boolean): Promise<void> {
    offsets ??= await loadOffsets();
    const t = new Date().toISOString();
    for (const stream of STREAMS) {
      if (await collectStream(stream, t, final)) await saveOffsets();
    }
    for (const stream of STREAMS) {
      // Fully collected and big: truncate in place; the size is re-read right before to keep the race window small.
      if (offsets[stream] > rawMaxBytes && (await sizeOf(paths[stream])) === offsets[stream]) {
        await truncate(paths[stream], 0);
        offsets[stream] = 0;
        await saveOffsets();
      }
    }
  }

  function collect(opts: { final?: boolean } = {}): Promise<void> {
    const run = chain.then(() => collectOnce(opts.final === true));
    // Polls keep going after a failure (disk full, folder removed); each distinct problem is logged once.
    chain = run.then(
      () => {
        lastError = undefined;
      },
      (err: unknown) => {
        const message = String(err);
        if (message !== lastError) options.log?.("warn", "replica log collection failed", { replica: options.replicaId, error: message });
        lastError = message;
      },
    );
    return run;
  }

  return {
    collect,
    async close(opts = {}) {
      if (timer !== undefined) clearInterval(timer);
      if (closed) return chain;
      closed = true;
      await collect(opts).catch(() => undefined);
    },
  };
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function renameIfThere(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Parses one stored line; anything that is not a LogLine (a torn write, a stray line) is skipped. */
export function parseLogLine(text: string): LogLine | undefined {
  if (text === "") return undefined;
  try {
    const v = JSON.parse(text) as Partial<LogLine>;
    if (typeof v.t !== "string" || typeof v.replica !== "string" || typeof v.line !== "string") return undefined;
    if (v.stream !== "stdout" && v.stream !== "stderr") return undefined;
    return { t: v.t, replica: v.replica, stream: v.stream, line: v.line };
  } catch {
    return undefined;
  }
}

export interface ReadReplicaLogsOptions {
  logDir: string;
  /** Replicas to read; default every replica with a .log file in logDir. */
  replicaIds?: string[];
  /** Only lines collected at or after this time. */
  since?: Date;
  /** Only the last n lines (of those after `since` that `match`) before following. */
  tail?: number;
  /** Only lines it accepts (a search); `tail` counts these, so a search finds older matches too. */
  match?: (line: LogLine) => boolean;
  /** Keep yielding new lines until `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** How often follow looks for new lines (default 200 ms). */
  pollIntervalMs?: number;
}

/** Where follow carries on in a replica's current .log: its inode (to notice rotation) and byte offset. */
interface Cursor {
  ino: number | undefined;
  pos: number;
}

/**
 * The replicas' collected lines, merged in time order: rotated files first (oldest
 * first), then the current .log. With `follow`, new lines keep coming (rotation is
 * followed) until the signal aborts; a rotation racing a non-follow read may skip or repeat lines.
 *
 * @example
 * for await (const l of readReplicaLogs({ logDir, replicaIds: ["orders-0"], tail: 50 })) {
 *   console.log(l.t, l.stream, l.line);
 * }
 */
export async function* readReplicaLogs(options: ReadReplicaLogsOptions): AsyncGenerator<LogLine> {
  const { logDir, signal } = options;
  // Checked before every line: a consumer that aborts mid-batch asked for nothing more.
  // A function, not a narrowed property, because it changes while we await.
  const aborted = (): boolean => signal?.aborted === true;
  const sinceMs = options.since?.getTime() ?? Number.NEGATIVE_INFINITY;
  const match = options.match ?? (() => true);
  const ids = options.replicaIds ?? (await listLoggedReplicas(logDir));
  const cursors = new Map<string, Cursor>();

  if (options.tail !== undefined) {
    const want = Math.max(0, Math.floor(options.tail));
    const perReplica = await Promise.all(ids.map((id) => readReplicaTail(logDir, id, want, sinceMs, cursors, match)));
    const merged = perReplica.flat().sort(byTime);
    for (const line of merged.slice(Math.max(0, merged.length - want))) {
      if (aborted()) return;
      yield line;
    }
  } else {
    for await (const line of mergeByTime(ids.map((id) => readReplicaHistory(logDir, id, sinceMs, cursors)))) {
      if (aborted()) return;
      if (match(line)) yield line;
    }
  }
  if (options.follow !== true) return;

  const pollMs = options.pollIntervalMs ?? DEFAULT_LOG_POLL_MS;
  for (;;) {
    await sleep(pollMs, signal);
    if (aborted()) return;
    if (options.replicaIds === undefined) {
      for (const id of await listLoggedReplicas(logDir)) if (!ids.includes(id)) ids.push(id);
    }
    const batch: LogLine[] = [];
    for (const id of ids) {
      let cursor = cursors.get(id);
      if (cursor === undefined) {
        cursor = { ino: undefined, pos: 0 };
        cursors.set(id, cursor);
      }
      batch.push(...(await readNewLines(logDir, id, cursor)));
    }
    for (const line of batch.sort(byTime)) {
      if (aborted()) return;
      if (Date.parse(line.t) >= sinceMs && match(line)) yield line;
    }
  }
}

/**
 * The last n collected lines of one replica, oldest first, for error messages
 * ("never became ready; last lines: ...").
 */
export async function lastLogLines(logDir: string, replicaId: string, n: number): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  for await (const line of readReplicaLogs({ logDir, replicaIds: [replicaId], tail: n })) lines.push(line);
  return lines;
}

const byTime = (a: LogLine, b: LogLine): number => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0);

async function listLoggedReplicas(logDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(logDir);
  } catch {
    return [];
  }
  const ids = new Set<string>();
  for (const name of names) {
    const m = /^(.+)\.log(?:\.\d+)?$/.exec(name);
    if (m?.[1] !== undefined) ids.add(m[1]);
  }
  return [...ids].sort();
}

/** A replica's rotated files, oldest (highest number) first. */
async function rotatedFiles(logDir: string, id: string): Promise<Array<{ path: string; n: number }>> {
  let names: string[];
  try {
    names = await readdir(logDir);
  } catch {
    return [];
  }
  const prefix = `${id}.log.`;
  return names
    .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
    .map((name) => ({ path: join(logDir, name), n: Number(name.slice(prefix.length)) }))
    .sort((a, b) => b.n - a.n);
}

async function openIfThere(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, "r");
  } catch {
    return undefined;
  }
}

/** Complete lines of a file from `start`, streamed; `done` gets the offset after the last complete line. */
async function* fileLines(fh: FileHandle, start: number, done?: (end: number) => void): AsyncGenerator<string> {
  let pos = start;
  let carry = Buffer.alloc(0);
  for (;;) {
    const buf = Buffer.alloc(CHUNK_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    let data = carry.length === 0 ? buf.subarray(0, bytesRead) : Buffer.concat([carry, buf.subarray(0, bytesRead)]);
    let nl = data.indexOf(0x0a);
    while (nl >= 0) {
      yield data.subarray(0, nl).toString("utf8");
      data = data.subarray(nl + 1);
      nl = data.indexOf(0x0a);
    }
    carry = Buffer.from(data);
  }
  // A last line without newline is a write in progress; follow picks it up complete.
  done?.(pos - carry.length);
}

/**
 * Opens a replica's files newest first (.log, .log.1, ...) before reading any, skipping
 * an inode already open: a rotation during the opens then shows the same file twice
 * (skipped) instead of making one go missing between reads.
 */
async function openReplicaFiles(logDir: string, id: string): Promise<Array<{ fh: FileHandle; ino: number; size: number; current: boolean }>> {
  const paths = [replicaLogPaths(logDir, id).log, ...(await rotatedFiles(logDir, id)).reverse().map((f) => f.path)];
  const open: Array<{ fh: FileHandle; ino: number; size: number; current: boolean }> = [];
  try {
    for (const [i, path] of paths.entries()) {
      const fh = await openIfThere(path);
      if (fh === undefined) continue;
      const st = await fh.stat();
      if (open.some((f) => f.ino === st.ino)) {
        await fh.close();
        continue;
      }
      open.push({ fh, ino: st.ino, size: st.size, current: i === 0 });
    }
  } catch (err) {
    await Promise.all(open.map((f) => f.fh.close()));
    throw err;
  }
  return open;
}

async function* readReplicaHistory(logDir: string, id: string, sinceMs: number, cursors: Map<string, Cursor>): AsyncGenerator<LogLine> {
  const files = await openReplicaFiles(logDir, id);
  cursors.set(id, { ino: undefined, pos: 0 });
  try {
    // Oldest first.
    for (const file of [...files].reverse()) {
      const done = file.current ? (end: number) => cursors.set(id, { ino: file.ino, pos: end }) : undefined;
      for await (const text of fileLines(file.fh, 0, done)) {
        const line = parseLogLine(text);
        if (line !== undefined && Date.parse(line.t) >= sinceMs) yield line;
      }
    }
  } finally {
    await Promise.all(files.map((f) => f.fh.close()));
  }
}

/** Merges time-ordered sources into one time-ordered stream (ties keep source order). */
async function* mergeByTime(sources: Array<AsyncGenerator<LogLine>>): AsyncGenerator<LogLine> {
  try {
    const heads = await Promise.all(sources.map((s) => s.next()));
    for (;;) {
      let best = -1;
      for (const [i, head] of heads.entries()) {
        if (head.done === true) continue;
        const bestHead = heads[best];
        if (best < 0 || (bestHead !== undefined && bestHead.done !== true && head.value.t < bestHead.value.t)) best = i;
      }
      const head = heads[best];
      if (head === undefined || head.done === true) return;
      yield head.value;
      heads[best] = await (sources[best] as AsyncGenerator<LogLine>).next();
    }
  } finally {
    // A consumer that stops early must not leave files open.
    await Promise.all(sources.map((s) => s.return(undefined)));
  }
}

/** The last `want` lines of one replica at or after sinceMs, oldest first, reading files backwards. */
async function readReplicaTail(logDir: string, id: string, want: number, sinceMs: number, cursors: Map<string, Cursor>, match: (line: LogLine) => boolean): Promise<LogLine[]> {
  const files = await openReplicaFiles(logDir, id);
  const lines: LogLine[] = [];
  cursors.set(id, { ino: undefined, pos: 0 });
  try {
    for (const file of files) {
      const { reachedSince, end } = await readBackwards(file.fh, file.size, want - lines.length, sinceMs, lines, match);
      if (file.current) cursors.set(id, { ino: file.ino, pos: end });
      if (reachedSince || lines.length >= want) break;
    }
  } finally {
    await Promise.all(files.map((f) => f.fh.close()));
  }
  return lines.reverse();
}

/**
 * Reads complete lines backwards from `size`, pushing (newest first) onto `out` until
 * `want` that `match` accepts are found or a line is older than sinceMs. `end` is the offset after
 * the last complete line (a trailing partial line is a write in progress and is left out).
 */
async function readBackwards(fh: FileHandle, size: number, want: number, sinceMs: number, out: LogLine[], match: (line: LogLine) => boolean): Promise<{ reachedSince: boolean; end: number }> {
  let pos = size;
  let right = Buffer.alloc(0);
  let end: number | undefined;
  let found = 0;
  const take = (segment: Buffer): "more" | "enough" | "since" => {
    const line = parseLogLine(segment.toString("utf8"));
    if (line === undefined) return "more";
    if (Date.parse(line.t) < sinceMs) return "since";
    if (!match(line)) return "more";
    out.push(line);
    found += 1;
    return found >= want ? "enough" : "more";
  };
  if (want <= 0) return { reachedSince: false, end: size };
  while (pos > 0) {
    const len = Math.min(CHUNK_BYTES, pos);
    pos -= len;
    const chunk = Buffer.alloc(len);
    await fh.read(chunk, 0, len, pos);
    const data = Buffer.concat([chunk, right]);
    let stop = data.length;
    if (end === undefined) {
      const nl = data.lastIndexOf(0x0a);
      if (nl < 0) {
        right = data;
        continue;
      }
      end = pos + nl + 1;
      stop = nl;
    }
    // data[0, stop) ends right before a newline; each segment between newlines is a line.
    let nl = stop > 0 ? data.lastIndexOf(0x0a, stop - 1) : -1;
    while (nl >= 0) {
      const verdict = take(data.subarray(nl + 1, stop));
      if (verdict !== "more") return { reachedSince: verdict === "since", end };
      stop = nl;
      nl = stop > 0 ? data.lastIndexOf(0x0a, stop - 1) : -1;
    }
    right = data.subarray(0, stop);
  }
  if (end === undefined) return { reachedSince: false, end: 0 };
  if (right.length > 0) {
    const verdict = take(right);
    return { reachedSince: verdict === "since", end };
  }
  return { reachedSince: false, end };
}

/** Lines added to a replica's log since the cursor, following rotation. */
async function readNewLines(logDir: string, id: string, cursor: Cursor): Promise<LogLine[]> {
  const out: LogLine[] = [];
  const collect = async (fh: FileHandle, start: number): Promise<number> => {
    let end = start;
    for await (const text of fileLines(fh, start, (e) => (end = e))) {
      const line = parseLogLine(text);
      if (line !== undefined) out.push(line);
    }
    return end;
  };
  const fh = await openIfThere(replicaLogPaths(logDir, id).log);
  try {
    const st = fh === undefined ? undefined : await fh.stat();
    if (cursor.ino !== undefined && st?.ino !== cursor.ino) {
      // Rotated since the last look: finish the file we were reading, then any newer rotated ones.
      const rotated = await rotatedFiles(logDir, id);
      const inodes = await Promise.all(rotated.map(async (f) => (await stat(f.path).catch(() => undefined))?.ino));
      const at = inodes.indexOf(cursor.ino);
      if (at >= 0) {
        for (const [i, f] of rotated.entries()) {
          if (i < at) continue;
          const rfh = await openIfThere(f.path);
          if (rfh === undefined) continue;
          try {
            await collect(rfh, i === at ? cursor.pos : 0);
          } finally {
            await rfh.close();
          }
        }
      }
      cursor.ino = undefined;
      cursor.pos = 0;
    }
    if (fh !== undefined && st !== undefined) {
      if (cursor.ino === undefined) cursor.ino = st.ino;
      if (st.size < cursor.pos) cursor.pos = 0;
      if (st.size > cursor.pos) cursor.pos = await collect(fh, cursor.pos);
    }
  } finally {
    await fh?.close();
  }
  return out;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
