// Runs one pipeline stage: a shell command in its own process group, with a timeout that
// kills the whole group, its output appended to the run's log and handed over line by line.
import { spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { StringDecoder } from "node:string_decoder";

export interface StageCommand {
  command: string;
  cwd: string;
  timeoutMs: number;
  env: Record<string, string>;
  /** Each complete output line (stdout and stderr), as it arrives. */
  onLine?: (line: string) => void;
}

export interface StageOutcome {
  ok: boolean;
  durationMs: number;
  /** Why it failed, in words: "exited with code 1", "timed out after 5 s". */
  why?: string;
  /** The last output lines (at most 20). */
  tail: string[];
}

const TAIL = 20;

/** Appends to `logFile`; never rejects (a command that cannot start is a failed stage). */
export async function runStage(stage: StageCommand, logFile: string): Promise<StageOutcome> {
  await mkdir(dirname(logFile), { recursive: true });
  const out = createWriteStream(logFile, { flags: "a" });
  const tail: string[] = [];
  const started = Date.now();
  const emit = (line: string): void => {
    tail.push(line);
    if (tail.length > TAIL) tail.shift();
    stage.onLine?.(line);
  };
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error; timedOut: boolean }>((resolve) => {
    const child = spawn(stage.command, {
      cwd: stage.cwd,
      shell: true,
      detached: true,
      env: { ...process.env, ...stage.env, FORCE_COLOR: "0", CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killGroup(child.pid);
    }, stage.timeoutMs);
    const pending = [lines(child.stdout, out, emit), lines(child.stderr, out, emit)];
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, error, timedOut });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      // A background process left behind by the stage must not outlive it.
      if (child.pid !== undefined) killGroup(child.pid);
      void Promise.all(pending).then(() => resolve({ code, signal, timedOut }));
    });
  });
  await new Promise<void>((r) => out.end(r));
  const durationMs = Date.now() - started;
  if (result.code === 0 && !result.timedOut) return { ok: true, durationMs, tail };
  const why = result.timedOut
    ? `timed out after ${formatSeconds(stage.timeoutMs)}`
    : result.error
      ? result.error.message
      : result.signal
        ? `killed by ${result.signal}`
        : `exited with code ${result.code}`;
  return { ok: false, durationMs, why, tail };
}

function lines(stream: NodeJS.ReadableStream, out: WriteStream, emit: (line: string) => void): Promise<void> {
  const decoder = new StringDecoder("utf8");
  let rest = "";
  return new Promise((resolve) => {
    stream.on("data", (chunk: Buffer) => {
      out.write(chunk);
      rest += decoder.write(chunk);
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        emit(rest.slice(0, nl).replace(/\r$/, ""));
        rest = rest.slice(nl + 1);
      }
    });
    stream.once("end", () => {
      rest += decoder.end();
      if (rest.length > 0) emit(rest);
      resolve();
    });
    stream.once("error", () => resolve());
  });
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}
