// The RuntimeDriver conformance suite: every driver runs it (process and memory now,
// docker and kubernetes later), so the control plane can rely on one set of semantics.
// Optional harness parts (crash, newDriver, exceedMemory) switch on the tests that need them.
import { waitFor } from "#test-support";
import { isKeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ReplicaEvent, ReplicaEventType, ReplicaInfo, ReplicaSpec, RuntimeDriver } from "./runtime-driver.js";

export interface RuntimeConformanceHarness {
  driver: RuntimeDriver;
  /** A spec for a replica that starts, becomes ready and stops promptly; ids and ports unique per call. */
  makeSpec: (overrides?: Partial<ReplicaSpec>) => ReplicaSpec | Promise<ReplicaSpec>;
  /** Stops whatever the test left behind (on every driver it handed out). */
  cleanup: () => Promise<void>;
  /** Another driver on the same host, as a restarted control plane creates it; enables the detach/adopt tests. */
  newDriver?: () => RuntimeDriver | Promise<RuntimeDriver>;
  /** Makes a replica's process die as a crash would (kill -9); enables the crash tests. */
  crash?: (replica: ReplicaInfo) => void | Promise<void>;
  /**
   * Makes a running replica use well over CONFORMANCE_MEMORY_LIMIT (its spec's memoryLimitBytes,
   * 128 MiB), as the driver's next usage sample will see; enables the memory-limit test.
   */
  exceedMemory?: (replica: ReplicaInfo) => void | Promise<void>;
  /** Whether replicas share the host's ports, so two cannot use one port (default true; false for kubernetes). */
  sharesHostPorts?: boolean;
  /** Deadline of each wait (default 15 s). */
  timeoutMs?: number;
}

const MIB = 1024 * 1024;

/** The memory limit of the replica in the memory-limit test. */
export const CONFORMANCE_MEMORY_LIMIT = 128 * MIB;

/** Records a driver's events and waits for them with a deadline. */
export function recordEvents(driver: RuntimeDriver, timeoutMs = 15_000) {
  const events: ReplicaEvent[] = [];
  const stopRecording = driver.onEvent((e) => events.push(e));
  const of = (id: string): ReplicaEvent[] => events.filter((e) => e.replica.spec.id === id);
  return {
    events,
    stopRecording,
    of,
    types: (id: string): ReplicaEventType[] => of(id).map((e) => e.type),
    /** The first event of `type` for `id` after the first `skip` events of that replica. */
    next: (id: string, type: ReplicaEventType, skip = 0): Promise<ReplicaEvent> =>
      waitFor(() => of(id).slice(skip).find((e) => e.type === type), { timeoutMs, what: `"${type}" event of ${id} (seen: ${of(id).map((e) => e.type).join(", ")})` }),
  };
}

/**
 * Whether an event is part of a failed start retried after a backoff: on a shared machine another
 * process may take a restarting replica's port for a moment (PORT_IN_USE), which is not what a test
 * of restarts is about.
 */
export function isStartRetry(e: ReplicaEvent): boolean {
  return (e.type === "exited" && /; retrying in \d+ ms$/.test(e.reason ?? "")) || (e.type === "restarting" && (e.reason ?? "").startsWith("retrying the start"));
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/**
 * Defines the conformance tests for one driver. `makeDriver` runs before each test;
 * the harness's cleanup after it.
 *
 * @example
 * describeRuntimeConformance("memory", async () => {
 *   const driver = createMemoryDriver();
 *   return { driver, makeSpec: (o) => ({ ...base(), ...o }), cleanup: () => stopAll(driver) };
 * });
 */
export function describeRuntimeConformance(name: string, makeDriver: () => Promise<RuntimeConformanceHarness>): void {
  describe(`RuntimeDriver conformance: ${name}`, () => {
    let h: RuntimeConformanceHarness;
    let rec: ReturnType<typeof recordEvents>;
    let timeoutMs: number;

    beforeEach(async () => {
      h = await makeDriver();
      timeoutMs = h.timeoutMs ?? 15_000;
      rec = recordEvents(h.driver, timeoutMs);
    });

    afterEach(async () => {
      rec.stopRecording();
      await h.cleanup();
    });

    it("start resolves while the replica is starting, then reports started and ready in that order", async () => {
      const spec = await h.makeSpec();
      const info = await h.driver.start(spec);
      expect(info.spec.id).toBe(spec.id);
      expect(info.state).toBe("starting");
      expect(info).toMatchObject({ restarts: 0, everReady: false, exitsSinceReady: 0, lastExit: undefined });
      expect(typeof info.startedAt).toBe("string");

      const ready = await rec.next(spec.id, "ready");
      expect(rec.types(spec.id).slice(0, 2)).toEqual(["started", "ready"]);
      expect(ready.replica).toMatchObject({ state: "ready", everReady: true, exitsSinceReady: 0 });
      expect(h.driver.get(spec.id)?.state).toBe("ready");
    });

    it("get and list show the supervised replicas and nothing else", async () => {
      const a = await h.makeSpec();
      const b = await h.makeSpec();
      await h.driver.start(a);
      await h.driver.start(b);
      expect(h.driver.list().map((r) => r.spec.id).sort()).toEqual([a.id, b.id].sort());
      expect(h.driver.get(a.id)?.spec).toEqual(a);
      expect(h.driver.get("no-such-replica")).toBeUndefined();
    });

    it("starting an id that is already supervised is KEELSON_ERR_CONFLICT", async () => {
      const spec = await h.makeSpec();
      await h.driver.start(spec);
      const err = await rejectionOf(h.driver.start(spec));
      expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_CONFLICT");
    });

    it("a port used by another replica is KEELSON_ERR_PORT_IN_USE, naming the service and port", async (ctx) => {
      if (h.sharesHostPorts === false) return ctx.skip();
      const first = await h.makeSpec();
      await h.driver.start(first);
      await rec.next(first.id, "ready");
      const second = await h.makeSpec({ port: first.port });
      const err = await rejectionOf(h.driver.start(second));
      expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_PORT_IN_USE");
      expect((err as Error).message).toBe(`services.${second.service}: port ${first.port} is already in use by another process`);
      expect(h.driver.get(second.id)).toBeUndefined();
      expect(h.driver.get(first.id)?.state).toBe("ready");
    });

    it("stop reports stopped and forgets the replica; stopping it again or an unknown id is a no-op", async () => {
      const spec = await h.makeSpec();
      await h.driver.start(spec);
      await rec.next(spec.id, "ready");
      await h.driver.stop(spec.id);
      const stopped = rec.of(spec.id).at(-1);
      expect(stopped?.type).toBe("stopped");
      expect(stopped?.replica.state).toBe("stopped");
      expect(h.driver.get(spec.id)).toBeUndefined();
      expect(h.driver.list().map((r) => r.spec.id)).not.toContain(spec.id);
      const seen = rec.of(spec.id).length;
      await expect(h.driver.stop(spec.id)).resolves.toBeUndefined();
      await expect(h.driver.stop("no-such-replica")).resolves.toBeUndefined();
      expect(rec.of(spec.id).length).toBe(seen);
    });

    it("stop right after start stops the replica before it ever reports ready", async () => {
      const spec = await h.makeSpec();
      await h.driver.start(spec);
      await h.driver.stop(spec.id);
      expect(rec.types(spec.id).at(-1)).toBe("stopped");
      expect(h.driver.get(spec.id)).toBeUndefined();
      // The same id can be started again at once: nothing of the old run holds its port.
      await h.driver.start(spec);
      await rec.next(spec.id, "ready");
    });

    it("restart stops the replica, starts it again at once and counts the restart", async () => {
      const spec = await h.makeSpec();
      const first = await h.driver.start(spec);
      await rec.next(spec.id, "ready");
      const seen = rec.of(spec.id).length;
      await h.driver.restart(spec.id);
      const restarting = await rec.next(spec.id, "restarting", seen);
      expect(restarting.reason).toBeTruthy();
      const started = await rec.next(spec.id, "started", seen);
      expect(started.replica.restarts).toBe(1);
      if (first.pid !== undefined) expect(started.replica.pid).not.toBe(first.pid);
      const ready = await rec.next(spec.id, "ready", seen);
      expect(ready.replica).toMatchObject({ state: "ready", restarts: 1, everReady: true, exitsSinceReady: 0 });
      expect(rec.types(spec.id).slice(seen)).toEqual(["restarting", "started", "ready"]);
    });

    it("restart of an unknown replica is KEELSON_ERR_NOT_FOUND", async () => {
      const err = await rejectionOf(h.driver.restart("no-such-replica"));
      expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_NOT_FOUND");
    });

    it("adopt of a replica whose process is gone returns undefined and supervises nothing", async () => {
      const spec = await h.makeSpec();
      const info = await h.driver.start(spec);
      await rec.next(spec.id, "ready");
      await h.driver.stop(spec.id);
      const adopted = await h.driver.adopt(spec, { pid: info.pid ?? -1, pidStartTime: info.pidStartTime, restarts: 0, startedAt: info.startedAt });
      expect(adopted).toBeUndefined();
      expect(h.driver.get(spec.id)).toBeUndefined();
      expect(rec.types(spec.id)).not.toContain("adopted");
    });

    it("an unsubscribed listener hears nothing, and a throwing listener does not stop the others", async () => {
      const heard: ReplicaEvent[] = [];
      const unsubscribe = h.driver.onEvent((e) => heard.push(e));
      unsubscribe();
      const offThrowing = h.driver.onEvent(() => {
        throw new Error("listener bug");
      });
      const spec = await h.makeSpec();
      await h.driver.start(spec);
      await rec.next(spec.id, "ready");
      offThrowing();
      expect(heard).toEqual([]);
      expect(h.driver.get(spec.id)?.state).toBe("ready");
    });

    describe("crashes (harness.crash)", () => {
      it("a crashed replica is reported exited, backs off, restarts and becomes ready again", async (ctx) => {
        if (h.crash === undefined) return ctx.skip();
        const spec = await h.makeSpec();
        await h.driver.start(spec);
        const ready = await rec.next(spec.id, "ready");
        const seen = rec.of(spec.id).length;
        await h.crash(ready.replica);

        const exited = await rec.next(spec.id, "exited", seen);
        expect(exited.replica).toMatchObject({ state: "backoff", exitsSinceReady: 1, everReady: true, restarts: 0 });
        expect(exited.replica.lastExit).toBeDefined();
        expect(exited.reason).toBeTruthy();
        const again = await rec.next(spec.id, "ready", seen);
        expect(again.replica).toMatchObject({ state: "ready", restarts: 1, exitsSinceReady: 0, everReady: true });
        expect(again.replica.lastExit).toEqual(exited.replica.lastExit);
        expect(rec.types(spec.id).slice(seen)).toEqual(["exited", "restarting", "started", "ready"]);
      });

      it("stop during the backoff cancels the restart", async (ctx) => {
        if (h.crash === undefined) return ctx.skip();
        const spec = await h.makeSpec();
        await h.driver.start(spec);
        const ready = await rec.next(spec.id, "ready");
        await h.crash(ready.replica);
        await rec.next(spec.id, "exited");
        await h.driver.stop(spec.id);
        expect(rec.types(spec.id).at(-1)).toBe("stopped");
        // Absence can only be shown by waiting: longer than the first backoff step.
        const until = Date.now() + 400;
        await waitFor(() => Date.now() > until, { timeoutMs: 5_000 });
        expect(rec.types(spec.id).at(-1)).toBe("stopped");
        expect(h.driver.get(spec.id)).toBeUndefined();
      });
    });

    describe("fault hooks: kill, pause, resume", () => {
      it("kill SIGKILLs the replica as a crash would: exited, backoff, restarted, ready again; false when nothing runs", async () => {
        const spec = await h.makeSpec();
        await h.driver.start(spec);
        await rec.next(spec.id, "ready");
        const seen = rec.of(spec.id).length;
        // Asked while the replica is in its backoff (no process), kill has nothing to kill.
        let duringBackoff: Promise<boolean> | undefined;
        const off = h.driver.onEvent((e) => {
          if (e.replica.spec.id === spec.id && e.type === "exited") duringBackoff ??= h.driver.kill(spec.id);
        });
        try {
          expect(await h.driver.kill(spec.id)).toBe(true);
          const exited = await rec.next(spec.id, "exited", seen);
          expect(exited.replica).toMatchObject({ state: "backoff", exitsSinceReady: 1, restarts: 0 });
          expect(exited.replica.lastExit?.signal).toBe("SIGKILL");
          expect(await duringBackoff).toBe(false);
        } finally {
          off();
        }
        const again = await rec.next(spec.id, "ready", seen);
        const retries = rec.of(spec.id).slice(seen).filter((e) => e.type === "restarting" && isStartRetry(e)).length;
        expect(again.replica).toMatchObject({ state: "ready", restarts: 1 + retries, exitsSinceReady: 0 });
        expect(rec.of(spec.id).slice(seen).filter((e) => !isStartRetry(e)).map((e) => e.type)).toEqual(["exited", "restarting", "started", "ready"]);
        expect(await h.driver.kill("no-such-replica")).toBe(false);
      });

      it("pause holds the replica and shows it paused, resume lets it go on; both false for an unknown id", async () => {
        const spec = await h.makeSpec();
        await h.driver.start(spec);
        await rec.next(spec.id, "ready");
        expect(h.driver.get(spec.id)?.paused).toBe(false);
        expect(await h.driver.pause(spec.id)).toBe(true);
        expect(h.driver.get(spec.id)).toMatchObject({ paused: true, state: "ready" });
        expect(h.driver.list().find((r) => r.spec.id === spec.id)?.paused).toBe(true);
        expect(await h.driver.resume(spec.id)).toBe(true);
        expect(h.driver.get(spec.id)?.paused).toBe(false);
        expect(await h.driver.pause("no-such-replica")).toBe(false);
        expect(await h.driver.resume("no-such-replica")).toBe(false);
        // Neither is a state change of the replica.
        expect(rec.types(spec.id)).toEqual(["started", "ready"]);
      });

      it("a paused replica restarts and stops gracefully: it is continued, not left for the SIGKILL", async () => {
        // Longer than the test may take: a paused replica that is not continued fails by timing out.
        const spec = await h.makeSpec({ stopTimeoutMs: 60_000 });
        await h.driver.start(spec);
        await rec.next(spec.id, "ready");
        expect(await h.driver.pause(spec.id)).toBe(true);
        const seen = rec.of(spec.id).length;
        await h.driver.restart(spec.id);
        const ready = await rec.next(spec.id, "ready", seen);
        expect(ready.replica).toMatchObject({ paused: false, restarts: 1 });
        expect(ready.replica.lastExit?.signal).not.toBe("SIGKILL");

        expect(await h.driver.pause(spec.id)).toBe(true);
        await h.driver.stop(spec.id);
        const stopped = rec.of(spec.id).at(-1);
        expect(stopped?.type).toBe("stopped");
        expect(stopped?.replica.lastExit?.signal).not.toBe("SIGKILL");
        expect(h.driver.get(spec.id)).toBeUndefined();
      });
    });

    it("restart with a spec runs the new run with it (a changed memory limit); another replica's spec is KEELSON_ERR_INVALID_INPUT", async () => {
      const spec = await h.makeSpec({ memoryLimitBytes: 256 * MIB });
      await h.driver.start(spec);
      await rec.next(spec.id, "ready");
      const err = await rejectionOf(h.driver.restart(spec.id, { spec: await h.makeSpec() }));
      expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_INVALID_INPUT");
      const seen = rec.of(spec.id).length;
      await h.driver.restart(spec.id, { spec: { ...spec, memoryLimitBytes: 512 * MIB } });
      const started = await rec.next(spec.id, "started", seen);
      expect(started.replica.spec).toEqual({ ...spec, memoryLimitBytes: 512 * MIB });
      await rec.next(spec.id, "ready", seen);
      expect(h.driver.get(spec.id)?.spec.memoryLimitBytes).toBe(512 * MIB);
    });

    it("a replica over its memory limit is reported memory-exceeded and restarted as for a liveness failure, counting the restart", async (ctx) => {
      if (h.exceedMemory === undefined) return ctx.skip();
      const spec = await h.makeSpec({ memoryLimitBytes: CONFORMANCE_MEMORY_LIMIT });
      await h.driver.start(spec);
      const ready = await rec.next(spec.id, "ready");
      const seen = rec.of(spec.id).length;
      await h.exceedMemory(ready.replica);

      const exceeded = await rec.next(spec.id, "memory-exceeded", seen);
      expect(exceeded.reason).toMatch(/^memory \d+(\.\d)? MiB over its limit 128 MiB$/);
      expect(exceeded.replica.usage?.memoryLimitBytes).toBe(CONFORMANCE_MEMORY_LIMIT);
      expect(exceeded.replica.usage?.memoryBytes).toBeGreaterThan(CONFORMANCE_MEMORY_LIMIT);
      const again = await rec.next(spec.id, "ready", seen);
      const after = rec.of(spec.id).slice(seen);
      expect(after.filter((e) => !isStartRetry(e)).map((e) => e.type)).toEqual(["memory-exceeded", "restarting", "exited", "started", "ready"]);
      const [, restarting, exited] = after;
      expect(restarting?.reason).toBe(exceeded.reason);
      expect(restarting?.replica.restarts).toBe(1);
      expect(exited?.reason).toMatch(/\(stopped for going over its memory limit\); restarting in \d+ ms$/);
      const retries = after.filter((e) => e.type === "restarting" && isStartRetry(e)).length;
      expect(again.replica).toMatchObject({ state: "ready", restarts: 1 + retries, exitsSinceReady: 0 });
      if (ready.replica.pid !== undefined) expect(again.replica.pid).not.toBe(ready.replica.pid);
    });

    describe("detach and adopt (harness.newDriver)", () => {
      it("after detach a new driver adopts the running replica without restarting it", async (ctx) => {
        if (h.newDriver === undefined) return ctx.skip();
        const spec = await h.makeSpec();
        await h.driver.start(spec);
        const ready = (await rec.next(spec.id, "ready")).replica;
        const before = rec.events.length;
        await h.driver.detach();
        expect(h.driver.list()).toEqual([]);
        expect(isKeelsonError(await rejectionOf(h.driver.start(await h.makeSpec())))).toBe(true);

        const next = await h.newDriver();
        const rec2 = recordEvents(next, timeoutMs);
        try {
          const recorded = { pid: ready.pid ?? -1, pidStartTime: ready.pidStartTime, restarts: 4, startedAt: ready.startedAt };
          if (ready.pidStartTime !== undefined) {
            // Same pid, other start time: the pid was re-used by some other process.
            expect(await next.adopt(spec, { ...recorded, pidStartTime: ready.pidStartTime + 1 })).toBeUndefined();
          }
          const adopted = await next.adopt(spec, recorded);
          expect(adopted).toMatchObject({ pid: ready.pid, pidStartTime: ready.pidStartTime, restarts: 4, startedAt: ready.startedAt });
          const readyAgain = await rec2.next(spec.id, "ready");
          expect(rec2.types(spec.id)).toEqual(["adopted", "ready"]);
          expect(readyAgain.replica).toMatchObject({ pid: ready.pid, restarts: 4, everReady: true });

          await next.stop(spec.id);
          expect(rec2.types(spec.id)).toEqual(["adopted", "ready", "stopped"]);
          // The detached driver said nothing more.
          expect(rec.events.length).toBe(before);
        } finally {
          rec2.stopRecording();
        }
      });

      it("a replica recorded ready is adopted ready, with no 'starting' gap, and a crash still takes it out", async (ctx) => {
        if (h.newDriver === undefined || h.crash === undefined) return ctx.skip();
        const spec = await h.makeSpec();
        await h.driver.start(spec);
        const ready = (await rec.next(spec.id, "ready")).replica;
        await h.driver.detach();
        const next = await h.newDriver();
        const rec2 = recordEvents(next, timeoutMs);
        try {
          const adopted = await next.adopt(spec, { pid: ready.pid ?? -1, pidStartTime: ready.pidStartTime, restarts: 0, startedAt: ready.startedAt, ready: true });
          // Ready from the first moment: a routing table built now still names it.
          expect(adopted).toMatchObject({ state: "ready", everReady: true });
          expect(next.get(spec.id)?.state).toBe("ready");
          // Its readiness check passes and says nothing new (no second "ready", no "unready").
          await new Promise((r) => setTimeout(r, 700));
          expect(rec2.types(spec.id)).toEqual(["adopted"]);
          expect(next.get(spec.id)?.state).toBe("ready");
          await h.crash(adopted as ReplicaInfo);
          const exited = await rec2.next(spec.id, "exited");
          expect(exited.replica.state).toBe("backoff");
          await rec2.next(spec.id, "ready");
        } finally {
          rec2.stopRecording();
        }
      });

      it("an adopted replica that crashes is restarted by its new driver", async (ctx) => {
        if (h.newDriver === undefined || h.crash === undefined) return ctx.skip();
        const spec = await h.makeSpec();
        await h.driver.start(spec);
        const ready = (await rec.next(spec.id, "ready")).replica;
        await h.driver.detach();
        const next = await h.newDriver();
        const rec2 = recordEvents(next, timeoutMs);
        try {
          await next.adopt(spec, { pid: ready.pid ?? -1, pidStartTime: ready.pidStartTime, restarts: 0, startedAt: ready.startedAt });
          const adoptedReady = await rec2.next(spec.id, "ready");
          await h.crash(adoptedReady.replica);
          const exited = await rec2.next(spec.id, "exited");
          expect(exited.replica).toMatchObject({ state: "backoff", exitsSinceReady: 1 });
          const again = await rec2.next(spec.id, "ready", 2);
          expect(again.replica.restarts).toBe(1);
          if (ready.pid !== undefined) expect(again.replica.pid).not.toBe(ready.pid);
        } finally {
          rec2.stopRecording();
        }
      });
    });
  });
}
