// Starting, finding and stopping the project's control plane and gateway processes.
// Both run detached from the CLI, so they outlive it; each writes a file with its pid.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KeelsonError } from "@keelson/protocol";
import { CONTROL_PLANE_FILE, GATEWAY_DIR } from "../api/index.js";
import { GATEWAY_PID_FILE } from "../gateway/index.js";
import { isProcessRunning } from "../runtime/index.js";

const BIN = fileURLToPath(new URL("../../bin/keelson.js", import.meta.url));

export interface DaemonInfo {
  pid: number;
  url: string;
  adminUrl?: string;
}

async function readJsonFile<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/** Whether a process runs; a zombie (exited, not yet reaped by init) counts as gone. */
export function isAlive(pid: number): boolean {
  return isProcessRunning(pid, undefined);
}

async function healthy(url: string, project?: string): Promise<boolean> {
  try {
    const res = await fetch(new URL("/healthz", url), { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { project?: string };
    return project === undefined || body.project === undefined || body.project === project;
  } catch {
    return false;
  }
}

/** The running control plane of this state folder, if any. */
export async function findControlPlane(stateDir: string): Promise<DaemonInfo | undefined> {
  const info = await readJsonFile<DaemonInfo>(join(stateDir, CONTROL_PLANE_FILE));
  if (!info || !isAlive(info.pid)) return undefined;
  return (await healthy(info.url)) ? info : undefined;
}

export async function findGateway(stateDir: string): Promise<DaemonInfo | undefined> {
  const info = await readJsonFile<DaemonInfo>(join(stateDir, GATEWAY_DIR, GATEWAY_PID_FILE));
  if (!info || !isAlive(info.pid) || !info.adminUrl) return undefined;
  return (await healthy(info.adminUrl)) ? info : undefined;
}

async function lastLines(file: string, n: number): Promise<string> {
  try {
    return (await readFile(file, "utf8"))
      .trimEnd()
      .split("\n")
      .slice(-n)
      .map((line) => {
        try {
          const j = JSON.parse(line) as { msg?: string; err?: { message?: string } | string };
          const e = typeof j.err === "string" ? j.err : j.err?.message;
          return `  | ${j.msg ?? line}${e ? `: ${e}` : ""}`;
        } catch {
          return `  | ${line}`;
        }
      })
      .join("\n");
  } catch {
    return "";
  }
}

/**
 * Starts `keelson <args>` detached with output to `logFile`, then waits until
 * `ready()` answers or the process exits (its last log lines become the error).
 */
async function startDaemon(options: { what: string; args: string[]; logFile: string; ready: () => Promise<DaemonInfo | undefined>; timeoutMs?: number }): Promise<DaemonInfo> {
  const fd = openSync(options.logFile, "a");
  const child = spawn(process.execPath, [BIN, ...options.args], { detached: true, stdio: ["ignore", fd, fd], env: { ...process.env, FORCE_COLOR: "0" } });
  closeSync(fd);
  child.unref();
  let exited: { code: number | null } | undefined;
  child.once("exit", (code) => (exited = { code }));
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  while (Date.now() < deadline) {
    const info = await options.ready();
    if (info) return info;
    if (exited) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!exited && child.pid !== undefined) process.kill(child.pid, "SIGTERM");
  const tail = await lastLines(options.logFile, 5);
  const portErr = /already in use/.test(tail);
  throw new KeelsonError(portErr ? "KEELSON_ERR_PORT_IN_USE" : "KEELSON_ERR_START_FAILED", `the ${options.what} did not start${exited ? ` (exit code ${exited.code})` : ""}; its log ${options.logFile} ends with:\n${tail}`);
}

export async function ensureControlPlane(options: { dir: string; stateDir: string; host: string; port: number; gatewayUrl: string; project: string }): Promise<DaemonInfo & { started: boolean }> {
  const running = await findControlPlane(options.stateDir);
  if (running) return { ...running, started: false };
  // Something else may hold the port: say so instead of failing obscurely.
  const url = `http://${options.host}:${options.port}`;
  try {
    const res = await fetch(new URL("/healthz", url), { signal: AbortSignal.timeout(1000) });
    const body = (await res.json().catch(() => ({}))) as { project?: string };
    throw new KeelsonError(
      "KEELSON_ERR_PORT_IN_USE",
      `controlPlane.port: ${options.host}:${options.port} is already in use${body.project ? ` by the control plane of project "${body.project}"` : " by another process"}; set controlPlane.port in keelson.yaml or pass --port`,
    );
  } catch (err) {
    if (err instanceof KeelsonError) throw err;
  }
  await mkdir(options.stateDir, { recursive: true });
  const info = await startDaemon({
    what: "control plane",
    args: ["serve", options.dir, "--host", options.host, "--port", String(options.port), "--gateway-url", options.gatewayUrl],
    logFile: join(options.stateDir, "controlplane.log"),
    ready: () => findControlPlane(options.stateDir),
  });
  return { ...info, started: true };
}

export async function ensureGateway(options: {
  dir: string;
  stateDir: string;
  host: string;
  port: number;
  adminPort: number;
  meshPort: number;
  meshTls: boolean;
  controlPlaneUrl: string;
}): Promise<DaemonInfo & { started: boolean }> {
  const running = await findGateway(options.stateDir);
  if (running) return { ...running, started: false };
  await mkdir(join(options.stateDir, GATEWAY_DIR), { recursive: true });
  const info = await startDaemon({
    what: "gateway",
    args: [
      "gateway",
      options.dir,
      "--host",
      options.host,
      "--port",
      String(options.port),
      "--admin-port",
      String(options.adminPort),
      "--mesh-port",
      String(options.meshPort),
      ...(options.meshTls ? ["--mesh-tls"] : []),
      "--control-plane",
      options.controlPlaneUrl,
    ],
    logFile: join(options.stateDir, GATEWAY_DIR, "gateway.log"),
    ready: () => findGateway(options.stateDir),
  });
  return { ...info, started: true };
}

/** Sends SIGTERM to a process we started and waits until it is gone (SIGKILL after timeoutMs). */
export async function stopProcess(pid: number, timeoutMs = 15_000): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
