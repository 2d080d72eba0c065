// The pipeline endpoints through the real control plane: runs of every service in one request,
// filtered by service, bad queries answered 400; and a running run's log followed live: the
// lines a stage prints arrive while it still runs, and the stream ends when the run does.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { createReconciler, type PipelineOutcome, type PipelineRunView, type Reconciler } from "../delivery/index.js";
import { parseManifest, type ServiceSpec } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

describe("pipeline endpoints", () => {
  let cp: ControlPlane;
  let url: string;
  let store: Store;
  let reconciler: Reconciler;
  let dir: string;
  let cleanup: () => Promise<void>;
  let specs: Record<string, ServiceSpec>;
  let viewer = "";
  const silent = { info() {}, warn() {}, error() {} };
  const gate = () => join(dir, "go");

  const get = (path: string) => fetch(`${url}${path}`, { headers: { authorization: `Bearer ${viewer}` } });
  const runs = async (query = "") => ((await (await get(`/v1/pipelines${query}`)).json()) as { runs: PipelineRunView[] }).runs;
  const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;
  const build = (service: string): Promise<PipelineOutcome> =>
    reconciler.pipelines.ensureRelease({ service, spec: specs[service] as ServiceSpec, manifestDir: dir, source: { kind: "worktree" }, actor: "user:ana", trigger: "deploy" });

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-cp-pipelines-"));
    const yaml = [
      "project: shop",
      "services:",
      "  orders:",
      "    owner: commerce",
      "    path: orders",
      "    start: node main.js",
      "    pipeline:",
      "      stages:",
      "        - { name: build, run: 'echo built' }",
      // Waits for the test's go signal, so the test sees the stage running and its first line.
      `        - { name: test, run: 'echo waiting for the go signal; while [ ! -f ${join(dir, "go")} ]; do sleep 0.05; done; echo go signal received' }`,
      "  search:",
      "    owner: web",
      "    path: search",
      "    start: node main.js",
      "    build: echo search built",
      "",
    ].join("\n");
    const { manifest } = parseManifest(yaml, join(dir, "keelson.yaml"), { checkPaths: false });
    specs = manifest.services as Record<string, ServiceSpec>;
    for (const name of ["orders", "search"]) {
      await mkdir(join(dir, name), { recursive: true });
      await writeFile(join(dir, name, "main.js"), `// ${name}\n`);
    }
    store = createMemoryStore();
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: join(dir, "keelson.yaml"), manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
    const driver = createMemoryDriver();
    const stateDir = join(dir, ".keelson");
    reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir });
    viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    cp = createControlPlane({ project: "shop", dir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
    await build("search");
  });
  afterAll(async () => {
    await cp?.close();
    await store?.close();
    await cleanup?.();
  });

  it("follows a running run's log: a stage's lines arrive while it runs, and the stream ends with the run", async () => {
    const running = build("orders");
    let run: PipelineRunView | undefined;
    await expect.poll(async () => (run = (await runs("?service=orders"))[0])?.status, { timeout: 20_000 }).toBe("running");
    const res = await get(`/v1/pipelines/${run!.run}/log?follow=1`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("waiting for the go signal\n")) {
      const { value, done } = await reader.read();
      expect(done, `the stream ended before the stage's first line; got ${JSON.stringify(text)}`).toBe(false);
      text += value;
    }
    // The stage waits for the go signal: the run is still going, the stream still open.
    expect((await runs("?service=orders"))[0]).toMatchObject({ run: run!.run, status: "running", planned: ["build", "test"] });
    expect(text).not.toMatch(/^go signal received$/m);
    await writeFile(gate(), "");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(text).toContain("==> stage build: echo built\nbuilt\n");
    expect(text).toMatch(/==> stage test: .*\nwaiting for the go signal\ngo signal received\n$/);
    expect((await running).run).toBe(run!.run);
    expect((await runs("?service=orders"))[0]).toMatchObject({ run: run!.run, status: "succeeded" });
    // Following a finished run answers its whole log at once, as without follow.
    const whole = await get(`/v1/pipelines/${run!.run}/log?follow=1`);
    expect(await whole.text()).toBe(text);
    expect(await (await get(`/v1/pipelines/${run!.run}/log`)).text()).toBe(text);
  });

  it("lists every service's runs newest first in one request, or one service's", async () => {
    const all = await runs();
    expect(all.map((r) => [r.service, r.status])).toEqual([
      ["orders", "succeeded"],
      ["search", "succeeded"],
    ]);
    expect(all[1]).toMatchObject({ actor: "user:ana", trigger: "deploy", planned: ["build"], stages: [expect.objectContaining({ name: "build", status: "succeeded" })] });
    expect((await runs("?limit=1")).map((r) => r.service)).toEqual(["orders"]);
    expect((await runs("?service=search")).map((r) => r.service)).toEqual(["search"]);
    // The per-service listing says the same.
    const own = (await (await get("/v1/services/search/pipelines")).json()) as { runs: PipelineRunView[] };
    expect(own.runs).toEqual(await runs("?service=search"));
  });

  it("refuses a bad limit, an unknown service, a bad follow value and an unknown run", async () => {
    for (const limit of ["0", "201", "ten", "1.5"]) {
      const res = await get(`/v1/pipelines?limit=${limit}`);
      expect(res.status, limit).toBe(400);
      expect((await errorOf(res)).message).toMatch(/^limit: expected a whole number 1-200/);
    }
    const unknown = await get("/v1/pipelines?service=nosuch");
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).message).toMatch(/"nosuch"/);
    const follow = await get("/v1/pipelines/run-20260101-000000-abcdef/log?follow=yes");
    expect(follow.status).toBe(400);
    expect((await errorOf(follow)).message).toMatch(/^follow: expected 1 or 0/);
    expect((await get("/v1/pipelines/run-20260101-000000-abcdef/log?follow=1")).status).toBe(404);
    expect((await get("/v1/pipelines/not-a-run/log")).status).toBe(400);
    expect((await fetch(`${url}/v1/pipelines`)).status).toBe(401);
  });
});
