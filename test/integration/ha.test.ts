// Two control planes on one PostgreSQL database and two gateways, the real binary throughout:
// the leader is killed with -9 under load through both gateways. No request may fail, the other
// instance must lead (and act: re-adopt the replicas, scale a service) within seconds, and the
// killed one comes back as a follower that forwards the API (ADR 0020).
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTempDir, postgresAvailability, requireComponent, startTestPostgres, waitFor, writeOneServiceProject, type TestDatabase, type TestPostgres } from "#test-support";
import type { StatusReport } from "@keelson/protocol";
import { BIN, pidAlive } from "../e2e/cli.js";

const availability = postgresAvailability();
const available = requireComponent("PostgreSQL", availability.available, availability.reason);


const NO_ANSWER: { code: number; role?: string } = { code: 0 };

interface Figures {
  requests: number;
  failed: number;
  failures: string[];
  leaderAfterMs: number;
  actingAfterMs: number;
}

describe.runIf(available)("highly available control plane on PostgreSQL", { timeout: 300_000 }, () => {
  let server: TestPostgres;
  let db: TestDatabase;
  let dir: string;
  let cleanup: () => Promise<void>;
  const children: ChildProcess[] = [];
  let cp1Port: number;
  let cp2Port: number;
  let gw1: string;
  let gw2: string;
  let admin1: string;
  let admin2: string;
  let token: string;
  let storeUrl: string;
  /** Tests that passed: the instances' logs are shown when one did not. */
  let passed = 0;

  const spawnKeelson = (name: string, args: string[]): ChildProcess => {
    const out = openSync(join(dir, `${name}.log`), "a");
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", out, out], env: { ...process.env, NO_COLOR: "1" } });
    closeSync(out);
    children.push(child);
    return child;
  };
  const serve = (name: string, port: number) => spawnKeelson(name, ["serve", dir, "--port", String(port), "--store", storeUrl]);
  const readyz = async (port: number): Promise<{ code: number; role?: string }> => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    const { role } = (await res.json()) as { role?: string };
    return { code: res.status, ...(role === undefined ? {} : { role }) };
  };
  const api = async (port: number, path: string, init: RequestInit = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers } });
    return { status: res.status, text: await res.text() };
  };

  beforeAll(async () => {
    server = await startTestPostgres();
    db = await server.createDatabase();
    storeUrl = db.url;
    ({ dir, cleanup } = await makeTempDir("keelson-ha-"));
    const first = await writeOneServiceProject(dir, { project: "ha", replicas: 2 });
    cp1Port = first.controlPlanePort;
    cp2Port = await freePort();
    const [g1, a1, m1] = [first.gatewayPort, first.adminPort, first.meshPort];
    const [g2, a2, m2] = [await freePort(), await freePort(), await freePort()];
    gw1 = `http://127.0.0.1:${g1}`;
    gw2 = `http://127.0.0.1:${g2}`;
    admin1 = `http://127.0.0.1:${a1}`;
    admin2 = `http://127.0.0.1:${a2}`;

    serve("cp1", cp1Port);
    await waitFor(async () => (await readyz(cp1Port)).role === "leader", { timeoutMs: 60_000, intervalMs: 100, what: "cp1 leading" });
    token = (await readFile(join(dir, ".keelson", "token"), "utf8")).trim();
    serve("cp2", cp2Port);
    let seen: unknown;
    await waitFor(async () => {
      const r = await readyz(cp2Port);
      seen = r;
      return r.code === 200 && r.role === "follower";
    }, { timeoutMs: 60_000, intervalMs: 100, what: "cp2 following" }).catch((err: unknown) => {
      throw new Error(`${String(err)}; last answer ${JSON.stringify(seen)}`);
    });

    // The apply goes to the follower, which forwards it (and its streamed progress) to the leader.
    const applied = await api(cp2Port, "/v1/apply", { method: "POST", body: "{}" });
    expect(applied.status, applied.text).toBe(200);
    expect(applied.text).toContain('"type":"done"');

    const cps = [cp1Port, cp2Port].map((p) => `http://127.0.0.1:${p}`);
    spawnKeelson("gw1", ["gateway", dir, "--port", String(g1), "--admin-port", String(a1), "--mesh-port", String(m1), "--control-plane", cps.join(","), "--state-dir", join(dir, "gw1")]);
    spawnKeelson("gw2", ["gateway", dir, "--port", String(g2), "--admin-port", String(a2), "--mesh-port", String(m2), "--control-plane", [...cps].reverse().join(","), "--state-dir", join(dir, "gw2")]);
    for (const gw of [gw1, gw2]) {
      await waitFor(async () => (await fetch(`${gw}/api/x`)).status === 200, { timeoutMs: 30_000, intervalMs: 100, what: `${gw} routing /api` });
    }
  }, 240_000);

  afterAll(async () => {
    // The replicas were started by whichever instance led: stop them through the one that leads now.
    for (const port of [cp2Port, cp1Port]) {
      const r = await api(port, "/v1/down", { method: "POST", body: "{}" }).catch(() => undefined);
      if (r?.status === 200) break;
    }
    for (const child of children) if (child.pid !== undefined && pidAlive(child.pid)) child.kill("SIGTERM");
    await waitFor(() => children.every((c) => c.pid === undefined || !pidAlive(c.pid)), { timeoutMs: 20_000, what: "keelson processes to exit" }).catch(() => {
      for (const c of children) if (c.pid !== undefined && pidAlive(c.pid)) c.kill("SIGKILL");
    });
    await db?.drop();
    await server?.stop();
    // The instances' own logs tell what went wrong in a failed run.
    for (const name of passed === 2 ? [] : ["cp1", "cp2", "cp1-again", "gw1", "gw2"]) {
      const text = await readFile(join(dir, `${name}.log`), "utf8").catch(() => "");
      const worrying = text.split("\n").filter((l) => l.trim() !== "" && (/"level":(50|60)/.test(l) || !l.startsWith("{")));
      if (worrying.length > 0) process.stderr.write(`--- ${name}.log: errors and lines that are not log records ---\n${worrying.slice(-20).join("\n")}\n`);
    }
    if (process.env.KEELSON_KEEP_TEST_DIR !== "1") await cleanup?.();
    else process.stderr.write(`kept ${dir}\n`);
  });

  /** Four clients, each alternating between the two gateways; bounded by count and time. */
  const startLoad = (figures: Figures, maxMs: number) => {
    const deadline = Date.now() + maxMs;
    let stopLoad = false;
    const client = async (n: number) => {
      for (let i = 0; !stopLoad && i < 5_000 && Date.now() < deadline; i++) {
        const gw = (i + n) % 2 === 0 ? gw1 : gw2;
        figures.requests++;
        try {
          const res = await fetch(`${gw}/api/work`);
          const body = await res.text();
          if (res.status !== 200) {
            figures.failed++;
            figures.failures.push(`${gw} ${res.status} ${body.slice(0, 200)}`);
          }
        } catch (err) {
          figures.failed++;
          figures.failures.push(`${gw} ${String(err)}`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const running = Promise.all([0, 1, 2, 3].map(client));
    return async () => {
      stopLoad = true;
      await running;
    };
  };

  it("keeps serving through the leader's kill -9, and the other instance leads and acts within seconds", async () => {
    const figures: Figures = { requests: 0, failed: 0, failures: [], leaderAfterMs: -1, actingAfterMs: -1 };
    const stopLoad = startLoad(figures, 40_000);

    await new Promise((r) => setTimeout(r, 3_000));
    const cp1 = children[0]!;
    const killedAt = Date.now();
    cp1.kill("SIGKILL");
    await waitFor(async () => (await readyz(cp2Port).catch(() => NO_ANSWER)).role === "leader", { timeoutMs: 20_000, intervalMs: 20, what: "cp2 leading" });
    figures.leaderAfterMs = Date.now() - killedAt;
    // Acting: it re-adopted the running replicas and recorded that it leads.
    const started = await waitFor(
      async () => {
        const r = await api(cp2Port, "/v1/events?kind=controlplane.started&order=desc&limit=1");
        const event = (JSON.parse(r.text) as { events: Array<{ details: { term?: number; adopted?: string[] } }> }).events[0];
        return event !== undefined && (event.details.term ?? 0) >= 2 ? event : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 20, what: "the new leader's controlplane.started event" },
    );
    figures.actingAfterMs = Date.now() - killedAt;
    expect(started.details.adopted).toHaveLength(2);

    // The new leader changes things: a third replica, published to both gateways.
    const scaled = await api(cp2Port, "/v1/services/api/scale", { method: "POST", body: JSON.stringify({ replicas: 3 }) });
    expect(scaled.status, scaled.text).toBe(202);
    const pids = new Set<number>();
    await waitFor(
      async () => {
        for (const gw of [gw1, gw2]) pids.add(((await (await fetch(`${gw}/api/pid`)).json()) as { pid: number }).pid);
        return pids.size === 3;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: "requests reaching all three replicas" },
    );

    await stopLoad();
    process.stdout.write(`ha failover: ${JSON.stringify({ ...figures, failures: figures.failures.slice(0, 5) })}\n`);
    expect(figures.failures).toEqual([]);
    expect(figures.requests).toBeGreaterThan(200);
    expect(figures.actingAfterMs).toBeLessThan(5_000);

    // The killed instance comes back as a follower, and forwards what it is asked to the leader.
    serve("cp1-again", cp1Port);
    await waitFor(async () => {
      const r = await readyz(cp1Port).catch(() => NO_ANSWER);
      return r.code === 200 && r.role === "follower";
    }, { timeoutMs: 30_000, intervalMs: 100, what: "cp1 back as a follower" });
    const status = await api(cp1Port, "/v1/status");
    expect(status.status).toBe(200);
    const report = JSON.parse(status.text) as StatusReport;
    expect(report.controlPlane.pid).toBe(children[1]!.pid);
    expect(report.services.find((s) => s.name === "api")?.replicas.ready).toBe(3);
    // Who leads and which gateways the leader scrapes: both, whichever instance each follows.
    expect(report.cluster?.term).toBe(2);
    expect(report.cluster?.instances.find((i) => i.leader)?.url).toBe(`http://127.0.0.1:${cp2Port}`);
    await waitFor(async () => {
      const again = JSON.parse((await api(cp1Port, "/v1/status")).text) as StatusReport;
      return again.cluster?.instances.some((i) => !i.leader && i.url === `http://127.0.0.1:${cp1Port}`);
    }, { what: "the restarted instance listed as a follower" });
    expect([...(report.cluster?.gateways ?? [])].sort()).toEqual([admin1, admin2].sort());
    passed++;
  });

  it("keeps serving while the database refuses every connection; the instances report not-ready, then one leads again", async () => {
    const figures: Figures = { requests: 0, failed: 0, failures: [], leaderAfterMs: -1, actingAfterMs: -1 };
    const admin = new Client({ connectionString: server.url });
    await admin.connect();
    const stopLoad = startLoad(figures, 60_000);
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      // The database goes away: no new connection is accepted and every open one is ended.
      await admin.query(`ALTER DATABASE "${db.name}" WITH ALLOW_CONNECTIONS false`);
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [db.name]);
      // The follower says why it cannot serve; the leader lost the connection holding its
      // leadership and starts again, waiting for the store (so it does not answer at all).
      const follower = await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${cp1Port}/readyz`);
          const body = (await res.json()) as { reason?: string };
          return res.status === 503 && /store does not answer/.test(body.reason ?? "") ? body : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: "the follower reporting not-ready" },
      );
      expect(follower.reason).toMatch(/store does not answer/);
      await new Promise((r) => setTimeout(r, 3_000));
      const duringOutage = figures.requests;

      await admin.query(`ALTER DATABASE "${db.name}" WITH ALLOW_CONNECTIONS true`);
      const leaderPort = await waitFor(
        async () => {
          for (const port of [cp1Port, cp2Port]) if ((await readyz(port).catch(() => NO_ANSWER)).role === "leader") return port;
          return undefined;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: "an instance leading again" },
      );
      // It acts: the service goes back to two replicas, on both gateways.
      const scaled = await api(leaderPort, "/v1/services/api/scale", { method: "POST", body: JSON.stringify({ replicas: 2 }) });
      expect(scaled.status, scaled.text).toBe(202);
      await waitFor(
        async () => {
          const r = JSON.parse((await api(leaderPort, "/v1/status")).text) as { services: Array<{ instances: unknown[] }> };
          return r.services[0]?.instances.length === 2;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: "two replicas again" },
      );
      await stopLoad();
      process.stdout.write(`ha database outage: ${JSON.stringify({ requests: figures.requests, duringOutage, failed: figures.failed, failures: figures.failures.slice(0, 5) })}\n`);
      expect(figures.failures).toEqual([]);
      expect(duringOutage).toBeGreaterThan(100);
      passed++;
    } finally {
      await stopLoad();
      await admin.query(`ALTER DATABASE "${db.name}" WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
      await admin.end();
    }
  });
});
