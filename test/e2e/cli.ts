// Runs the real `keelson` binary for end-to-end tests.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { isProcessRunning } from "../../packages/platform/src/runtime/index.js";

export const ROOT = join(import.meta.dirname, "../..");
export const BIN = join(ROOT, "packages/platform/bin/keelson.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function keelson(args: string[], options: { cwd?: string; timeoutMs?: number; env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: options.cwd ?? ROOT, timeout: options.timeoutMs ?? 120_000, env: { ...process.env, NO_COLOR: "1", ...options.env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    // What the command reads on stdin (a secret's value); without it, stdin is closed at once.
    child.stdin?.end(options.input ?? "");
  });
}

/** Whether a process runs; an exited process that init has not reaped yet (a zombie) does not. */
export function pidAlive(pid: number): boolean {
  return isProcessRunning(pid, undefined);
}
