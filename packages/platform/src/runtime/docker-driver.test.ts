// The docker driver against a real Docker Engine (one private dockerd for the file when none
// answers): the conformance suite, then what only containers show: the release image built once,
// how a container is set up, output copied from the engine, and usage from the engine's stats.
import { copyFile, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { dockerAvailability, freePort, makeTempDir, requireComponent, waitFor } from "#test-support";
import type { TestDocker } from "#test-support";
import { startTestDocker } from "#test-support";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BASE_IMAGE_NODE_LABEL, defaultBaseImageTag } from "./docker-base-image.js";
import { containerName, createDockerDriver, engineMemoryLimit } from "./docker-driver.js";
import type { DockerDriverOptions } from "./docker-driver.js";
import { LABELS, releaseImageTag } from "./docker-image.js";
import { parseLogLine, replicaLogPaths } from "./replica-logs.js";
import type { LogLine } from "./replica-logs.js";
import { CONFORMANCE_MEMORY_LIMIT, describeRuntimeConformance, recordEvents } from "./runtime.conformance.js";
import type { ReplicaInfo, ReplicaSpec, RuntimeDriver } from "./runtime-driver.js";

const here = dirname(fileURLToPath(import.meta.url));
const availability = await dockerAvailability();
const available = requireComponent("dockerd", availability.available, availability.reason);
const MIB = 1024 * 1024;

describe.runIf(available)("docker driver", () => {
  let engine: TestDocker;
  let docker: Docker;
  let dir: string;
  let removeDir: () => Promise<void>;
  /** The release folder every replica here runs: the test app, as a release holds its service. */
  let release: string;
  /** A release per test run, so that an engine that was already there builds ours afresh. */
  const releaseId = `r-test-${process.pid}-${Date.now()}`;
  let seq = 0;

  beforeAll(async () => {
    engine = await startTestDocker();
    docker = new Docker({ socketPath: engine.socketPath });
    ({ dir, cleanup: removeDir } = await makeTempDir("keelson-docker-"));
    release = join(dir, "release");
    await mkdir(release, { recursive: true });
    await copyFile(join(here, "fixtures", "app.mjs"), join(release, "app.mjs"));
  }, 90_000);

  afterAll(async () => {
    if (docker !== undefined) {
      // Whatever a failed test left: our containers, then the images of our releases.
      for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABELS.release}=${releaseId}`] } })) await docker.getContainer(c.Id).remove({ force: true });
      for (const image of await docker.listImages({ filters: { label: [`${LABELS.release}=${releaseId}`] } })) await docker.getImage(image.Id).remove({ force: true });
    }
    await engine?.stop();
    await removeDir?.();
  }, 60_000);

  const FAST: DockerDriverOptions = { usageIntervalMs: 200, logs: { pollIntervalMs: 50 } };

  async function appSpec(overrides: Partial<ReplicaSpec> = {}): Promise<ReplicaSpec> {
    seq += 1;
    return {
      id: `web-d${process.pid}-${seq}-0`,
      project: "shop",
      service: "web",
      release: releaseId,
      index: 0,
      cwd: release,
      command: "node app.mjs",
      env: {},
      port: await freePort(),
      readiness: undefined,
      liveness: undefined,
      stopTimeoutMs: 5_000,
      startTimeoutMs: 20_000,
      logDir: join(dir, "logs"),
      ...overrides,
    };
  }

  /** Stops every replica of the drivers, detaches them, and removes any container they left. */
  async function cleanupDrivers(drivers: RuntimeDriver[]): Promise<void> {
    for (const driver of drivers.splice(0)) {
      await Promise.all(driver.list().map((r) => driver.stop(r.spec.id)));
      await driver.detach();
    }
    for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABELS.release}=${releaseId}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  }

  describeRuntimeConformance("docker", async () => {
    const drivers: RuntimeDriver[] = [];
    const make = (): RuntimeDriver => {
      const driver = createDockerDriver({ ...FAST, socketPath: engine.socketPath });
      drivers.push(driver);
      return driver;
    };
    return {
      driver: make(),
      makeSpec: (overrides) => appSpec(overrides),
      newDriver: make,
      // The container's init as seen from the host: killing it ends the container, as a crash would.
      crash: (r: ReplicaInfo) => {
        process.kill(r.pid as number, "SIGKILL");
      },
      exceedMemory: async (r: ReplicaInfo) => {
        const res = await fetch(`http://127.0.0.1:${r.spec.port}/allocate?mb=${(CONFORMANCE_MEMORY_LIMIT / MIB) * 1.5}`);
        expect(res.status).toBe(200);
      },
      cleanup: () => cleanupDrivers(drivers),
      timeoutMs: 30_000,
    };
  });

  describe("containers", () => {
    const drivers: RuntimeDriver[] = [];
    const make = (): RuntimeDriver => {
      const driver = createDockerDriver({ ...FAST, socketPath: engine.socketPath });
      drivers.push(driver);
      return driver;
    };
    afterEach(() => cleanupDrivers(drivers));

    async function logLines(spec: ReplicaSpec): Promise<LogLine[]> {
      const text = await readFile(replicaLogPaths(spec.logDir, spec.id).log, "utf8").catch(() => "");
      return text
        .split("\n")
        .map(parseLogLine)
        .filter((l): l is LogLine => l !== undefined);
    }

    it("runs a replica as a container of its release's image: env, host network, init, memory backstop, read-only mounts, output in its log files", async () => {
      const driver = make();
      const rec = recordEvents(driver, 30_000);
      const identity = join(dir, "identity");
      await mkdir(identity, { recursive: true });
      await writeFile(join(identity, "token"), "secret");
      const data = join(dir, "data", "web");
      await mkdir(data, { recursive: true });
      const spec = await appSpec({ env: { APP_GREETING: "hi", APP_TOKEN_FILE: join(identity, "token"), KEELSON_DATA_DIR: data, LOG_LINES: "3" }, memoryLimitBytes: 256 * MIB });
      const info = await driver.start(spec);
      await rec.next(spec.id, "ready");

      const env = (await (await fetch(`http://127.0.0.1:${spec.port}/env`)).json()) as Record<string, string>;
      expect(env).toEqual({
        APP_GREETING: "hi",
        APP_TOKEN_FILE: join(identity, "token"),
        KEELSON_DATA_DIR: data,
        PORT: String(spec.port),
        KEELSON_SERVICE: "web",
        KEELSON_REPLICA: spec.id,
        KEELSON_RELEASE: releaseId,
        KEELSON_PROJECT: "shop",
      });
      const container = await docker.getContainer(containerName(spec)).inspect();
      expect(info.details).toMatchObject({ container: container.Id, image: releaseImageTag(spec), logFile: replicaLogPaths(spec.logDir, spec.id).log });
      expect(container.Config.Image).toBe(releaseImageTag(spec));
      expect(container.Config.Labels).toMatchObject({ [LABELS.replica]: spec.id, [LABELS.release]: releaseId, [LABELS.service]: "web", [LABELS.project]: "shop" });
      expect(container.HostConfig).toMatchObject({ NetworkMode: "host", Init: true, Memory: engineMemoryLimit(256 * MIB) });
      // A file's folder (renewed by rename), read-only; the data folder writable.
      const mounts = container.Mounts.map((m) => ({ source: m.Source, destination: m.Destination, rw: m.RW })).sort((a, b) => a.source.localeCompare(b.source));
      expect(mounts).toEqual([
        { source: data, destination: data, rw: true },
        { source: identity, destination: identity, rw: false },
      ]);
      // The recorded pid is the container's init on the host.
      expect(info.pid).toBe(container.State.Pid);

      await waitFor(async () => (await logLines(spec)).length >= 4, { timeoutMs: 10_000, what: "the replica's output in its .log" });
      const lines = await logLines(spec);
      expect(lines.filter((l) => l.stream === "stdout").map((l) => l.line.trim())).toEqual(["line 1", "line 2", "line 3"]);
      expect(lines.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual(["to stderr"]);
    });

    it("builds a release's image once: a second replica and a new driver re-use it; the base image names its Node", async () => {
      const first = make();
      const rec = recordEvents(first, 30_000);
      const a = await appSpec();
      await first.start(a);
      await rec.next(a.id, "ready");
      const built = await docker.getImage(releaseImageTag(a)).inspect();
      expect(built.Config.Labels).toMatchObject({ [LABELS.source]: release, [LABELS.release]: releaseId });
      expect((await docker.getImage(defaultBaseImageTag()).inspect()).Config.Labels?.[BASE_IMAGE_NODE_LABEL]).toBe(process.version);

      const second = make();
      const rec2 = recordEvents(second, 30_000);
      const b = await appSpec();
      const startedAt = Date.now();
      await second.start(b);
      await rec2.next(b.id, "ready");
      expect((await docker.getImage(releaseImageTag(b)).inspect()).Id).toBe(built.Id);
      // No build: a container start only (a build of even this small release takes seconds).
      expect(Date.now() - startedAt).toBeLessThan(5_000);
      expect((await docker.listImages({ filters: { label: [`${LABELS.release}=${releaseId}`] } })).length).toBe(1);
    });

    it("a release linking its dependencies from outside its folder (in it and above it) runs with them mounted read-only at their host paths", async () => {
      // As a pipeline leaves a workspace release: the service folder inside the artifact, node_modules linked at each level.
      const artifact = join(dir, "artifact");
      const linked = join(artifact, "services", "linked");
      const shared = join(dir, "shared", "node_modules", "greeting");
      const repoModules = join(dir, "repo", "node_modules");
      await mkdir(shared, { recursive: true });
      await mkdir(join(repoModules, "farewell"), { recursive: true });
      await mkdir(join(linked, "node_modules"), { recursive: true });
      await writeFile(join(shared, "package.json"), JSON.stringify({ name: "greeting", type: "module", main: "index.js" }));
      await writeFile(join(shared, "index.js"), 'process.env.APP_LINKED = "from " + import.meta.url;\n');
      await writeFile(join(repoModules, "farewell", "package.json"), JSON.stringify({ name: "farewell", type: "module", main: "index.js" }));
      await writeFile(join(repoModules, "farewell", "index.js"), 'process.env.APP_ABOVE = "from " + import.meta.url;\n');
      await symlink(shared, join(linked, "node_modules", "greeting"));
      await symlink(repoModules, join(artifact, "node_modules"));
      await copyFile(join(here, "fixtures", "app.mjs"), join(linked, "app.mjs"));
      await writeFile(join(linked, "main.mjs"), 'import "greeting";\nimport "farewell";\nawait import("./app.mjs");\n');
      const driver = make();
      const rec = recordEvents(driver, 30_000);
      const spec = await appSpec({ cwd: linked, service: "linked", command: "node main.mjs" });
      await driver.start(spec);
      await rec.next(spec.id, "ready");
      const env = (await (await fetch(`http://127.0.0.1:${spec.port}/env`)).json()) as Record<string, string>;
      expect(env.APP_LINKED).toBe(`from file://${shared}/index.js`);
      expect(env.APP_ABOVE).toBe(`from file://${repoModules}/farewell/index.js`);
      const container = await docker.getContainer(containerName(spec)).inspect();
      expect(container.Mounts.map((m) => [m.Destination, m.RW]).sort()).toEqual([
        [repoModules, false],
        [shared, false],
      ]);
    });

    it("reports the container's usage from the engine's stats, with the memory limit", async () => {
      const driver = make();
      const rec = recordEvents(driver, 30_000);
      const spec = await appSpec({ memoryLimitBytes: 256 * MIB });
      await driver.start(spec);
      await rec.next(spec.id, "ready");
      const usage = await waitFor(() => driver.get(spec.id)?.usage, { timeoutMs: 10_000, what: "a usage sample" });
      expect(usage.memoryBytes).toBeGreaterThan(MIB);
      expect(usage.memoryBytes).toBeLessThan(128 * MIB);
      expect(usage.memoryLimitBytes).toBe(256 * MIB);
      expect(usage.cpuPercent).toBeGreaterThanOrEqual(0);
      // What the replica holds shows in the next samples.
      expect((await fetch(`http://127.0.0.1:${spec.port}/allocate?mb=64`)).status).toBe(200);
      const grown = await waitFor(() => ((driver.get(spec.id)?.usage?.memoryBytes ?? 0) >= usage.memoryBytes + 60 * MIB ? driver.get(spec.id)?.usage : undefined), { timeoutMs: 10_000, what: "usage to show 64 MiB more" });
      expect(grown.memoryBytes).toBeLessThan(256 * MIB);
    });

    it("output written while no driver ran reaches the log once, in order, after an adopt", async () => {
      const driver = make();
      const rec = recordEvents(driver, 30_000);
      const spec = await appSpec({ env: { LOG_EVERY_MS: "50" } });
      await driver.start(spec);
      const ready = (await rec.next(spec.id, "ready")).replica;
      await waitFor(async () => (await logLines(spec)).length >= 3, { timeoutMs: 10_000, what: "the first ticks in the log" });
      await driver.detach();
      // Ticks go on while nobody copies them.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const next = make();
      const adopted = await next.adopt(spec, { pid: ready.pid as number, pidStartTime: ready.pidStartTime, restarts: 0, startedAt: ready.startedAt, ready: true });
      expect(adopted?.state).toBe("ready");
      await waitFor(async () => (await logLines(spec)).length >= 20, { timeoutMs: 10_000, what: "ticks after the adopt" });
      await next.stop(spec.id);
      const ticks = (await logLines(spec)).map((l) => Number(/^tick (\d+)$/.exec(l.line)?.[1]));
      expect(ticks.length).toBeGreaterThanOrEqual(20);
      expect(ticks).toEqual(ticks.map((_, i) => i + 1));
    });
  });
});
