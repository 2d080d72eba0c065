// Copies a container's output from the engine (`docker logs --follow --timestamps`) into the
// replica's raw <id>.stdout / <id>.stderr files, where the log collector of replica-logs.ts turns
// it into <id>.log as for the process driver, so `keelson logs` reads both alike. The timestamp of
// the last line copied is kept in <id>.engine-since: a driver that adopts the container carries on
// after it, so output written while no control plane ran is copied once.
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
  let last = 0n;
  let pending: Buffer = Buffer.alloc(0);
  let writing: Promise<void> = Promise.resolve();

  async function record(): Promise<void> {
    const tmp = `${sincePath}.tmp`;
    await writeFile(tmp, String(last));
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
      const kind = pending[offset];
      const payload = pending.subarray(offset + 8, offset + 8 + size);
      offset += 8 + size;
      const space = payload.indexOf(0x20);
      const stamp = space < 0 ? undefined : engineTimeNs(payload.subarray(0, space).toString("latin1"));
      // Already copied before an adopt (`since` is whole seconds, so the engine repeats some).
      if (stamp !== undefined && stamp <= last) continue;
      if (stamp !== undefined) last = stamp;
      const text = stamp === undefined ? payload : payload.subarray(space + 1);
      (kind === 2 ? err : out).push(text);
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
      const saved = await readFile(sincePath, "utf8").catch(() => "");
      if (/^\d+$/.test(saved.trim())) last = BigInt(saved.trim());
    }
    stream = await o.container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, ...(last > 0n ? { since: Number(last / 1_000_000_000n) } : {}) });
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
