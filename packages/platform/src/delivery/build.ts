// Runs a service's build command in its folder, with a timeout, its output kept in a log file.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { KeelsonError } from "@keelson/protocol";

export interface BuildOptions {
  service: string;
  command: string;
  cwd: string;
  logFile: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface BuildResult {
  durationMs: number;
  logFile: string;
}

/** Runs the build; rejects with KEELSON_ERR_BUILD_FAILED and the output's last lines. */
export async function runBuild(options: BuildOptions): Promise<BuildResult> {
  const { service, command, cwd, logFile, timeoutMs = 10 * 60_000 } = options;
  await mkdir(dirname(logFile), { recursive: true });
  const out = createWriteStream(logFile);
  const started = Date.now();
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error; timedOut: boolean }>((resolve) => {
    const child = spawn(command, {
      cwd,
      shell: true,
      detached: true,
      env: { ...process.env, ...options.env, FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killGroup(child.pid);
    }, timeoutMs);
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, error, timedOut });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut });
    });
  });
  await new Promise<void>((r) => out.end(r));
  const durationMs = Date.now() - started;
  if (result.code === 0) return { durationMs, logFile };

  const tail = await lastLines(logFile, 20);
  const why = result.timedOut
    ? `timed out after ${Math.round(timeoutMs / 1000)} s`
    : result.error
      ? result.error.message
      : result.signal
        ? `killed by ${result.signal}`
        : `exited with code ${result.code}`;
  throw new KeelsonError("KEELSON_ERR_BUILD_FAILED", `services.${service}.build: \`${command}\` ${why}${tail ? `; last output:\n${tail}` : ""}`, {
    details: { service, command, logFile, durationMs },
  });
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

async function lastLines(file: string, n: number): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    return text.trimEnd().split("\n").slice(-n).map((l) => `  | ${l}`).join("\n");
  } catch {
    return "";
  }
}
