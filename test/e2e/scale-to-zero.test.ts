// End to end: a service with `autoscale.min: 0` is scaled to zero by the real control plane's
// autoscaler once idle, and the real gateway holds the next request, wakes it through the
// control plane, and answers it; every step is an event. Also: `keelson scale` is refused for it.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeelsonEvent, StatusReport } from "@keelson/protocol";
import { apiFetch, freePort, makeTempDir, waitFor } from "#test-support";
import { keelson } from "./cli.js";

describe.sequential("scale to zero", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;

  async function status(): Promise<StatusReport> {
    const r = await keelson(["status", dir, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as StatusReport;
  }

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-zero-"));
    expect((await keelson(["init", dir, "--name", "zero"])).code).toBe(0);
    const [cp, gw, admin, mesh] = [await freePort(), await freePort(), await freePort(), await freePort()];
    gateway = `http://127.0.0.1:${gw}`;
    const file = join(dir, "keelson.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    doc.setIn(["controlPlane"], doc.createNode({ host: "127.0.0.1", port: cp }));
    doc.setIn(["gateway"], doc.createNode({ host: "127.0.0.1", port: gw, adminPort: admin, meshPort: mesh }));
    doc.setIn(["services", "web", "autoscale"], doc.createNode({ min: 0, max: 2, interval: "500ms", scaleToZero: { idle: "3s", holdTimeout: "20s" } }));
    await writeFile(file, doc.toString());
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 120_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await keelson(["down", dir]);
    await cleanup();
  });

  it("stops the last replica after the idle time, holds the next request while one starts, and answers it", async () => {
    expect((await fetch(`${gateway}/`)).status).toBe(200);
    await waitFor(async () => ((await status()).services[0]?.instances.length === 0 ? true : undefined), { timeoutMs: 30_000, what: "web to be scaled to zero" });
    expect((await status()).services[0]?.replicas.desired).toBe(0);

    const started = Date.now();
    const res = await fetch(`${gateway}/`);
    const coldMs = Date.now() - started;
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^hello from web/);
    expect(coldMs).toBeLessThan(20_000);
    console.log(`scale from zero: the held request was answered after ${coldMs} ms`);

    const s = await status();
    expect(s.services[0]?.replicas).toMatchObject({ desired: 1, ready: 1 });
    const events = (await (await apiFetch(dir, `${s.controlPlane.url}/v1/services/web/autoscale?limit=50`)).json()) as { events: KeelsonEvent[] };
    const kinds = events.events.map((e) => `${e.kind} ${String(e.details.from)}->${String(e.details.to)}`);
    expect(kinds).toContain("service.activated 0->1");
    expect(kinds.some((k) => /^autoscale\.scaled 1->0$/.test(k))).toBe(true);
    const explain = await keelson(["autoscale", "web", "-C", dir]);
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toMatch(/activated 0 → 1/);
  }, 90_000);

  it("refuses keelson scale for an autoscaled service", async () => {
    const r = await keelson(["scale", "web", "3", "-C", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/web is autoscaled \(autoscale.min 0, max 2\)/);
  });
});
