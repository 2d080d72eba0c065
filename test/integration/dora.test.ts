// A scripted delivery history in one month, and exactly the four keys and buckets it must give.
// Everything is written by the real code: a git repository with commits at chosen author dates,
// the real pipelines and rollouts (memory driver; a SQLite store whose clock the script sets, so
// every event lands at a chosen time), the real incident monitor and chaos controller, the real
// control plane, and the real `keelson dora import-git` and `keelson dora` in this process.
//
// Script (UTC; the window is the 28 days up to Sunday 2026-03-01):
//   c1  Feb 01 08:00  both services               → keelson up Feb 02 10:00 (orders and search, first releases)
//   c2  Feb 09 09:00  orders; c3 Feb 09 11:00 orders → deploy orders c3 Feb 09 12:00 (canary, passes)
//   c4  Feb 10 08:00  search                       → deploy search c4 Feb 10 10:00 (rolling)
//                      incident on search Feb 10 14:00, resolved 14:45 (45 min)
//   c5  Feb 16 09:00  orders (bad)                 → deploy orders c5 Feb 16 10:00: canary at 20%, analysis
//                                                    fails at 10:05, rolled back automatically (5 min)
//   c6  Feb 16 11:00  orders; c7 authored Feb 17 15:00 (a clock ahead) → deploy orders c7 Feb 17 12:00
//   chaos on search Feb 20 10:00-10:55; an incident opened 10:20 during it (left out)
//   c8  Feb 24 09:00  search (broken)              → deploy search c8 Feb 24 10:00: crash-loops before any
//                                                    replica is ready (blocked, no deployment)
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git, makeTempDir, runCli, useGitTestEnv } from "#test-support";
import { createApiSecurity, createControlPlane, type ControlPlane } from "../../packages/platform/src/api/index.js";
import type { DoraReport } from "../../packages/platform/src/catalog/index.js";
import { main } from "../../packages/platform/src/cli/index.js";
import { createReconciler, type AnalysisProvider, type Reconciler } from "../../packages/platform/src/delivery/index.js";
import { loadManifest } from "../../packages/platform/src/manifest/index.js";
import { createChaosController, createMemoryDriver, type ChaosController, type MemoryDriver } from "../../packages/platform/src/runtime/index.js";
import { createSqliteStore, type Store } from "../../packages/platform/src/store/index.js";
import { createIncidentMonitor, type IncidentMonitor, type MetricsSource } from "../../packages/platform/src/telemetry/index.js";

useGitTestEnv();

const H = 3_600_000;
const MIN = 60_000;
const NOW = new Date("2026-03-01T00:00:00Z");

const manifest = `project: shop
services:
  orders:
    owner: commerce
    path: services/orders
    start: node main.js
    replicas: 1
    startTimeout: 5s
    deploy: { strategy: canary, drain: 0, steps: [{ setWeight: 20 }, { analysis: { interval: 20ms, duration: 150ms, metrics: [errors] } }, { setWeight: 50 }] }
  search:
    owner: web
    path: services/search
    start: node main.js
    replicas: 1
    startTimeout: 5s
    deploy: { drain: 0 }
`;

describe("DORA metrics of a scripted history", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: Store;
  let driver: MemoryDriver;
  let reconciler: Reconciler;
  let cp: ControlPlane;
  let chaos: ChaosController;
  let incidents: IncidentMonitor;
  let clock = Date.parse("2026-02-01T00:00:00Z");
  const at = (iso: string) => (clock = Date.parse(iso));
  const commits: Record<string, string> = {};
  /** The canary analysis: a good canary, or one failing 12% of its requests that moves the clock when first looked at. */
  let canary: { errors: number; lookAt?: string } = { errors: 0 };
  let looks = 0;
  let errorRatio = 0;
  const silent = { info() {}, warn() {}, error() {} };

  async function commit(name: string, files: Record<string, string>, date: string): Promise<void> {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(dir, path, ".."), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-q", "-m", name], { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date });
    commits[name] = await git(dir, ["rev-parse", "HEAD"]);
  }

  async function deploy(service: string, commitName: string, when: string): Promise<string> {
    at(when);
    const result = await reconciler.deploy(service, { actor: "user:ana", commit: commits[commitName] as string });
    return result.outcome;
  }

  /** Runs `keelson …` in this process; its exit code and what it printed. */
  const keelson = (args: string[]) => runCli(main, [...args, "-C", dir]);

  const report = async (args: string[] = []): Promise<DoraReport> => {
    const r = await keelson(["dora", "--json", ...args]);
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out) as DoraReport;
  };

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-dora-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    const stateDir = join(dir, ".keelson");
    await mkdir(stateDir, { recursive: true });
    await git(dir, ["init", "-q"]);
    store = await createSqliteStore({ path: join(stateDir, "state.db"), now: () => clock });
    // A release whose folder holds BROKEN crash-loops at once.
    driver = createMemoryDriver({ readyDelayMs: 5, behavior: (spec) => (existsSync(join(spec.cwd, "BROKEN")) ? { exitAfterMs: 1, exitCode: 3 } : undefined) });
    const analysis: AnalysisProvider = {
      async observe() {
        const k = ++looks;
        if (canary.lookAt !== undefined) {
          at(canary.lookAt);
          canary.lookAt = undefined;
        }
        return { at: Date.now(), canary: { requests: 100 * k, errors: canary.errors * k }, baseline: { requests: 100 * k, errors: 0 } };
      },
    };
    reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:1", log: silent, convergeIntervalMs: 50, analysis });
    const source = { kind: "fake", retentionMs: undefined, errorRatio: async () => errorRatio } as unknown as MetricsSource;
    incidents = createIncidentMonitor({ store, project: "shop", source, now: () => clock, objectives: () => [{ service: "search", slo: "available", objective: "availability", target: 0.99, windowMs: 30 * 24 * H }] });
    chaos = createChaosController({ store, project: "shop", driver, services: async () => ["orders", "search"], now: () => clock });
    const security = await createApiSecurity({ store, project: "shop", stateDir });
    const { token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" });
    cp = createControlPlane({ project: "shop", dir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, now: () => NOW });
    const url = await cp.listen("127.0.0.1", 0);
    // What `keelson up` writes, so that the CLI finds this control plane and has its token.
    await writeFile(join(stateDir, "controlplane.json"), JSON.stringify({ pid: process.pid, url, project: "shop" }));
    await writeFile(join(stateDir, "token"), `${token}\n`, { mode: 0o600 });

    // The history.
    await commit("c1", { ".gitignore": ".keelson/\n", "keelson.yaml": manifest, "services/orders/main.js": "// orders v1\n", "services/search/main.js": "// search v1\n" }, "2026-02-01T08:00:00Z");
    at("2026-02-02T10:00:00Z");
    const up = await reconciler.apply(await loadManifest(dir), { actor: "user:ana" });
    expect(up.failures).toEqual([]);
    reconciler.start();

    await commit("c2", { "services/orders/main.js": "// orders v2\n" }, "2026-02-09T09:00:00Z");
    await commit("c3", { "services/orders/main.js": "// orders v3\n" }, "2026-02-09T11:00:00Z");
    expect(await deploy("orders", "c3", "2026-02-09T12:00:00Z")).toBe("deployed");

    await commit("c4", { "services/search/main.js": "// search v2\n" }, "2026-02-10T08:00:00Z");
    expect(await deploy("search", "c4", "2026-02-10T10:00:00Z")).toBe("deployed");
    at("2026-02-10T14:00:00Z");
    errorRatio = 0.5;
    expect((await incidents.evaluate()).map((e) => e.kind)).toEqual(["incident.opened"]);
    at("2026-02-10T14:45:00Z");
    errorRatio = 0;
    expect((await incidents.evaluate()).map((e) => e.kind)).toEqual(["incident.resolved"]);

    await commit("c5", { "services/orders/main.js": "// orders v4 (bad)\n" }, "2026-02-16T09:00:00Z");
    canary = { errors: 12, lookAt: "2026-02-16T10:05:00Z" };
    expect(await deploy("orders", "c5", "2026-02-16T10:00:00Z")).toBe("rolled-back");
    canary = { errors: 0 };

    await commit("c6", { "services/orders/main.js": "// orders v5\n" }, "2026-02-16T11:00:00Z");
    await commit("c7", { "services/orders/main.js": "// orders v6\n" }, "2026-02-17T15:00:00Z");
    expect(await deploy("orders", "c7", "2026-02-17T12:00:00Z")).toBe("deployed");

    at("2026-02-20T10:00:00Z");
    const experiment = await chaos.start({ kind: "error", service: "search", durationMs: H, share: 1, status: 503 }, "user:ana");
    at("2026-02-20T10:20:00Z");
    errorRatio = 0.5;
    expect((await incidents.evaluate()).map((e) => e.kind)).toEqual(["incident.opened"]);
    at("2026-02-20T10:50:00Z");
    errorRatio = 0;
    expect((await incidents.evaluate()).map((e) => e.kind)).toEqual(["incident.resolved"]);
    at("2026-02-20T10:55:00Z");
    await chaos.stop(experiment.id, "user:ana");

    await commit("c8", { "services/search/main.js": "// search v3\n", "services/search/BROKEN": "yes\n" }, "2026-02-24T09:00:00Z");
    expect(await deploy("search", "c8", "2026-02-24T10:00:00Z")).not.toBe("deployed");
  });
  afterAll(async () => {
    await chaos?.close();
    await incidents?.stop();
    await reconciler?.stop();
    await cp?.close();
    await Promise.all(driver?.list().map((r) => driver.stop(r.spec.id)) ?? []);
    await store?.close();
    await cleanup?.();
  });

  it("records deployments with their commits and author times, and a blocked rollout without servedAt", async () => {
    // keelson up rolls both services out at once: those two may come in either order.
    const byTime = (a: readonly unknown[], b: readonly unknown[]) => String(a[3]).localeCompare(String(b[3])) || String(a[0]).localeCompare(String(b[0]));
    const done = await store.listEvents({ project: "shop", kinds: ["rollout.succeeded"] });
    expect(done.map((e) => [e.subject, e.details.commit, e.details.commitTime, e.at]).sort(byTime)).toEqual([
      ["service/orders", commits.c1, "2026-02-01T08:00:00.000Z", "2026-02-02T10:00:00.000Z"],
      ["service/search", commits.c1, "2026-02-01T08:00:00.000Z", "2026-02-02T10:00:00.000Z"],
      ["service/orders", commits.c3, "2026-02-09T11:00:00.000Z", "2026-02-09T12:00:00.000Z"],
      ["service/search", commits.c4, "2026-02-10T08:00:00.000Z", "2026-02-10T10:00:00.000Z"],
      ["service/orders", commits.c7, "2026-02-17T15:00:00.000Z", "2026-02-17T12:00:00.000Z"],
    ]);
    const failed = await store.listEvents({ project: "shop", kinds: ["rollout.failed"] });
    expect(failed.map((e) => [e.subject, e.at, typeof e.details.servedAt])).toEqual([
      ["service/orders", "2026-02-16T10:05:00.000Z", "string"],
      ["service/search", "2026-02-24T10:00:00.000Z", "undefined"],
    ]);
  });

  it("gives the four keys from the deployed head commits before any import", async () => {
    const r = await report();
    expect(r.counts).toEqual({ deployments: 6, successful: 5, failed: 2, blocked: 1, incidents: 2, excludedChaos: 1, unattributedIncidents: 0 });
    // Head commits: c1 26 h (twice), c3 1 h, c4 2 h; c7 was authored after its deployment (skew).
    expect(r.summary.leadTime).toEqual({ medianMs: 14 * H, bucket: "elite", changes: 4, skewed: 1, withoutCommit: 0 });
  });

  it("imports the commits each deployment brought from git, idempotently", async () => {
    const first = await keelson(["dora", "import-git"]);
    expect(first.code, first.err).toBe(0);
    // orders: c1; c2 and c3; c5, c6 and c7 (the failed canary's c5 came with the next deployment).
    expect(first.out).toContain("orders: 6 commits for 3 deployments");
    expect(first.out).toContain("search: 2 commits for 2 deployments");
    expect(first.out).toContain("imported 8 commits for 5 deployments of 2 services");
    const again = await keelson(["dora", "import-git", "--window", "30d"]);
    expect(again.code, again.err).toBe(0);
    expect(await store.listDocuments({ collection: "dora.changes", project: "shop" })).toHaveLength(5);
    // Another repository has none of the deployed commits: said per service, nothing sent.
    const other = await makeTempDir("keelson-dora-other-");
    try {
      await git(other.dir, ["init", "-q"]);
      await writeFile(join(other.dir, "README.md"), "other\n");
      await git(other.dir, ["add", "-A"]);
      await git(other.dir, ["commit", "-q", "-m", "other"]);
      const stranger = await keelson(["dora", "import-git", "--repo", other.dir]);
      expect(stranger.code, stranger.err).toBe(0);
      expect(stranger.out).toContain("orders: 0 commits for 0 deployments (3 deployed commits not in this repository)");
      expect(stranger.out).toContain("imported 0 commits for 0 deployments of 2 services");
    } finally {
      await other.cleanup();
    }
    expect(await store.listDocuments({ collection: "dora.changes", project: "shop" })).toHaveLength(5);
    const outside = await makeTempDir("keelson-dora-nogit-");
    try {
      const refused = await keelson(["dora", "import-git", "--repo", outside.dir]);
      expect(refused.code).toBe(1);
      expect(refused.err).toContain("is not in a git repository");
    } finally {
      await outside.cleanup();
    }
  });

  it("answers exactly the expected four keys and buckets", async () => {
    const r = await report(["--window", "28d"]);
    expect(r.window).toEqual({ days: 28, from: "2026-02-02T10:00:00.000Z", to: "2026-03-01T00:00:00.000Z" });
    expect(r.summary).toEqual({
      // Five successful deployments over 26 days 14 hours; most weeks have one (three of four): weekly.
      deploymentFrequency: { perDay: 0.1881, perWeek: 1.3166, deployments: 5, bucket: "high" },
      // c1 26 h (orders), c1 26 h (search), c2 3 h, c3 1 h, c4 2 h, c5 27 h, c6 25 h; c7 skewed: median 25 h.
      leadTime: { medianMs: 25 * H, bucket: "high", changes: 7, skewed: 1, withoutCommit: 0 },
      // The failed canary and the search deployment that had an incident, of six.
      changeFailureRate: { value: 0.3333, bucket: "low", failed: 2, deployments: 6 },
      // 5 min (automatic rollback) and 45 min (incident): median 25 min.
      recoveryTime: { medianMs: 25 * MIN, bucket: "elite", recovered: 2, unrecovered: 0 },
    });
    const inOrder = [...r.deployments].sort((a, b) => a.endedAt.localeCompare(b.endedAt) || a.service.localeCompare(b.service));
    expect(inOrder.map((d) => [d.service, d.rollout, d.failed, d.causes.join("+"), d.changes, d.skewed, d.recovery?.ms])).toEqual([
      ["orders", "succeeded", false, "", 1, 0, undefined],
      ["search", "succeeded", false, "", 1, 0, undefined],
      ["orders", "succeeded", false, "", 2, 0, undefined],
      ["search", "succeeded", true, "incident", 1, 0, 45 * MIN],
      ["orders", "failed", true, "rollout", 0, 0, 5 * MIN],
      ["orders", "succeeded", false, "", 2, 1, undefined],
    ]);
    expect(r.weeks.map((w) => [w.week, w.deployments, w.failed, w.medianLeadTimeMs, w.changeFailureRate, w.medianRecoveryMs])).toEqual([
      ["2026-W06", 2, 0, 26 * H, 0, null],
      ["2026-W07", 2, 1, 2 * H, 0.5, 45 * MIN],
      ["2026-W08", 2, 1, 26 * H, 0.5, 5 * MIN],
      ["2026-W09", 0, 0, null, null, null],
    ]);
    expect(r.services.map((s) => [s.service, s.team, s.deployments, s.failed, s.changeFailureRate, s.medianLeadTimeMs, s.medianRecoveryMs])).toEqual([
      ["orders", "commerce", 4, 1, 0.25, 25 * H, 5 * MIN],
      ["search", "web", 2, 1, 0.5, 14 * H, 45 * MIN],
    ]);
  });

  it("scopes to a team and prints the table with buckets, the weeks and CSV", async () => {
    const web = await report(["--team", "web"]);
    expect(web.summary.changeFailureRate).toEqual({ value: 0.5, bucket: "low", failed: 1, deployments: 2 });
    const table = await keelson(["dora", "--service", "orders", "--window", "28d"]);
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(/DORA metrics for service orders, last 28 days/);
    expect(table.out).toMatch(/Deployment frequency\s+0\.11\/day \(0\.8\/week\)\s+high\s+3 successful deployments/);
    expect(table.out).toMatch(/Lead time for changes\s+25\.0 h median\s+high\s+5 changes; 1 skewed/);
    expect(table.out).toMatch(/Change failure rate\s+25%\s+low\s+1 of 4 deployments failed/);
    expect(table.out).toMatch(/Failed-deployment recovery\s+5\.0 min median\s+elite\s+1 recovered/);
    expect(table.out).toMatch(/2026-W09\s+2026-02-23\s+0\s+0\s+no data\s+no data/);
    const csv = await keelson(["dora", "--csv", "--team", "web"]);
    expect(csv.code, csv.err).toBe(0);
    const rows = csv.out.trimEnd().split("\r\n");
    expect(rows).toHaveLength(3);
    expect(rows[2]).toMatch(new RegExp(`^ro-[0-9a-f]{8},search,web,rolling,r-[0-9a-f]{12},r-[0-9a-f]{12},${commits.c4},2026-02-10T08:00:00.000Z,.*,true,incident,.*,2700$`));
  });
});
