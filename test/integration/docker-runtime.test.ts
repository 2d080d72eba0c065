// The same manifest on the docker runtime: `keelson up` with `runtime: docker` builds each release
// into an image, runs its replicas as containers on a real Docker Engine, routes through the
// gateway as with processes, survives a container killed behind its back, and `keelson down`
// removes the containers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiServerSource, dockerAvailability, makeTempDir, requireComponent, startTestDocker, waitFor, writeOneServiceProject, type TestDocker } from "#test-support";
import { connectEngine } from "../../packages/platform/src/runtime/index.js";
import { keelson } from "../e2e/cli.js";

const availability = await dockerAvailability();
const available = requireComponent("dockerd", availability.available, availability.reason);


describe.runIf(available)("the docker runtime end to end", { timeout: 300_000 }, () => {
  let docker: TestDocker;
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;
  let env: Record<string, string>;

  const containers = async () => {
    const engine = connectEngine(docker.socketPath);
    return engine.listContainers({ all: true, filters: { label: ["keelson.project=dock"] } });
  };

  beforeAll(async () => {
    docker = await startTestDocker();
    env = { DOCKER_HOST: `unix://${docker.socketPath}` };
    ({ dir, cleanup } = await makeTempDir("keelson-docker-e2e-"));
    const project = await writeOneServiceProject(dir, {
      project: "dock",
      replicas: 2,
      top: ["runtime: docker"],
      service: ["resources: { memory: 256mb }", "env: { GREETING: hello from a container }"],
      // /.dockerenv exists only inside a container.
      server: apiServerSource({ container: 'existsSync("/.dockerenv")', greeting: "process.env.GREETING" }),
    });
    gateway = `http://127.0.0.1:${project.gatewayPort}`;
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 240_000, env });
    expect(up.code, up.stdout + up.stderr).toBe(0);
  }, 280_000);

  afterAll(async () => {
    if (dir !== undefined) await keelson(["down", dir], { timeoutMs: 60_000, env });
    await docker?.stop();
    await cleanup?.();
  });

  it("serves from containers through the gateway, replaces a killed one, and removes them on down", async () => {
    const running = await containers();
    expect(running.filter((c) => c.State === "running")).toHaveLength(2);
    expect(new Set(running.map((c) => c.Image)).size).toBe(1);
    expect(running[0]!.Image).toMatch(/api/);

    const res = await fetch(`${gateway}/api/hello`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ container: true, greeting: "hello from a container" });

    // A container killed behind Keelson's back is restarted; the gateway keeps answering.
    const engine = connectEngine(docker.socketPath);
    await engine.getContainer(running[0]!.Id).kill();
    for (let i = 0; i < 20; i++) expect((await fetch(`${gateway}/api/again`)).status).toBe(200);
    await waitFor(async () => (await containers()).filter((c) => c.State === "running").length === 2, { timeoutMs: 60_000, intervalMs: 250, what: "two running containers again" });

    const down = await keelson(["down", dir], { timeoutMs: 60_000, env });
    expect(down.code, down.stdout + down.stderr).toBe(0);
    await waitFor(async () => (await containers()).length === 0, { timeoutMs: 30_000, what: "the containers removed" });
  });
});
