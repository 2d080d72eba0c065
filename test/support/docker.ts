// A real Docker Engine for tests: the one at DOCKER_HOST or /var/run/docker.sock when it answers,
// else a private dockerd started for the test file (data, exec root and socket in a temp folder;
// no bridge, no iptables rules: replicas use the host's network) and stopped by its pid.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { makeTempDir, waitFor } from "./index.js";

/** Whether tests can have a Docker Engine, and if not, why (for requireComponent). */
export interface DockerAvailability {
  available: boolean;
  reason: string;
}

export interface TestDocker {
  socketPath: string;
  /** The dockerd we started; undefined for an engine that was already there. */
  pid: number | undefined;
  /** Stops our dockerd (SIGTERM, then SIGKILL) and removes its folder; nothing for an engine that was there. */
  stop(): Promise<void>;
}

function existingSocket(): string | undefined {
  const host = process.env.DOCKER_HOST;
  if (host?.startsWith("unix://") === true) return host.slice("unix://".length);
  return existsSync("/var/run/docker.sock") ? "/var/run/docker.sock" : undefined;
}

/** GET /_ping on a unix socket: whether an engine answers there. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** Mount points at or under `dir`, deepest first (from /proc/self/mounts; octal escapes as the kernel writes them). */
function mountsUnder(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync("/proc/self/mounts", "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .map((line) => (line.split(" ")[1] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

function findDockerd(): string | undefined {
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/bin"]) {
    if (dir === "") continue;
    const path = join(dir, "dockerd");
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Whether an engine answers, or one can be started (dockerd installed, and we are root). */
export async function dockerAvailability(): Promise<DockerAvailability> {
  const socket = existingSocket();
  if (socket !== undefined && (await ping(socket))) return { available: true, reason: `an engine answers at ${socket}` };
  if (findDockerd() === undefined) return { available: false, reason: "no engine answers and dockerd is not installed (apt-get install docker.io)" };
  if (process.getuid?.() !== 0) return { available: false, reason: "no engine answers, and starting dockerd needs root" };
  return { available: true, reason: "dockerd is installed" };
}

/**
 * Finds or starts a Docker Engine. Call `stop()` in afterAll.
 *
 * @example
 * let engine: TestDocker;
 * beforeAll(async () => { engine = await startTestDocker(); }, 60_000);
 * afterAll(() => engine.stop());
 */
export async function startTestDocker(): Promise<TestDocker> {
  const socket = existingSocket();
  if (socket !== undefined && (await ping(socket))) return { socketPath: socket, pid: undefined, stop: async () => undefined };
  const dockerd = findDockerd();
  if (dockerd === undefined) throw new Error("cannot start dockerd: it is not installed");

  // A short path: a unix socket's path is limited to 108 bytes.
  const tmp = await makeTempDir("kd-");
  const socketPath = join(tmp.dir, "docker.sock");
  const args = [
    "--data-root", join(tmp.dir, "data"),
    "--exec-root", join(tmp.dir, "exec"),
    "--pidfile", join(tmp.dir, "dockerd.pid"),
    "-H", `unix://${socketPath}`,
    // Replicas use the host's network: no default bridge, and no iptables rules to clean up.
    "--bridge", "none",
    "--iptables=false",
    "--ip-masq=false",
    "--ip-forward=false",
  ];
  const child: ChildProcess = spawn(dockerd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  });
  const exited = once(child, "exit");
  if (child.pid === undefined) {
    const [err] = (await once(child, "error")) as [Error];
    await tmp.cleanup();
    throw new Error(`cannot start ${dockerd}: ${err.message}`);
  }
  const pid = child.pid;
  // A worker that dies without afterAll must not leave a daemon behind.
  const onExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, "SIGKILL");
  };
  process.once("exit", onExit);
  const stop = async (): Promise<void> => {
    process.removeListener("exit", onExit);
    if (child.exitCode === null && child.signalCode === null) {
      // SIGTERM: dockerd stops its containers, its containerd and unmounts its layers.
      process.kill(pid, "SIGTERM");
      const done = await Promise.race([exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000).unref())]);
      if (!done) {
        process.kill(pid, "SIGKILL");
        await exited;
      }
    }
    // dockerd leaves its network namespace file (exec-root/netns/default) mounted.
    for (const mount of mountsUnder(tmp.dir)) spawnSync("umount", ["-l", mount]);
    await tmp.cleanup().catch(() => undefined);
  };
  const exitedEarly = exited.then(() => Promise.reject(new Error(`dockerd exited with ${String(child.exitCode ?? child.signalCode)}: ${log}`)));
  exitedEarly.catch(() => {});
  try {
    await Promise.race([waitFor(() => ping(socketPath), { timeoutMs: 30_000, intervalMs: 100, what: "dockerd to answer" }), exitedEarly]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socketPath, pid, stop };
}
