// A pipeline run's stored log: found by run id, and followed as the run writes it (whole lines
// only, until the run ends) so that a client can watch a running stage's output live.
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/** What a run id looks like (newRunId): checked before it becomes part of a file name. */
export const RUN_ID_PATTERN = /^run-[\w-]+$/;

/** Where a service's run writes its log. */
export function pipelineLogFile(stateDir: string, service: string, run: string): string {
  return join(stateDir, "pipelines", service, `${run}.log`);
}

/** The log file of a run, whichever service it belongs to; undefined when there is none (yet). */
export async function findPipelineLog(stateDir: string, run: string): Promise<string | undefined> {
  for (const service of await readdir(join(stateDir, "pipelines")).catch(() => [] as string[])) {
    const file = pipelineLogFile(stateDir, service, run);
    if (await stat(file).then((s) => s.isFile(), () => false)) return file;
  }
  return undefined;
}

export interface FollowLogOptions {
  file: string;
  /** Whether the run still runs. Once it does not, what is in the file is all there will be. */
  running: () => boolean;
  signal: AbortSignal;
  /** How often to look for new output. Default 250 ms. */
  pollMs?: number;
  /** The longest the follow lasts, whatever the run does (a client may follow again). Default 30 min. */
  maxMs?: number;
  now?: () => number;
}

/** The most read at once; more output is read on the next turn without waiting. */
const CHUNK = 256 * 1024;
/** A "line" longer than this (a progress bar redrawn with \r, a dump without newlines) goes out in pieces. */
export const MAX_PENDING_LINE = 64 * 1024;

/**
 * The log's text from the start, then what the run appends, as it appends it, until the run
 * ends, `signal` aborts or `maxMs` is up. Yields whole lines (a line still being written waits
 * for its end, so a secret the API redacts is never split across two writes); a last line
 * without a newline comes when the follow ends. The file may not exist yet: it is waited for.
 *
 * @example
 * for await (const text of followPipelineLog({ file, running: () => runner.active("api")?.run === run, signal })) res.write(text);
 */
export async function* followPipelineLog(options: FollowLogOptions): AsyncGenerator<string> {
  const { file, signal } = options;
  const pollMs = options.pollMs ?? 250;
  const now = options.now ?? Date.now;
  const deadline = now() + (options.maxMs ?? 30 * 60_000);
  let offset = 0;
  let pending: Buffer = Buffer.alloc(0);
  while (!signal.aborted) {
    // Asked before reading: a run that has ended wrote its last line before it did.
    const ended = !options.running();
    const chunk = await readFrom(file, offset);
    if (chunk.length > 0) {
      offset += chunk.length;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const newline = pending.lastIndexOf(0x0a);
      if (newline >= 0) {
        yield pending.subarray(0, newline + 1).toString("utf8");
        pending = pending.subarray(newline + 1);
      } else if (pending.length > MAX_PENDING_LINE) {
        // Held back no longer: cut before a character's continuation bytes, never inside one.
        let cut = pending.length;
        while (cut > 0 && (pending[cut - 1]! & 0xc0) === 0x80) cut--;
        if (cut > 0 && pending[cut - 1]! >= 0xc0) cut--;
        yield pending.subarray(0, cut).toString("utf8");
        pending = pending.subarray(cut);
      }
      if (chunk.length === CHUNK) continue;
    }
    if (ended || now() >= deadline) break;
    await sleep(pollMs, signal);
  }
  if (pending.length > 0 && !signal.aborted) yield pending.toString("utf8");
}

/** Up to CHUNK bytes from `offset`; none when the file is missing. */
async function readFrom(file: string, offset: number): Promise<Buffer> {
  const handle = await open(file, "r").catch(() => undefined);
  if (handle === undefined) return Buffer.alloc(0);
  try {
    const size = Math.min((await handle.stat()).size - offset, CHUNK);
    if (size <= 0) return Buffer.alloc(0);
    const buffer = Buffer.alloc(size);
    const { bytesRead } = await handle.read(buffer, 0, size, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
