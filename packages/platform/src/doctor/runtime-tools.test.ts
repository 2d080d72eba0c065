import { chmod, mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { checkRuntimeTools } from "./runtime-tools.js";

describe("checkRuntimeTools", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let engine: Server | undefined;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-doctor-runtime-"));
  });
  afterEach(async () => {
    if (engine) await new Promise((r) => engine?.close(r));
    engine = undefined;
    await cleanup();
  });

  it("has nothing to check for the process runtime", async () => {
    expect(await checkRuntimeTools({ runtime: "process" })).toEqual([]);
  });

  it("passes docker when the engine on DOCKER_HOST answers its ping", async () => {
    // A stand-in for dockerd: the Engine API's ping on a unix socket.
    const socket = join(dir, "docker.sock");
    engine = createServer((req, res) => res.end(req.url?.endsWith("/_ping") ? "OK" : ""));
    await new Promise<void>((resolve) => engine?.listen(socket, resolve));
    expect(await checkRuntimeTools({ runtime: "docker", env: { DOCKER_HOST: `unix://${socket}` } })).toEqual([{ check: "runtime", status: "pass", message: `runtime docker: the Docker Engine at ${socket} answers` }]);
  });

  it("fails docker when nothing answers on the socket, or DOCKER_HOST is not a socket", async () => {
    const socket = join(dir, "missing.sock");
    const [missing] = await checkRuntimeTools({ runtime: "docker", env: { DOCKER_HOST: `unix://${socket}` } });
    expect(missing).toMatchObject({ status: "fail", message: `runtime docker: the Docker Engine at ${socket} does not answer (ENOENT)`, fix: expect.stringContaining("start Docker") });
    const [tcp] = await checkRuntimeTools({ runtime: "docker", env: { DOCKER_HOST: "tcp://10.0.0.1:2375" } });
    expect(tcp).toMatchObject({ status: "fail", message: expect.stringContaining("is not a unix socket") });
  });

  it("passes kubernetes with a kubeconfig and kubectl, and says what is missing otherwise", async () => {
    const config = join(dir, "kubeconfig");
    await writeFile(config, "apiVersion: v1\nkind: Config\n");
    await mkdir(join(dir, "bin"));
    await writeFile(join(dir, "bin", "kubectl"), "#!/bin/sh\n");
    await chmod(join(dir, "bin", "kubectl"), 0o755);
    expect((await checkRuntimeTools({ runtime: "kubernetes", env: { KUBECONFIG: config, PATH: join(dir, "bin") } })).map((r) => r.status)).toEqual(["pass", "pass"]);
    const missing = await checkRuntimeTools({ runtime: "kubernetes", env: { PATH: join(dir, "empty") }, home: dir });
    expect(missing.map((r) => [r.status, r.message])).toEqual([
      ["fail", `runtime kubernetes: no readable kubeconfig at ${join(dir, ".kube", "config")}`],
      ["warn", "runtime kubernetes: kubectl is not on PATH (Keelson does not need it, but looking at the cluster by hand does)"],
    ]);
  });
});
