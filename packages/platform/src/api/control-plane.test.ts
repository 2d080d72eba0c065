// The control plane's wiring of flags into routing: a change to a flag a route names
// republishes the routing table with the new definition. And what GET /v1/status shows of replicas
// and of rollouts under way.
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { StatusReport } from "@keelson/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { createReconciler, createRolloutController } from "../delivery/index.js";
import { createFlagService, type FlagService } from "../flags/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore } from "../store/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
services:
  checkout:
    owner: web
    path: checkout
    start: node main.js
    routes:
      - path: /checkout
        flag:
          key: checkout-experiment
          context: { targetingKey: { header: x-user-id } }
          variants: { treatment: { service: checkout-v2 } }
  checkout-v2:
    owner: web
    path: checkout-v2
    start: node main.js
`;

const experiment = (treatment: number) => ({
  state: "ENABLED",
  variants: { control: false, treatment: true },
  defaultVariant: "control",
  targeting: { fractional: [["control", 100 - treatment], ["treatment", treatment]] },
});

describe("control plane routing by flag", () => {
  let cp: ControlPlane;
  let flags: FlagService;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-flags-");
    cleanup = tmp.cleanup;
    const store = createMemoryStore();
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: "r-aaaaaaaaaaaa" })),
      remove: [],
      events: [],
    });
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    flags = createFlagService({ store, project: "shop" });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, flags, security });
  });
  afterAll(async () => {
    await cp.close();
    await cleanup();
  });

  it("republishes the routing table with the flag's new definition when the flag changes", async () => {
    const before = await cp.routing.current();
    expect(before.routes[0]?.flag?.key).toBe("checkout-experiment");
    expect(before.flags).toEqual({ revision: 0, set: { flags: {} } });

    const published: number[] = [];
    cp.routing.subscribe((t) => published.push(t.version));
    await flags.put("checkout-experiment", experiment(10), "ana");
    await waitFor(() => published.length > 0, { timeoutMs: 5_000 });
    const after = await cp.routing.current();
    expect(after.version).toBeGreaterThan(before.version);
    expect(after.flags?.set.flags["checkout-experiment"]).toEqual(experiment(10));

    // A flag no route names makes no new table; the next change to the named one makes one.
    await flags.put("unrelated", experiment(0), "ana");
    await flags.put("checkout-experiment", experiment(20), "ana");
    const last = await waitFor(
      async () => {
        const t = await cp.routing.current();
        return JSON.stringify(t.flags?.set.flags["checkout-experiment"]) === JSON.stringify(experiment(20)) ? t : undefined;
      },
      { timeoutMs: 5_000, what: "the table with the second definition" },
    );
    expect(last.version).toBe(after.version + 1);
    expect(last.flags?.set.flags.unrelated).toBeUndefined();
    expect(published).toEqual([after.version, last.version]);
  });
});

describe("control plane status", () => {
  const silent = { info() {}, warn() {}, error() {} };
  const MIB = 1024 * 1024;

  it("GET /v1/status carries each replica's last usage sample, with its memory limit", async () => {
    const tmp = await makeTempDir("keelson-cp-status-");
    const store = createMemoryStore();
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: "r-aaaaaaaaaaaa" })),
      remove: [],
      events: [],
    });
    const driver = createMemoryDriver({ usageIntervalMs: 5 });
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    const { token } = await security.tokens.create({ name: "watcher", role: "viewer", actor: "test" });
    const cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    const url = await cp.listen("127.0.0.1", 0);
    const spec = {
      id: "checkout-r-aaaaaaaaaaaa-0",
      project: "shop",
      service: "checkout",
      release: "r-aaaaaaaaaaaa",
      index: 0,
      cwd: tmp.dir,
      command: "memory",
      env: {},
      port: 20_001,
      readiness: undefined,
      liveness: undefined,
      stopTimeoutMs: 1_000,
      startTimeoutMs: 5_000,
      logDir: join(tmp.dir, "logs"),
      memoryLimitBytes: 256 * MIB,
    };
    const instances = async (service: string) => {
      const res = await fetch(`${url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      return ((await res.json()) as StatusReport).services.find((s) => s.name === service)?.instances ?? [];
    };
    try {
      await driver.start(spec);
      await driver.start({ ...spec, id: "checkout-v2-r-aaaaaaaaaaaa-0", service: "checkout-v2", port: 20_002, memoryLimitBytes: undefined });
      // Nothing sampled yet: no usage field at all.
      expect((await instances("checkout"))[0]).not.toHaveProperty("usage");
      driver.setUsage(spec.id, { cpuPercent: 12, memoryBytes: 48 * MIB });
      await waitFor(() => driver.get(spec.id)?.usage, { what: "a usage sample" });
      const [instance] = await instances("checkout");
      expect(instance?.usage).toEqual({ cpuPercent: 12, memoryBytes: 48 * MIB, memoryLimitBytes: 256 * MIB, at: expect.any(String) as string });
      expect((await instances("checkout-v2"))[0]).not.toHaveProperty("usage");
    } finally {
      await Promise.all(driver.list().map((r) => driver.stop(r.spec.id)));
      await reconciler.stop();
      await cp.close();
      await tmp.cleanup();
    }
  });

  it("GET /v1/status carries a rollout under way (the overview lists it), and none for a service without one", async () => {
    const tmp = await makeTempDir("keelson-cp-status-rollout-");
    const store = createMemoryStore();
    const canary = yaml.replace("    start: node main.js\n    routes:", "    start: node main.js\n    deploy: { strategy: canary, steps: [{ setWeight: 20 }, { pause: manual }] }\n    routes:");
    const { manifest } = parseManifest(canary, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: "r-aaaaaaaaaaaa" })),
      remove: [],
      events: [],
    });
    const reconciler = createReconciler({ store, driver: createMemoryDriver(), project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    const { token } = await security.tokens.create({ name: "watcher", role: "viewer", actor: "test" });
    const cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver: createMemoryDriver(), reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    const url = await cp.listen("127.0.0.1", 0);
    try {
      // The rollout controller records the rollout in the store, as a deploy does; the reconciler reads it from there.
      for (const id of ["r-aaaaaaaaaaaa", "r-bbbbbbbbbbbb"]) await store.putRelease({ id, project: "shop", service: "checkout", sourceHash: "s", configHash: "c", gitCommit: undefined, createdAt: new Date().toISOString(), details: {} });
      const record = await store.getService("shop", "checkout");
      const started = await createRolloutController({ store, project: "shop" }).begin({ record: record!, to: "r-bbbbbbbbbbbb", actor: "user:ana" });
      const res = await fetch(`${url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const services = ((await res.json()) as StatusReport).services;
      expect(services.find((s) => s.name === "checkout")?.rollout).toEqual({
        id: started.id,
        strategy: "canary",
        phase: "progressing",
        from: "r-aaaaaaaaaaaa",
        to: "r-bbbbbbbbbbbb",
        weight: 0,
        step: 0,
        steps: 2,
        startedAt: started.startedAt,
      });
      expect(services.find((s) => s.name === "checkout-v2")).not.toHaveProperty("rollout");
    } finally {
      await reconciler.stop();
      await cp.close();
      await tmp.cleanup();
    }
  });
});

describe("GET /v1/services/:name/logs", () => {
  const silent = { info() {}, warn() {}, error() {} };

  it("grep keeps the lines containing the text, any case, and tail counts those; a follow that matches nothing yet still answers at once", async () => {
    const tmp = await makeTempDir("keelson-cp-logs-");
    const store = createMemoryStore();
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: "r-aaaaaaaaaaaa" })),
      remove: [],
      events: [],
    });
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    const { token } = await security.tokens.create({ name: "reader", role: "viewer", actor: "test" });
    const cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    const url = await cp.listen("127.0.0.1", 0);
    const logs = join(tmp.dir, "logs", "checkout");
    await mkdir(logs, { recursive: true });
    const line = (s: number, text: string) => `${JSON.stringify({ t: new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString(), replica: "checkout-0", stream: "stdout", line: text })}\n`;
    await writeFile(join(logs, "checkout-0.log"), line(1, "charge ok") + line(2, "charge FAILED: card declined") + line(3, "charge ok") + line(4, "refund failed: gone") + line(5, "charge ok"));
    const read = async (query: string) => {
      const res = await fetch(`${url}/v1/services/checkout/logs${query}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, lines: (await res.text()).split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { line: string }).line) };
    };
    try {
      expect(await read("?grep=failed")).toEqual({ status: 200, lines: ["charge FAILED: card declined", "refund failed: gone"] });
      expect(await read("?grep=FAILED&tail=1")).toEqual({ status: 200, lines: ["refund failed: gone"] });
      expect((await read("?tail=1")).lines).toEqual(["charge ok"]);
      expect((await read(`?grep=${"x".repeat(201)}`)).status).toBe(400);
      const abort = new AbortController();
      const res = await fetch(`${url}/v1/services/checkout/logs?follow=1&tail=5&grep=no-such-text`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
      abort.abort();

      // A follow opened while the vault is empty still redacts a secret set while it runs.
      const live = new AbortController();
      const following = await fetch(`${url}/v1/services/checkout/logs?follow=1&tail=1&grep=token`, { headers: { authorization: `Bearer ${token}` }, signal: live.signal });
      const reader = following.body!.getReader();
      await security.vault.set("checkout", "API_TOKEN", "tok-live-123456", "user:test");
      await security.secretsChanged?.("checkout");
      await appendFile(join(logs, "checkout-0.log"), line(8, "token=tok-live-123456"));
      let streamed = "";
      while (!streamed.includes("token=")) {
        const { value, done } = await reader.read();
        if (done) break;
        streamed += new TextDecoder().decode(value);
      }
      live.abort();
      expect(streamed).toContain("token=[redacted]");
      expect(streamed).not.toContain("tok-live");

      // A secret the vault holds: the search sees lines as shown, redacted, so guessing its
      // characters one by one tells nothing; the twice-escaped form (a JSON line in JSON) is redacted.
      await writeFile(join(logs, "checkout-1.log"), line(6, "login password=hunter2-secret") + line(7, JSON.stringify({ msg: "cfg", password: 'hunter2"q' })));
      await security.vault.set("checkout", "DB_PASSWORD", "hunter2-secret", "user:test");
      await security.vault.set("checkout", "OTHER", 'hunter2"q', "user:test");
      await security.secretsChanged?.("checkout");
      expect((await read("?grep=password%3Dhunter2-s")).lines).toEqual([]);
      expect((await read("?grep=password%3D")).lines).toEqual(["login password=[redacted]"]);
      const raw = await (await fetch(`${url}/v1/services/checkout/logs?grep=cfg`, { headers: { authorization: `Bearer ${token}` } })).text();
      expect(raw).toContain("cfg");
      expect(raw).not.toContain("hunter2");
    } finally {
      await reconciler.stop();
      await cp.close();
      await tmp.cleanup();
    }
  });
});
