// The memory driver: the conformance suite, its test hooks, and the supervision core's
// restart backoff, usage sampling and memory limit (shared with the process driver) measured
// without processes.
import { waitFor } from "#test-support";
import { isKeelsonError } from "@keelson/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { createMemoryDriver, createMemoryHost } from "./memory-driver.js";
import type { MemoryDriver, MemoryDriverOptions } from "./memory-driver.js";
import { describeMemoryOver } from "./replica-supervisor.js";
import { CONFORMANCE_MEMORY_LIMIT, describeRuntimeConformance, recordEvents } from "./runtime.conformance.js";
import type { ReplicaSpec } from "./runtime-driver.js";

const MIB = 1024 * 1024;
let counter = 0;
function memorySpec(overrides: Partial<ReplicaSpec> = {}): ReplicaSpec {
  counter += 1;
  return {
    id: `orders-m${counter}-0`,
    project: "shop",
    service: "orders",
    release: "r-test",
    index: 0,
    cwd: "/nowhere",
    command: "memory",
    env: {},
    port: 20_000 + counter,
    readiness: undefined,
    liveness: undefined,
    stopTimeoutMs: 1_000,
    startTimeoutMs: 5_000,
    logDir: "/nowhere/logs",
    ...overrides,
  };
}

async function stopAll(driver: MemoryDriver): Promise<void> {
  await Promise.all(driver.list().map((r) => driver.stop(r.spec.id)));
}

describeRuntimeConformance("memory", async () => {
  const host = createMemoryHost();
  const drivers: MemoryDriver[] = [];
  const make = (): MemoryDriver => {
    const driver = createMemoryDriver({ host, readyDelayMs: 5, usageIntervalMs: 10 });
    drivers.push(driver);
    return driver;
  };
  const driver = make();
  return {
    driver,
    makeSpec: memorySpec,
    newDriver: make,
    crash: (r) => host.exit(r.pid as number),
    exceedMemory: (r) => driver.setUsage(r.spec.id, { cpuPercent: 3, memoryBytes: 2 * CONFORMANCE_MEMORY_LIMIT }),
    cleanup: async () => {
      for (const driver of drivers) await stopAll(driver);
      for (const pid of host.pids()) host.exit(pid);
    },
  };
});

describe("memory driver", () => {
  const drivers: MemoryDriver[] = [];
  const make = (options: MemoryDriverOptions = {}): MemoryDriver => {
    const driver = createMemoryDriver(options);
    drivers.push(driver);
    return driver;
  };
  afterEach(async () => {
    for (const driver of drivers.splice(0)) await stopAll(driver);
  });

  it("a crash loop backs off x multiplier up to the cap and counts exitsSinceReady", async () => {
    const driver = make({ restartPolicy: { initialDelayMs: 20, multiplier: 2, maxDelayMs: 80, resetAfterMs: 60_000 }, behavior: () => ({ exitAfterMs: 0, exitCode: 3 }) });
    const rec = recordEvents(driver);
    const timeline: Array<{ type: string; reason: string | undefined; at: number }> = [];
    driver.onEvent((e) => timeline.push({ type: e.type, reason: e.reason, at: Date.now() }));
    const spec = memorySpec();
    await driver.start(spec);
    await waitFor(() => rec.of(spec.id).filter((e) => e.type === "exited").length >= 5);
    await driver.stop(spec.id);

    const exits = rec.of(spec.id).filter((e) => e.type === "exited");
    expect(exits.map((e) => e.replica.exitsSinceReady).slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(exits.every((e) => !e.replica.everReady && e.replica.lastExit?.code === 3)).toBe(true);
    expect(exits.map((e) => /restarting in (\d+) ms/.exec(e.reason ?? "")?.[1]).slice(0, 5)).toEqual(["20", "40", "80", "80", "80"]);
    // The delay is really waited: from each "exited" to the following "restarting".
    for (const [i, e] of timeline.entries()) {
      const next = timeline[i + 1];
      if (e.type !== "exited" || next?.type !== "restarting") continue;
      const wanted = Number(/restarting in (\d+) ms/.exec(e.reason ?? "")?.[1]);
      expect(next.at - e.at).toBeGreaterThanOrEqual(wanted - 2);
    }
    expect(rec.of(spec.id).filter((e) => e.type === "restarting").at(-1)?.replica.restarts).toBe(rec.of(spec.id).filter((e) => e.type === "restarting").length);
  });

  it("the backoff resets once a run stayed up resetAfterMs", async () => {
    // Three quick exits, then a run that stays up until crashed by hand.
    const driver = make({
      restartPolicy: { initialDelayMs: 10, multiplier: 3, maxDelayMs: 10_000, resetAfterMs: 150 },
      behavior: (_spec, attempt) => (attempt <= 3 ? { exitAfterMs: 0 } : undefined),
    });
    const rec = recordEvents(driver);
    const spec = memorySpec();
    await driver.start(spec);
    const ready = await rec.next(spec.id, "ready");
    expect(rec.of(spec.id).filter((e) => e.type === "exited").map((e) => /in (\d+) ms/.exec(e.reason ?? "")?.[1])).toEqual(["10", "30", "90"]);
    expect(ready.replica.exitsSinceReady).toBe(0);
    const upSince = Date.now();
    await waitFor(() => Date.now() - upSince > 200, { what: "an uptime past resetAfterMs" });
    const seen = rec.of(spec.id).length;
    driver.crash(spec.id);
    const exited = await rec.next(spec.id, "exited", seen);
    expect(exited.reason).toMatch(/restarting in 10 ms/);
  });

  it("restart during a long backoff starts the replica now and resets the backoff", async () => {
    const driver = make({ restartPolicy: { initialDelayMs: 50, multiplier: 4, maxDelayMs: 10_000, resetAfterMs: 60_000 }, behavior: () => ({ exitAfterMs: 0 }) });
    const rec = recordEvents(driver);
    const spec = memorySpec();
    await driver.start(spec);
    // Exits at 50 and 200 ms backoff; the third exit waits 800 ms.
    const third = await waitFor(() => rec.of(spec.id).filter((e) => e.type === "exited")[2]);
    expect(third.reason).toMatch(/restarting in 800 ms/);
    const seen = rec.of(spec.id).length;
    const t0 = Date.now();
    await driver.restart(spec.id);
    expect(Date.now() - t0).toBeLessThan(600);
    expect(rec.types(spec.id).slice(seen, seen + 2)).toEqual(["restarting", "started"]);
    expect(rec.of(spec.id)[seen]?.reason).toBe("restart requested");
    const next = await rec.next(spec.id, "exited", seen);
    expect(next.reason).toMatch(/restarting in 50 ms/);
    expect(next.replica.restarts).toBe(3);
  });

  it("stop during a restart wins: the replica ends stopped and stays stopped", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = memorySpec();
    await driver.start(spec);
    await rec.next(spec.id, "ready");
    const restarting = driver.restart(spec.id).catch((e: unknown) => e);
    await driver.stop(spec.id);
    await restarting;
    expect(rec.types(spec.id).at(-1)).toBe("stopped");
    expect(driver.get(spec.id)).toBeUndefined();
    expect(driver.host.pids()).toEqual([]);
  });

  it("a listener that stops the replica on hearing restarting leaves no process behind", async () => {
    const driver = make({ restartPolicy: { initialDelayMs: 10, multiplier: 2, maxDelayMs: 100, resetAfterMs: 60_000 } });
    const rec = recordEvents(driver);
    const spec = memorySpec();
    driver.onEvent((e) => {
      if (e.type === "restarting") void driver.stop(e.replica.spec.id);
    });
    await driver.start(spec);
    await rec.next(spec.id, "ready");
    driver.crash(spec.id);
    await rec.next(spec.id, "stopped");
    expect(rec.types(spec.id)).toEqual(["started", "ready", "exited", "restarting", "stopped"]);
    expect(driver.host.pids()).toEqual([]);
  });

  it("liveness failure announces restarting, then the exit, then the new run", async () => {
    const driver = make({ restartPolicy: { initialDelayMs: 10, multiplier: 2, maxDelayMs: 100, resetAfterMs: 60_000 } });
    const rec = recordEvents(driver);
    const spec = memorySpec();
    const first = await driver.start(spec);
    await rec.next(spec.id, "ready");
    driver.failLiveness(spec.id, "liveness failed 3 times: GET /live answered 500");
    const ready = await rec.next(spec.id, "ready", 2);
    expect(rec.types(spec.id)).toEqual(["started", "ready", "restarting", "exited", "started", "ready"]);
    const restarting = rec.of(spec.id)[2];
    expect(restarting?.reason).toBe("liveness failed 3 times: GET /live answered 500");
    expect(restarting?.replica.state).toBe("stopping");
    expect(ready.replica.restarts).toBe(1);
    expect(ready.replica.pid).not.toBe(first.pid);
    expect(rec.of(spec.id)[3]?.replica.lastExit?.signal).toBe("SIGTERM");
  });

  it("readiness can be held back and taken away: unready, then ready again", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = memorySpec();
    driver.setReadiness(spec.id, false);
    await driver.start(spec);
    await waitFor(() => rec.types(spec.id).includes("started"));
    await new Promise((resolve) => setImmediate(resolve));
    expect(driver.get(spec.id)?.state).toBe("starting");
    driver.setReadiness(spec.id, undefined);
    await rec.next(spec.id, "ready");
    driver.setReadiness(spec.id, false);
    const unready = await rec.next(spec.id, "unready");
    expect(unready.replica.state).toBe("unready");
    expect(unready.reason).toBeTruthy();
    driver.setReadiness(spec.id, true);
    await rec.next(spec.id, "ready", 3);
    expect(rec.types(spec.id)).toEqual(["started", "ready", "unready", "ready"]);
  });

  it("a replica that ignores SIGTERM is killed after stopTimeoutMs", async () => {
    const driver = make({ behavior: () => ({ ignoreSigterm: true }) });
    const rec = recordEvents(driver);
    const spec = memorySpec({ stopTimeoutMs: 150 });
    await driver.start(spec);
    await rec.next(spec.id, "ready");
    const t0 = Date.now();
    await driver.stop(spec.id);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(rec.of(spec.id).at(-1)?.replica.lastExit?.signal).toBe("SIGKILL");
  });

  it("a port held by another program is KEELSON_ERR_PORT_IN_USE until it is freed", async () => {
    const host = createMemoryHost();
    const driver = make({ host });
    const spec = memorySpec();
    const free = host.occupyPort(spec.port);
    const err = await driver.start(spec).catch((e: unknown) => e);
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_PORT_IN_USE");
    free();
    await expect(driver.start(spec)).resolves.toMatchObject({ state: "starting" });
  });

  it("a spawn failure rejects start; on a later restart it counts as an exit and backs off", async () => {
    const driver = make({
      restartPolicy: { initialDelayMs: 10, multiplier: 2, maxDelayMs: 100, resetAfterMs: 60_000 },
      behavior: (_spec, attempt) => (attempt === 1 || attempt === 3 ? { failToSpawn: true } : attempt === 2 ? { exitAfterMs: 30 } : undefined),
    });
    const rec = recordEvents(driver);
    const spec = memorySpec();
    const err = await driver.start(spec).catch((e: unknown) => e);
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_START_FAILED");
    expect(driver.get(spec.id)).toBeUndefined();

    await driver.start(spec); // attempt 2: exits after 30 ms; attempt 3 cannot spawn; attempt 4 runs
    await rec.next(spec.id, "ready", 5);
    expect(rec.types(spec.id)).toEqual(["started", "ready", "exited", "restarting", "exited", "restarting", "started", "ready"]);
    const spawnFailure = rec.of(spec.id)[4];
    expect(spawnFailure?.reason).toMatch(/spawn failed/);
    expect(spawnFailure?.replica).toMatchObject({ state: "backoff", exitsSinceReady: 2, pid: undefined });
  });

  it("events carry snapshots that later changes do not touch", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const spec = memorySpec();
    await driver.start(spec);
    await rec.next(spec.id, "ready");
    const [started, ready] = rec.of(spec.id);
    expect(started?.type).toBe("started");
    expect(started?.replica.state).toBe("starting");
    expect(ready?.replica.state).toBe("ready");
    (started?.replica.details as Record<string, unknown>).scribbled = true;
    expect(driver.get(spec.id)?.details).toEqual({});
  });

  it("samples usage at its interval: absent until set, with the limit and time of the sample, gone with the process", async () => {
    const driver = make({ usageIntervalMs: 5 });
    const rec = recordEvents(driver);
    const limited = memorySpec({ memoryLimitBytes: 256 * MIB });
    const unlimited = memorySpec();
    await driver.start(limited);
    await driver.start(unlimited);
    await rec.next(limited.id, "ready");
    await rec.next(unlimited.id, "ready");
    // Nothing reported yet: no usage, not even after several intervals.
    const until = Date.now() + 50;
    await waitFor(() => Date.now() > until);
    expect(driver.get(limited.id)?.usage).toBeUndefined();

    const before = new Date().toISOString();
    driver.setUsage(limited.id, { cpuPercent: 12.5, memoryBytes: 48 * MIB });
    driver.setUsage(unlimited.id, { memoryBytes: 2_000 * MIB });
    const usage = await waitFor(() => driver.get(limited.id)?.usage);
    expect(usage).toMatchObject({ cpuPercent: 12.5, memoryBytes: 48 * MIB, memoryLimitBytes: 256 * MIB });
    expect(usage.at >= before).toBe(true);
    // Without a limit any figure is only reported.
    const big = await waitFor(() => driver.get(unlimited.id)?.usage);
    expect(big).toEqual({ cpuPercent: 0, memoryBytes: 2_000 * MIB, at: big.at });
    // Later samples replace earlier ones.
    driver.setUsage(limited.id, { cpuPercent: 80, memoryBytes: 64 * MIB });
    await waitFor(() => driver.get(limited.id)?.usage?.cpuPercent === 80);

    const seen = rec.of(limited.id).length;
    driver.crash(limited.id);
    const exited = await rec.next(limited.id, "exited", seen);
    expect(exited.replica.usage).toBeUndefined();
    // The new process reports nothing until told to.
    await rec.next(limited.id, "ready", seen);
    expect(driver.get(limited.id)?.usage).toBeUndefined();
    expect(rec.types(limited.id)).not.toContain("memory-exceeded");
    expect(rec.types(unlimited.id)).toEqual(["started", "ready"]);
  });

  it("a replica that keeps going over its memory limit is restarted through the crash backoff: no restart storm", async () => {
    const driver = make({
      usageIntervalMs: 5,
      restartPolicy: { initialDelayMs: 20, multiplier: 2, maxDelayMs: 80, resetAfterMs: 60_000 },
      behavior: () => ({ usage: { cpuPercent: 40, memoryBytes: 300 * MIB } }),
    });
    const rec = recordEvents(driver);
    const timeline: Array<{ type: string; reason: string | undefined; at: number }> = [];
    driver.onEvent((e) => timeline.push({ type: e.type, reason: e.reason, at: Date.now() }));
    const spec = memorySpec({ memoryLimitBytes: 256 * MIB });
    await driver.start(spec);
    await waitFor(() => rec.of(spec.id).filter((e) => e.type === "exited").length >= 4, { what: "four exits over the limit" });
    await driver.stop(spec.id);

    const exceeded = rec.of(spec.id).filter((e) => e.type === "memory-exceeded");
    expect(exceeded[0]?.reason).toBe("memory 300 MiB over its limit 256 MiB");
    expect(exceeded[0]?.replica.usage).toMatchObject({ cpuPercent: 40, memoryBytes: 300 * MIB, memoryLimitBytes: 256 * MIB });
    // Whether "ready" comes before the first sample is a race; the rest is in order.
    expect(rec.types(spec.id).filter((t) => t !== "ready").slice(0, 8)).toEqual(["started", "memory-exceeded", "restarting", "exited", "started", "memory-exceeded", "restarting", "exited"]);
    const exits = rec.of(spec.id).filter((e) => e.type === "exited").slice(0, 4);
    expect(exits.map((e) => /\(stopped for going over its memory limit\); restarting in (\d+) ms$/.exec(e.reason ?? "")?.[1])).toEqual(["20", "40", "80", "80"]);
    expect(exits.map((e) => e.replica.lastExit?.signal)).toEqual(["SIGTERM", "SIGTERM", "SIGTERM", "SIGTERM"]);
    // The delay is really waited, from each exit to the next start.
    for (const [i, e] of timeline.entries()) {
      const next = timeline.slice(i + 1).find((t) => t.type === "started");
      if (e.type !== "exited" || next === undefined) continue;
      expect(next.at - e.at).toBeGreaterThanOrEqual(Number(/restarting in (\d+) ms/.exec(e.reason ?? "")?.[1]) - 2);
    }
    const restarting = rec.of(spec.id).filter((e) => e.type === "restarting");
    expect(restarting.map((e) => e.replica.restarts)).toEqual(restarting.map((_, i) => i + 1));
    expect(restarting.every((e) => e.reason === "memory 300 MiB over its limit 256 MiB")).toBe(true);
  });

  it("a listener that stops the replica on hearing memory-exceeded wins: no restart", async () => {
    const driver = make({ usageIntervalMs: 5 });
    const rec = recordEvents(driver);
    driver.onEvent((e) => {
      if (e.type === "memory-exceeded") void driver.stop(e.replica.spec.id);
    });
    const spec = memorySpec({ memoryLimitBytes: 64 * MIB });
    await driver.start(spec);
    await rec.next(spec.id, "ready");
    driver.setUsage(spec.id, { memoryBytes: 65 * MIB });
    await rec.next(spec.id, "stopped");
    expect(rec.types(spec.id)).toEqual(["started", "ready", "memory-exceeded", "stopped"]);
    expect(rec.of(spec.id)[2]?.reason).toBe("memory 65 MiB over its limit 64 MiB");
    expect(driver.host.pids()).toEqual([]);
  });

  it("says how far over the limit a replica went in MiB, with a decimal where whole MiB would read equal", () => {
    expect(describeMemoryOver(312 * MIB, 256 * MIB)).toBe("memory 312 MiB over its limit 256 MiB");
    expect(describeMemoryOver(256.3 * MIB, 256 * MIB)).toBe("memory 256.3 MiB over its limit 256 MiB");
    expect(describeMemoryOver(40.2 * MIB, 40.1 * MIB)).toBe("memory 40.2 MiB over its limit 40.1 MiB");
  });

  it("a paused replica holds a SIGTERM until it is continued: liveness restarts it gracefully", async () => {
    const driver = make({ restartPolicy: { initialDelayMs: 10, multiplier: 2, maxDelayMs: 100, resetAfterMs: 60_000 } });
    const rec = recordEvents(driver);
    // A stop that forgot the SIGCONT would wait this long, then SIGKILL.
    const spec = memorySpec({ stopTimeoutMs: 60_000 });
    const first = await driver.start(spec);
    await rec.next(spec.id, "ready");
    expect(await driver.pause(spec.id)).toBe(true);
    expect(driver.host.isPaused(first.pid as number)).toBe(true);
    // A held process would not even see a plain SIGTERM.
    driver.failLiveness(spec.id, "liveness failed 3 times: GET /live: no answer within 1000 ms");
    const again = await rec.next(spec.id, "ready", 2);
    expect(rec.types(spec.id)).toEqual(["started", "ready", "restarting", "exited", "started", "ready"]);
    expect(rec.of(spec.id)[3]?.replica.lastExit?.signal).toBe("SIGTERM");
    expect(again.replica).toMatchObject({ paused: false, restarts: 1 });
    expect(driver.host.isPaused(again.replica.pid as number)).toBe(false);
  });

  it("pause is refused while a replica is being restarted, and every hook after detach", async () => {
    const driver = make({ behavior: () => ({ ignoreSigterm: true }) });
    const rec = recordEvents(driver);
    const spec = memorySpec({ stopTimeoutMs: 100 });
    await driver.start(spec);
    await rec.next(spec.id, "ready");
    // Holding a process that is being stopped would only delay the stop.
    let pausedWhileRestarting: Promise<boolean> | undefined;
    driver.onEvent((e) => {
      if (e.type === "restarting") pausedWhileRestarting ??= driver.pause(e.replica.spec.id);
    });
    await driver.restart(spec.id);
    expect(await pausedWhileRestarting).toBe(false);
    await rec.next(spec.id, "ready", 2);
    await driver.detach();
    expect(await driver.kill(spec.id)).toBe(false);
    expect(await driver.pause(spec.id)).toBe(false);
    expect(await driver.resume(spec.id)).toBe(false);
    for (const pid of driver.host.pids()) driver.host.exit(pid);
  });

  it("runs 500 replicas, as the benchmark does", async () => {
    const driver = make();
    const rec = recordEvents(driver);
    const specs = Array.from({ length: 500 }, () => memorySpec());
    const t0 = Date.now();
    await Promise.all(specs.map((s) => driver.start(s)));
    await waitFor(() => rec.events.filter((e) => e.type === "ready").length === 500, { timeoutMs: 20_000 });
    expect(driver.list().every((r) => r.state === "ready")).toBe(true);
    await stopAll(driver);
    expect(driver.list()).toEqual([]);
    // Generous: this is about not being accidentally quadratic, not about speed.
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});
