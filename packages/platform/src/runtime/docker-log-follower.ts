// Copies a container's output from the engine (`docker logs --follow --timestamps`) into the
// replica's raw <id>.stdout / <id>.stderr files, where the log collector of replica-logs.ts turns
// it into <id>.log as for the process driver, so `keelson logs` reads both alike. The timestamp of
// the last line copied of each stream is kept in <id>.engine-since: a driver that adopts the
// container carries on after it, so output written while no control plane ran is copied once.
import { appendFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type Docker from "dockerode";
import { replicaLogPaths } from "./replica-logs.js";
import type { RuntimeLog } from "./replica-supervisor.js";

/** Nanoseconds since the epoch of an engine timestamp (RFC 3339 with up to 9 fraction digits). */
export function engineTimeNs(stamp: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(stamp);
  if (m?.[1] === undefined) return undefined;
  const seconds = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

export function engineSincePath(logDir: string, replicaId: string): string {
  return join(logDir, `${replicaId}.engine-since`);
}

/** The engine's timestamp (ns) of the last line copied, per stream; 0n: none yet. */
export interface EngineSince {
  stdout: bigint;
  stderr: bigint;
}

/**
 * Reads <id>.engine-since: `{"stdout":"<ns>","stderr":"<ns>"}`, or one number (written before
 * the streams were kept apart, taken for both); nothing recorded, or unreadable, is 0n for both.
 */
export function parseEngineSince(text: string): EngineSince {
  const ns = (v: unknown): bigint => (typeof v === "string" && /^\d+$/.test(v) ? BigInt(v) : 0n);
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { stdout: BigInt(trimmed), stderr: BigInt(trimmed) };
  try {
    const saved = JSON.parse(trimmed) as Partial<Record<keyof EngineSince, unknown>>;
    return { stdout: ns(saved.stdout), stderr: ns(saved.stderr) };
  } catch {
    return { stdout: 0n, stderr: 0n };
  }
}

/**
 * The `since` (whole seconds) to ask the engine for when resuming after `copied`. The engine
 * stamps each stream's lines in its own goroutine, so a line of one stream can reach the log a
 * little after a later-stamped line of the other: the second before the older stream's last line
 * is asked for too (what is repeated is dropped by stamp). A stream with nothing copied yet has
 * had nothing to copy before the other's lines; with nothing copied at all, everything is asked for.
 */
export function resumeSinceSeconds(copied: EngineSince): number | undefined {
  const stamps = [copied.stdout, copied.stderr].filter((s) => s > 0n);
  if (stamps.length === 0) return undefined;
  const oldest = stamps.reduce((a, b) => (a < b ? a : b));
  return Math.max(0, Number(oldest / 1_000_000_000n) - 1);
}

export interface LogFollower {
  /** Resolves once the engine ended the stream (the container stopped) and everything is written. */
  readonly done: Promise<void>;
  /** Stops copying (detach); what was copied is recorded. */
  stop(): Promise<void>;
}

export interface LogFollowerOptions {
  container: Docker.Container;
  logDir: string;
  replicaId: string;
  /** Carry on after the recorded last line (adopting); a new container starts from its first line. */
  resume: boolean;
  log: RuntimeLog;
}

/** Starts copying a container's output into the replica's raw log files. */
export function followContainerLogs(o: LogFollowerOptions): LogFollower {
  const paths = replicaLogPaths(o.logDir, o.replicaId);
  const sincePath = engineSincePath(o.logDir, o.replicaId);
  let stream: NodeJS.ReadableStream | undefined;
  let stopped = false;
  /** What an earlier follower of this container copied (adopting): those lines are dropped. */
  let copied: EngineSince = { stdout: 0n, stderr: 0n };
  /** The last line copied of each stream, recorded for a later adopt. */
  const last: EngineSince = { stdout: 0n, stderr: 0n };
  let pending: Buffer = Buffer.alloc(0);
  let writing: Promise<void> = Promise.resolve();

  async function record(): Promise<void> {
    const tmp = `${sincePath}.tmp`;
    await writeFile(tmp, JSON.stringify({ stdout: String(last.stdout), stderr: String(last.stderr) }));
    await rename(tmp, sincePath);
  }

  /** Splits complete frames off `pending` (8-byte header: stream, 3 zero bytes, size) into the two files. */
  function frames(): void {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let offset = 0;
    while (pending.length - offset >= 8) {
      const size = pending.readUInt32BE(offset + 4);
      if (pending.length - offset - 8 < size) break;
      const stream = pending[offset] === 2 ? "stderr" : "stdout";
      const payload = pending.subarray(offset + 8, offset + 8 + size);
      offset += 8 + size;
      const space = payload.indexOf(0x20);
      const stamp = space < 0 ? undefined : engineTimeNs(payload.subarray(0, space).toString("latin1"));
      // Already copied before an adopt (the engine repeats from `since`). Stamps only go up within
      // a stream: the other stream's lines can come in a little out of order, and are all copied.
      if (stamp !== undefined && stamp <= copied[stream]) continue;
      if (stamp !== undefined && stamp > last[stream]) last[stream] = stamp;
      const text = stamp === undefined ? payload : payload.subarray(space + 1);
      (stream === "stderr" ? err : out).push(text);
    }
    pending = pending.subarray(offset);
    if (out.length === 0 && err.length === 0) return;
    const stdout = Buffer.concat(out);
    const stderr = Buffer.concat(err);
    writing = writing
      .then(async () => {
        if (stdout.length > 0) await appendFile(paths.stdout, stdout);
        if (stderr.length > 0) await appendFile(paths.stderr, stderr);
        await record();
      })
      .catch((error: unknown) => o.log("warn", "replica output could not be written to its log files", { replica: o.replicaId, error: String(error) }));
  }

  const done = (async () => {
    await mkdir(o.logDir, { recursive: true });
    if (o.resume) {
      copied = parseEngineSince(await readFile(sincePath, "utf8").catch(() => ""));
      last.stdout = copied.stdout;
      last.stderr = copied.stderr;
    } else {
      // A new container: what an earlier container of the replica copied says nothing about this one.
      await record();
    }
    const since = resumeSinceSeconds(copied);
    stream = await o.container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, ...(since === undefined ? {} : { since }) });
    if (stopped) {
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      return;
    }
    await new Promise<void>((resolve) => {
      const s = stream as NodeJS.ReadableStream;
      s.on("data", (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        frames();
      });
      s.once("end", resolve);
      s.once("close", resolve);
      s.once("error", (error: Error) => {
        if (!stopped) o.log("warn", "replica output stream from the engine failed", { replica: o.replicaId, error: error.message });
        resolve();
      });
    });
    await writing;
  })().catch((error: unknown) => {
    if (!stopped) o.log("warn", "replica output could not be followed", { replica: o.replicaId, error: String(error) });
  });

  return {
    done,
    async stop() {
      stopped = true;
      (stream as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined)?.destroy?.();
      await done;
      await writing;
    },
  };
}
