// The process driver with real processes (fixtures/app.mjs): the conformance suite, then
// what only real processes show: groups and signals, backoff, ports, probes, log files,
// and replicas that outlive their control plane and are adopted by the next one.
import { spawn } from "node:child_process";
import { readlinkSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, makeTempDir, waitFor } from "#test-support";
import { isKeelsonError } from "@keelson/protocol";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { isProcessRunning, processGroupMembers, readProcStat } from "./proc-stat.js";
import { createProcessDriver } from "./process-driver.js";
import type { ProcessDriverOptions } from "./process-driver.js";
import { parseLogLine, readReplicaLogs, replicaLogPaths } from "./replica-logs.js";
import type { LogLine } from "./replica-logs.js";
import { CONFORMANCE_MEMORY_LIMIT, describeRuntimeConformance, isStartRetry, recordEvents } from "./runtime.conformance.js";
import type { ReplicaInfo, ReplicaSpec, RuntimeDriver } from "./runtime-driver.js";

const here = dirname(fileURLToPath(import.meta.url));
const APP = `"${process.execPath}" "${join(here, "fixtures", "app.mjs")}"`;
const CONTROL_PLANE = join(here, "fixtures", "control-plane.mjs");
const REPO_ROOT = join(here, "..", "..", "..", "..");
const MIB = 1024 * 1024;

/** Process groups the tests started (pid + start time), killed after each test by pgid only. */
const groups = new Map<number, number | undefined>();
function track(driver: RuntimeDriver): RuntimeDriver {
  driver.onEvent((e) => {
    if (e.replica.pid !== undefined) groups.set(e.replica.pid, e.replica.pidStartTime);
  });
  return driver;
}
function killGroups(): void {
  for (const [pid, startTime] of groups) {
    const stat = readProcStat(pid);
    // A pid now used by a process that is not ours is left alone; a group whose leader is
    // gone keeps its id reserved while members remain, so signalling it is still safe.
    if (stat !== undefined && startTime !== undefined && stat.startTime !== startTime) continue;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  groups.clear();
}
afterAll(killGroups);

const FAST: ProcessDriverOptions = { exitPollIntervalMs: 50, usageIntervalMs: 100, logs: { pollIntervalMs: 50 } };

let seq = 0;
async function appSpec(dir: string, overrides: Partial<ReplicaSpec> = {}): Promise<ReplicaSpec> {
  seq += 1;
  return {
    id: `web-p${process.pid}-${seq}-0`,
    project: "shop",
    service: "web",
    release: "r-test",
    index: 0,
    cwd: dir,
    command: APP,
    env: {},
    port: await freePort(),
    readiness: undefined,
    liveness: undefined,
    stopTimeoutMs: 5_000,
    startTimeoutMs: 10_000,
    logDir: join(dir, "logs"),
    ...overrides,
  };
}

async function storedLines(spec: ReplicaSpec, file = replicaLogPaths(spec.logDir, spec.id).log): Promise<LogLine[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .map(parseLogLine)
    .filter((l): l is LogLine => l !== undefined);
}

async function getJson(port: number, path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return (await res.json()) as Record<string, unknown>;
}

describeRuntimeConformance("process", async () => {
  const { dir, cleanup } = await makeTempDir("keelson-proc-conf-");
  const drivers: RuntimeDriver[] = [];
  const make = (): RuntimeDriver => {
    const driver = track(createProcessDriver(FAST));
    drivers.push(driver);
    return driver;
  };
  return {
    driver: make(),
    makeSpec: (overrides) => appSpec(dir, overrides),
    newDriver: make,
    crash: (r: ReplicaInfo) => {
      process.kill(-(r.pid as number), "SIGKILL");
    },
    exceedMemory: async (r: ReplicaInfo) => {
      const res = await fetch(`http://127.0.0.1:${r.spec.port}/allocate?mb=${(CONFORMANCE_MEMORY_LIMIT / 1024 / 1024) * 1.5}`);
      expect(res.status).toBe(200);
    },
    cleanup: async () => {
      for (const driver of drivers) await Promise.all(driver.list().map((r) => driver.stop(r.spec.id)));
      for (const driver of drivers) await driver.detach();
      killGroups();
      await cleanup();
    },
  };
});

describe("process driver", () => {
  let dir: string;
  let removeDir: () => Promise<void>;
  const drivers: RuntimeDriver[] = [];
  const make = (options: ProcessDriverOptions = {}): RuntimeDriver => {
    const driver = track(createProcessDriver({ ...FAST, ...options }));
    drivers.push(driver);
    return driver;
  };

  beforeEach(async () => {
    ({ dir, cleanup: removeDir } = await makeTempDir("keelson-proc-"));
  });
  afterEach(async () => {
    for (const driver of drivers.splice(0)) {
      await Promise.all(driver.list().map((r) => driver.stop(r.spec.id)));
      await driver.detach();
    }
    killGroups();
    await removeDir();
  });

  it("runs the replica as its own detached process group, with the replica env and output going to files", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = await appSpec(dir, { env: { APP_GREETING: "hi", PORT: "1" } });
    const info = await driver.start(spec);
    await rec.next(spec.id, "ready");
    const pid = info.pid as number;
    const stat = readProcStat(pid);
    expect(stat).toMatchObject({ pgrp: pid, session: pid, startTime: info.pidStartTime });
    expect(stat?.pgrp).not.toBe(readProcStat(process.pid)?.pgrp);
    const paths = replicaLogPaths(spec.logDir, spec.id);
    expect(readlinkSync(`/proc/${pid}/fd/1`)).toBe(paths.stdout);
    expect(readlinkSync(`/proc/${pid}/fd/2`)).toBe(paths.stderr);
    expect(info.details).toEqual({ logFile: paths.log, stdoutFile: paths.stdout, stderrFile: paths.stderr });
    // The replica inherits the control plane's environment; ignore what the test run itself set.
    const env = (await getJson(spec.port, "/env")) as Record<string, string>;
    for (const inherited of Object.keys(env)) if (process.env[inherited] !== undefined && !/^(PORT|KEELSON_(SERVICE|REPLICA|RELEASE|PROJECT))$/.test(inherited)) delete env[inherited];
    expect(env).toEqual({
      APP_GREETING: "hi",
      PORT: String(spec.port),
      KEELSON_SERVICE: "web",
      KEELSON_REPLICA: spec.id,
      KEELSON_RELEASE: "r-test",
      KEELSON_PROJECT: "shop",
    });
  });

  it("restarts a SIGKILLed replica after at least the first backoff step, and it becomes ready again", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = await appSpec(dir);
    const first = await driver.start(spec);
    await rec.next(spec.id, "ready");
    const timeline: Array<{ type: string; at: number }> = [];
    driver.onEvent((e) => timeline.push({ type: e.type, at: Date.now() }));
    process.kill(-(first.pid as number), "SIGKILL");

    const exited = await rec.next(spec.id, "exited");
    expect(exited.replica.lastExit?.signal).toBe("SIGKILL");
    expect(exited.reason).toMatch(new RegExp(`pid ${first.pid} was killed by SIGKILL; restarting in 100 ms`));
    const ready = await rec.next(spec.id, "ready", 2);
    expect(ready.replica).toMatchObject({ restarts: 1, state: "ready", everReady: true, exitsSinceReady: 0 });
    expect(ready.replica.pid).not.toBe(first.pid);
    expect(isProcessRunning(ready.replica.pid as number, ready.replica.pidStartTime)).toBe(true);
    const exitedAt = timeline.find((e) => e.type === "exited")?.at ?? 0;
    const restartingAt = timeline.find((e) => e.type === "restarting")?.at ?? 0;
    expect(restartingAt - exitedAt).toBeGreaterThanOrEqual(98);
  });

  it("a replica that exits at once backs off longer each time, counting exitsSinceReady", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const timeline: Array<{ type: string; at: number }> = [];
    driver.onEvent((e) => timeline.push({ type: e.type, at: Date.now() }));
    const spec = await appSpec(dir, { env: { EXIT_AT_ONCE: "3" } });
    await driver.start(spec);
    await waitFor(() => rec.of(spec.id).filter((e) => e.type === "exited").length >= 4, { timeoutMs: 20_000 });
    await driver.stop(spec.id);

    const exits = rec.of(spec.id).filter((e) => e.type === "exited").slice(0, 4);
    expect(exits.map((e) => e.replica.exitsSinceReady)).toEqual([1, 2, 3, 4]);
    expect(exits.every((e) => e.replica.lastExit?.code === 3 && !e.replica.everReady)).toBe(true);
    const delays = exits.map((e) => Number(/restarting in (\d+) ms/.exec(e.reason ?? "")?.[1]));
    expect(delays).toEqual([100, 150, 225, 338]);
    const gaps: number[] = [];
    for (const [i, e] of timeline.entries()) if (e.type === "exited" && timeline[i + 1]?.type === "restarting") gaps.push((timeline[i + 1]?.at ?? 0) - e.at);
    for (const [i, gap] of gaps.slice(0, 4).entries()) expect(gap).toBeGreaterThanOrEqual((delays[i] ?? 0) - 2);
    expect(rec.types(spec.id)).not.toContain("ready");
    expect(rec.types(spec.id).at(-1)).toBe("stopped");
    expect((await storedLines(spec)).some((l) => l.stream === "stderr" && l.line === "exiting at once with code 3")).toBe(true);
  });

  it("rejects a port taken by another process with KEELSON_ERR_PORT_IN_USE", async () => {
    const port = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, "127.0.0.1", resolve));
    try {
      const driver = make();
      const err = await driver.start(await appSpec(dir, { port })).catch((e: unknown) => e);
      expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_PORT_IN_USE");
      expect((err as Error).message).toBe(`services.web: port ${port} is already in use by another process`);
      expect(driver.list()).toEqual([]);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it("rejects a missing working directory with KEELSON_ERR_START_FAILED naming the service", async () => {
    const driver = make();
    const err = await driver.start(await appSpec(dir, { cwd: join(dir, "no-such-dir") })).catch((e: unknown) => e);
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_START_FAILED");
    expect((err as Error).message).toMatch(/^services\.web: .*no-such-dir does not exist/);
  });

  it("SIGKILLs a group that ignores SIGTERM after stopTimeoutMs, grandchild included", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const pidFile = join(dir, "grandchild.pid");
    const spec = await appSpec(dir, { stopTimeoutMs: 600, env: { IGNORE_SIGTERM: "1", SPAWN_GRANDCHILD: pidFile } });
    const info = await driver.start(spec);
    await rec.next(spec.id, "ready");
    const grandchild = Number(await waitFor(() => readFile(pidFile, "utf8").catch(() => undefined)));
    const grandchildStart = readProcStat(grandchild)?.startTime;
    expect(readProcStat(grandchild)?.pgrp).toBe(info.pid);

    const t0 = Date.now();
    await driver.stop(spec.id);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(590);
    expect(isProcessRunning(grandchild, grandchildStart)).toBe(false);
    expect(await processGroupMembers(info.pid as number)).toEqual([]);
    expect(rec.types(spec.id).at(-1)).toBe("stopped");
    // The shell leading the group died of SIGTERM; the node process had to be killed.
    expect(rec.of(spec.id).at(-1)?.replica.lastExit).toBeDefined();
  });

  it("a graceful replica stops on SIGTERM well before stopTimeoutMs", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = await appSpec(dir, { stopTimeoutMs: 20_000 });
    await driver.start(spec);
    await rec.next(spec.id, "ready");
    const t0 = Date.now();
    await driver.stop(spec.id);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("restarts a replica whose liveness probe fails failureThreshold times", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = await appSpec(dir, {
      env: { FAIL_LIVENESS_AFTER_MS: "400" },
      liveness: { path: "/live", intervalMs: 100, timeoutMs: 1_000, failureThreshold: 2 },
    });
    const first = await driver.start(spec);
    await rec.next(spec.id, "ready");
    const restarting = await rec.next(spec.id, "restarting");
    expect(restarting.reason).toMatch(/^liveness failed 2 times: GET \/live answered 500$/);
    const again = await rec.next(spec.id, "ready", 2);
    expect(again.replica.pid).not.toBe(first.pid);
    expect(again.replica.restarts).toBe(1);
    expect(rec.types(spec.id).slice(0, 5)).toEqual(["started", "ready", "restarting", "exited", "started"]);
  });

  it("samples the whole process group: a CPU-burning member shows over 50% of a core, an idle replica under 20%", async () => {
    const driver = make({ usageIntervalMs: 500 });
    const rec = recordEvents(driver);
    // Two burners are members of the group beside the app the shell runs: together well over half
    // a core even on a busy two-core machine.
    const burn = `"${process.execPath}" -e "for (;;) {}"`;
    const busy = await appSpec(dir, { command: `${burn} & ${burn} & ${APP}` });
    const idle = await appSpec(dir);
    await driver.start(busy);
    await driver.start(idle);
    await rec.next(busy.id, "ready");
    await rec.next(idle.id, "ready");

    const usageOf = (id: string, ok: (cpu: number) => boolean) => () => {
      const usage = driver.get(id)?.usage;
      return usage !== undefined && ok(usage.cpuPercent) && usage;
    };
    // Generous bounds and polling: the machine is shared, so any one sample may be low or high.
    const hot = await waitFor(usageOf(busy.id, (cpu) => cpu > 50), { timeoutMs: 20_000, what: "a sample of the busy replica over 50%" });
    expect(hot.memoryBytes).toBeGreaterThan(40 * MIB);
    expect(hot.memoryLimitBytes).toBeUndefined();
    expect(Date.parse(hot.at)).toBeGreaterThan(Date.now() - 60_000);
    // Its first sample counts Node's start; later ones show it idle.
    const cool = await waitFor(usageOf(idle.id, (cpu) => cpu < 20), { timeoutMs: 20_000, what: "a sample of the idle replica under 20%" });
    expect(cool.memoryBytes).toBeGreaterThan(10 * MIB);
    expect(cool.memoryBytes).toBeLessThan(hot.memoryBytes);
  });

  it("restarts a replica whose process group grows over its memory limit, recording the figure, with the crash backoff when it keeps doing so", async () => {
    const driver = make({ restartPolicy: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 5_000, resetAfterMs: 60_000 } });
    const rec = recordEvents(driver);
    // Node alone is about 40 MiB; this grows 8 MiB each 50 ms, up to 512 MiB.
    const grow = "const held = []; setInterval(() => { if (held.length < 512) for (let i = 0; i < 8; i++) held.push(Buffer.alloc(1 << 20, 1)); }, 50);";
    const spec = await appSpec(dir, { command: `"${process.execPath}" -e "${grow}"`, memoryLimitBytes: 64 * MIB });
    const first = await driver.start(spec);

    const exceeded = await rec.next(spec.id, "memory-exceeded");
    expect(exceeded.reason).toMatch(/^memory \d+(\.\d)? MiB over its limit 64 MiB$/);
    expect(Number(/^memory ([\d.]+) MiB/.exec(exceeded.reason ?? "")?.[1])).toBeGreaterThan(64);
    expect(exceeded.replica).toMatchObject({ pid: first.pid, restarts: 0 });
    expect(exceeded.replica.usage?.memoryBytes).toBeGreaterThan(64 * MIB);
    expect(exceeded.replica.usage?.memoryLimitBytes).toBe(64 * MIB);

    // (A start retried because another process held the port for a moment is left out.)
    const events = () => rec.of(spec.id).filter((e) => !isStartRetry(e));
    await waitFor(() => events().filter((e) => e.type === "exited").length >= 2, { timeoutMs: 20_000, what: "a second exit over the limit" });
    await driver.stop(spec.id);
    expect(isProcessRunning(first.pid as number, first.pidStartTime)).toBe(false);
    expect(events().map((e) => e.type).slice(0, 6)).toEqual(["started", "memory-exceeded", "restarting", "exited", "started", "memory-exceeded"]);
    const exits = events().filter((e) => e.type === "exited");
    expect(exits[0]?.reason).toMatch(new RegExp(`^pid ${first.pid} .* \\(stopped for going over its memory limit\\); restarting in 100 ms$`));
    // Stopped gracefully, not killed.
    expect(exits[0]?.replica.lastExit?.signal).not.toBe("SIGKILL");
    // The second time round, the backoff has grown (200 ms, more after a retried start): no restart storm.
    const secondDelay = Number(/\(stopped for going over its memory limit\); restarting in (\d+) ms$/.exec(exits[1]?.reason ?? "")?.[1]);
    expect(secondDelay).toBeGreaterThanOrEqual(200);
    const memoryRestarts = events().filter((e) => e.type === "restarting");
    expect(memoryRestarts.map((e) => e.reason?.startsWith("memory "))).toEqual(memoryRestarts.map(() => true));
  });

  it("pause stops every member of the group (state T), which answers nothing until resume", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const pidFile = join(dir, "grandchild.pid");
    const spec = await appSpec(dir, { env: { SPAWN_GRANDCHILD: pidFile } });
    const info = await driver.start(spec);
    await rec.next(spec.id, "ready");
    await waitFor(() => readFile(pidFile, "utf8").catch(() => undefined));
    const members = await processGroupMembers(info.pid as number);
    expect(members.length).toBeGreaterThanOrEqual(2);
    const states = (): Array<string | undefined> => members.map((pid) => readProcStat(pid)?.state);

    expect(await driver.pause(spec.id)).toBe(true);
    await waitFor(() => states().every((s) => s === "T"), { what: "every member of the group stopped" });
    expect(driver.get(spec.id)?.paused).toBe(true);
    // The kernel still accepts the connection; nobody answers it.
    const answer = await fetch(`http://127.0.0.1:${spec.port}/stats`, { signal: AbortSignal.timeout(500) }).then(
      () => "answered",
      () => "no answer",
    );
    expect(answer).toBe("no answer");

    expect(await driver.resume(spec.id)).toBe(true);
    await waitFor(() => states().every((s) => s !== "T"), { what: "every member of the group running again" });
    expect((await getJson(spec.port, "/stats")).pid).toBeTypeOf("number");
    expect(driver.get(spec.id)?.paused).toBe(false);
    expect(rec.types(spec.id)).toEqual(["started", "ready"]);
  });

  it("a paused replica fails its liveness probe and is restarted gracefully (continued, not left for the SIGKILL)", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = await appSpec(dir, { stopTimeoutMs: 60_000, liveness: { path: "/live", intervalMs: 100, timeoutMs: 300, failureThreshold: 2 } });
    const first = await driver.start(spec);
    await rec.next(spec.id, "ready");
    expect(await driver.pause(spec.id)).toBe(true);

    const restarting = await rec.next(spec.id, "restarting");
    expect(restarting.reason).toBe("liveness failed 2 times: GET /live: no answer within 300 ms");
    const exited = await rec.next(spec.id, "exited");
    expect(exited.replica.lastExit?.signal).not.toBe("SIGKILL");
    const again = await rec.next(spec.id, "ready", 2);
    expect(again.replica).toMatchObject({ paused: false, restarts: 1 });
    expect(again.replica.pid).not.toBe(first.pid);
    expect(isProcessRunning(first.pid as number, first.pidStartTime)).toBe(false);
  });

  it("a new driver adopts a paused replica as paused, and stops it gracefully", async () => {
    const first = make();
    const rec = recordEvents(first);
    const spec = await appSpec(dir, { stopTimeoutMs: 60_000 });
    const info = await first.start(spec);
    await rec.next(spec.id, "ready");
    await first.pause(spec.id);
    await waitFor(() => readProcStat(info.pid as number)?.state === "T", { what: "the replica stopped" });
    await first.detach();

    const second = make();
    const adopted = await second.adopt(spec, { pid: info.pid as number, pidStartTime: info.pidStartTime, restarts: 0, startedAt: info.startedAt });
    expect(adopted).toMatchObject({ pid: info.pid, paused: true });
    await second.stop(spec.id);
    expect(isProcessRunning(info.pid as number, info.pidStartTime)).toBe(false);
    expect(await processGroupMembers(info.pid as number)).toEqual([]);
  });

  it("gates readiness on the HTTP probe: not ready until the app says so, unready and ready again", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const readyFile = join(dir, "ready-now");
    const spec = await appSpec(dir, { env: { READY_FILE: readyFile }, readiness: { path: "/ready", intervalMs: 50, timeoutMs: 1_000, failureThreshold: 2 } });
    await driver.start(spec);
    // The app answers (503) several probes, and the replica stays "starting".
    await waitFor(async () => Number((await getJson(spec.port, "/stats")).readinessChecks) >= 3);
    expect(driver.get(spec.id)?.state).toBe("starting");
    expect(rec.types(spec.id)).toEqual(["started"]);

    await writeFile(readyFile, "");
    await rec.next(spec.id, "ready");
    await rm(readyFile);
    const unready = await rec.next(spec.id, "unready");
    expect(unready.reason).toBe("readiness failed 2 times: GET /ready answered 503");
    expect(driver.get(spec.id)?.state).toBe("unready");
    await writeFile(readyFile, "");
    await rec.next(spec.id, "ready", 2);
    expect(rec.types(spec.id)).toEqual(["started", "ready", "unready", "ready"]);
  });

  it("without a readiness probe, is ready once the port accepts connections", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = await appSpec(dir, { env: { LISTEN_AFTER_MS: "700" } });
    await driver.start(spec);
    const t0 = Date.now();
    await rec.next(spec.id, "ready");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(650);
  });

  it("collects stdout and stderr as stamped lines of the replica", async () => {
    const driver = make();
    const spec = await appSpec(dir, { env: { LOG_LINES: "5" } });
    const before = new Date().toISOString();
    await driver.start(spec);
    const lines = await waitFor(async () => {
      const l = await storedLines(spec);
      return l.length >= 6 && l;
    });
    expect(lines.filter((l) => l.stream === "stdout").map((l) => l.line.trim())).toEqual(["line 1", "line 2", "line 3", "line 4", "line 5"]);
    expect(lines.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual(["to stderr"]);
    expect(lines.every((l) => l.replica === spec.id && l.t >= before && !Number.isNaN(Date.parse(l.t)))).toBe(true);
  });

  it("rotates the collected log at a small maxBytes, keeping `keep` files", async () => {
    const driver = make({ logs: { pollIntervalMs: 50, maxBytes: 2_000, keep: 2 } });
    const spec = await appSpec(dir, { env: { LOG_LINES: "200", LOG_LINE_PAD: "20" } });
    await driver.start(spec);
    const readAll = async (): Promise<LogLine[]> => {
      const got: LogLine[] = [];
      for await (const l of readReplicaLogs({ logDir: spec.logDir, replicaIds: [spec.id] })) got.push(l);
      return got;
    };
    await waitFor(async () => (await readAll()).some((l) => l.line.startsWith("line 200 ")));
    // Read again now that the collector is idle: a read racing several rotations may skip a file.
    const all = await readAll();
    const paths = replicaLogPaths(spec.logDir, spec.id);
    expect((await storedLines(spec, `${paths.log}.1`)).length).toBeGreaterThan(0);
    expect((await storedLines(spec, `${paths.log}.2`)).length).toBeGreaterThan(0);
    expect(await readFile(`${paths.log}.3`).catch(() => "absent")).toBe("absent");
    const numbers = all.filter((l) => l.stream === "stdout").map((l) => Number(l.line.split(" ")[1]));
    // The oldest lines were rotated away; what is kept is in order and ends with the last.
    expect(numbers.at(-1)).toBe(200);
    expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => 200 - numbers.length + 1 + i));
  });

  it("readReplicaLogs follows a running replica, and since/tail select", async () => {
    const driver = make();
    const spec = await appSpec(dir, { env: { LOG_EVERY_MS: "40" } });
    await driver.start(spec);
    const abort = new AbortController();
    const followed: LogLine[] = [];
    for await (const l of readReplicaLogs({ logDir: spec.logDir, tail: 0, follow: true, signal: abort.signal, pollIntervalMs: 50 })) {
      followed.push(l);
      if (followed.length === 8) abort.abort();
    }
    const ticks = followed.map((l) => Number(l.line.split(" ")[1]));
    expect(ticks).toEqual(Array.from({ length: 8 }, (_, i) => (ticks[0] ?? 0) + i));

    const pivot = followed[4] as LogLine;
    const since: LogLine[] = [];
    for await (const l of readReplicaLogs({ logDir: spec.logDir, since: new Date(pivot.t) })) since.push(l);
    expect(since.every((l) => l.t >= pivot.t)).toBe(true);
    expect(since.map((l) => l.line)).toContain(pivot.line);
    const tail: LogLine[] = [];
    for await (const l of readReplicaLogs({ logDir: spec.logDir, tail: 3 })) tail.push(l);
    expect(tail.length).toBe(3);
  });

  it("after detach, a new driver adopts the same process (no restart), collects the lines written meanwhile once, and sees its exit", async () => {
    const first = make();
    const rec1 = recordEvents(first);
    const spec = await appSpec(dir, { env: { LOG_EVERY_MS: "30" } });
    await first.start(spec);
    const ready = (await rec1.next(spec.id, "ready")).replica;
    await waitFor(async () => (await storedLines(spec)).some((l) => l.line === "tick 3"));
    await first.detach();

    // Lines keep going to the raw file while nobody collects them.
    const collectedBefore = (await storedLines(spec)).length;
    const paths = replicaLogPaths(spec.logDir, spec.id);
    await waitFor(async () => (await readFile(paths.stdout, "utf8")).split("\n").length > collectedBefore + 10);
    expect((await storedLines(spec)).length).toBe(collectedBefore);
    expect(isProcessRunning(ready.pid as number, ready.pidStartTime)).toBe(true);

    const second = make();
    const rec2 = recordEvents(second);
    const adopted = await second.adopt(spec, { pid: ready.pid as number, pidStartTime: ready.pidStartTime, restarts: 0, startedAt: ready.startedAt });
    expect(adopted?.pid).toBe(ready.pid);
    await rec2.next(spec.id, "ready");
    const lastTick = Number(/tick (\d+)/.exec(await readFile(paths.stdout, "utf8").then((t) => t.trim().split("\n").at(-1) ?? ""))?.[1]);
    await waitFor(async () => (await storedLines(spec)).some((l) => l.line === `tick ${lastTick + 2}`));
    const ticks = (await storedLines(spec)).map((l) => Number(l.line.split(" ")[1]));
    expect(ticks).toEqual(Array.from({ length: ticks.length }, (_, i) => i + 1));

    // Not our child: the exit is noticed by polling, and the replica is restarted.
    process.kill(-(ready.pid as number), "SIGKILL");
    const exited = await rec2.next(spec.id, "exited");
    expect(exited.reason).toMatch(/exit status unknown/);
    const again = await rec2.next(spec.id, "ready", 2);
    expect(again.replica.pid).not.toBe(ready.pid);
    expect(rec1.types(spec.id)).toEqual(["started", "ready"]);
  });

  it("reapStrays stops replica processes of this project that nothing supervises, and leaves supervised and other projects' ones alone", async () => {
    const marker = `${dir}/data/`;
    const first = make();
    const rec = recordEvents(first);
    const kept = await appSpec(dir, { env: { KEELSON_DATA_DIR: `${marker}web` } });
    const stray = await appSpec(dir, { env: { KEELSON_DATA_DIR: `${marker}web` } });
    const other = await appSpec(dir, { env: { KEELSON_DATA_DIR: `${dir}-elsewhere/data/web` } });
    for (const s of [kept, stray, other]) await first.start(s);
    const pids = await Promise.all([kept, stray, other].map(async (s) => (await rec.next(s.id, "ready")).replica.pid as number));
    // A control plane died: the next one adopts only the replica it had recorded.
    await first.detach();
    const second = make();
    const info = await second.adopt(kept, { pid: pids[0] as number, pidStartTime: readProcStat(pids[0] as number)?.startTime, restarts: 0, startedAt: undefined });
    expect(info?.pid).toBe(pids[0]);
    const reaped = await second.reapStrays!({ env: "KEELSON_DATA_DIR", prefix: marker }, 5_000);
    expect(reaped).toEqual([{ pid: pids[1], replica: stray.id }]);
    await waitFor(async () => ((await processGroupMembers(pids[1] as number)).length === 0 ? true : undefined));
    expect(isProcessRunning(pids[0] as number, undefined)).toBe(true);
    expect(isProcessRunning(pids[2] as number, undefined)).toBe(true);
    expect(await second.reapStrays!({ env: "KEELSON_DATA_DIR", prefix: marker })).toEqual([]);
  });

  it("adopt refuses a pid whose start time differs, and a pid that is gone", async () => {
    const driver = make();
    const spec = await appSpec(dir);
    const own = readProcStat(process.pid);
    expect(own).toBeDefined();
    expect(await driver.adopt(spec, { pid: process.pid, pidStartTime: (own?.startTime ?? 0) + 1, restarts: 0, startedAt: undefined })).toBeUndefined();
    expect(await driver.adopt(spec, { pid: 4_194_304 + 1, pidStartTime: undefined, restarts: 0, startedAt: undefined })).toBeUndefined();
    expect(driver.list()).toEqual([]);
  });

  it("a replica outlives a control plane that is SIGKILLed, and the next one adopts it", async () => {
    const spec = await appSpec(dir, { env: { LOG_EVERY_MS: "50" } });
    const cp = spawn(process.execPath, [CONTROL_PLANE], { cwd: REPO_ROOT, env: { ...process.env, REPLICA_SPEC: JSON.stringify(spec) }, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    cp.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    try {
      const info = await waitFor(() => (out.includes("\n") ? (JSON.parse(out.split("\n")[0] as string) as ReplicaInfo) : undefined), { timeoutMs: 20_000, what: "the control plane's ready replica" });
      groups.set(info.pid as number, info.pidStartTime);
      const cpGone = new Promise((resolve) => cp.once("exit", resolve));
      cp.kill("SIGKILL");
      await cpGone;

      // Still running, still serving, still writing its (uncollected) logs.
      expect(isProcessRunning(info.pid as number, info.pidStartTime)).toBe(true);
      expect((await getJson(spec.port, "/stats")).pid).toBeTypeOf("number");
      const paths = replicaLogPaths(spec.logDir, spec.id);
      const size = (await readFile(paths.stdout)).length;
      await waitFor(async () => (await readFile(paths.stdout)).length > size);

      const next = make();
      const rec = recordEvents(next);
      const adopted = await next.adopt(spec, { pid: info.pid as number, pidStartTime: info.pidStartTime, restarts: info.restarts, startedAt: info.startedAt });
      expect(adopted?.pid).toBe(info.pid);
      await rec.next(spec.id, "ready");
      await next.stop(spec.id);
      expect(isProcessRunning(info.pid as number, info.pidStartTime)).toBe(false);
    } finally {
      if (cp.exitCode === null && cp.signalCode === null) cp.kill("SIGKILL");
    }
  });
});
