// `keelson catalog`, `service`, `teams` and `scorecard` in this process against a real control
// plane (memory store and driver, no telemetry): filters, the table and its drift column, one
// service in full with its failing rules and deploys, JSON output, and refused arguments. And how
// drift is marked once traces show calls.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, runCli } from "#test-support";
import { createApiSecurity, createControlPlane, type ControlPlane } from "../api/index.js";
import { saveTeams, type ScorecardReport, type ServiceDetail } from "../catalog/index.js";
import { createReconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { driftMarker, formatService } from "./catalog-commands.js";
import { main } from "./main.js";

const yaml = `project: shop
teams:
  web: { members: [ana, bo], contact: "#shop-web" }
  commerce: { members: [chidi], contact: "#shop-commerce" }
services:
  storefront:
    owner: web
    lifecycle: production
    path: services/storefront
    start: node main.js
    replicas: 0
    readiness: /ready
    slos: [{ name: availability, availability: 99.9 }]
    calls: [orders]
  orders:
    owner: commerce
    description: Places orders.
    lifecycle: experimental
    tags: [pci]
    links: { runbook: docs/orders.md }
    path: services/orders
    start: node main.js
    replicas: 0
`;

describe("keelson catalog, service, teams and scorecard (CLI in process)", () => {
  let cp: ControlPlane;
  let dir: string;
  let store: Store;
  let cleanup: () => Promise<void>;
  const silent = { info() {}, warn() {}, error() {} };

  const keelson = (args: string[]) => runCli(main, [...args, "-C", dir]);

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-catalog-cli-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    const stateDir = join(dir, ".keelson");
    await mkdir(join(dir, "docs"), { recursive: true });
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(dir, "keelson.yaml"), yaml);
    await writeFile(join(dir, "docs", "orders.md"), "# Orders runbook\n");
    store = createMemoryStore();
    const { manifest } = parseManifest(yaml, join(dir, "keelson.yaml"), { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: join(dir, "keelson.yaml"), manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
    await saveTeams(store, "shop", manifest, new Date().toISOString());
    await store.appendEvent({ project: "shop", kind: "rollout.succeeded", actor: "user:ana", subject: "service/orders", details: { strategy: "rolling", to: "r-orders000000" } });
    await store.appendEvent({ project: "shop", kind: "rollout.failed", actor: "reconciler", subject: "service/orders", details: { strategy: "canary", from: "r-orders000000", to: "r-orders111111", why: "error ratio 0.2 above 0.01\nmore" } });
    const security = await createApiSecurity({ store, project: "shop", stateDir });
    const { token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" });
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    cp = createControlPlane({ project: "shop", dir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    const url = await cp.listen("127.0.0.1", 0);
    await writeFile(join(stateDir, "controlplane.json"), JSON.stringify({ pid: process.pid, url, project: "shop" }));
    await writeFile(join(stateDir, "token"), `${token}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await cp.close();
    await store.close();
    await cleanup();
  });

  it("lists the catalog as a table, filtered by team or tag", async () => {
    const all = await keelson(["catalog"]);
    expect(all.code, all.err).toBe(0);
    expect(all.out).toMatch(/^SERVICE +OWNER +LIFECYCLE +RELEASE +READY +SCORE +DRIFT$/m);
    expect(all.out).toMatch(/^orders +commerce +experimental +- +0\/0 +\d+ +\?$/m);
    expect(all.out).toMatch(/^storefront +web +production +/m);
    expect(all.out).toContain("no trace data");
    const pci = await keelson(["catalog", "--tag", "pci"]);
    expect(pci.out).toContain("orders");
    expect(pci.out).not.toContain("storefront");
    const web = await keelson(["catalog", "--team", "web", "--json"]);
    expect((JSON.parse(web.out) as { services: Array<{ name: string }> }).services.map((s) => s.name)).toEqual(["storefront"]);
    const bad = await keelson(["catalog", "--team", "Web!"]);
    expect(bad.code).toBe(2);
    const unknown = await keelson(["catalog", "--team", "nobody"]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain("KEELSON_ERR_NOT_FOUND");
  });

  it("shows one service: owner and contact, links, dependents, failing rules with reasons, recent deploys", async () => {
    const { code, out, err } = await keelson(["service", "orders"]);
    expect(code, err).toBe(0);
    expect(out).toMatch(/^orders {2}\(experimental\) {2}score \d+$/m);
    expect(out).toContain("  Places orders.");
    expect(out).toMatch(/^owner +commerce {2}#shop-commerce$/m);
    expect(out).toMatch(/^links +runbook +\S+docs\/orders\.md$/m);
    expect(out).toMatch(/^called by +storefront +declared$/m);
    expect(out).toContain("✗ Has an SLO: no SLO declared under slos:");
    expect(out).toContain("✗ Has a readiness check: no readiness probe declared");
    expect(out).toContain("✓ Has an owner team: owned by team commerce");
    expect(out).toMatch(/failed r-orders111111 from r-orders000000 \(canary\) {2}reconciler: error ratio 0\.2 above 0\.01$/m);
    expect(out).toMatch(/deployed r-orders000000 \(rolling\) {2}user:ana$/m);
    const json = JSON.parse((await keelson(["service", "orders", "--json"])).out) as ServiceDetail;
    expect(json.scorecardResults.map((r) => r.rule)).toHaveLength(7);
    const missing = await keelson(["service", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('service "nope" does not exist');
  });

  it("lists teams and scorecards, per team too", async () => {
    const teams = await keelson(["teams"]);
    expect(teams.out).toMatch(/^TEAM +MEMBERS +CONTACT +SERVICES +SCORE$/m);
    expect(teams.out).toMatch(/^web +ana, bo +#shop-web +storefront +\d+$/m);
    const card = await keelson(["scorecard"]);
    expect(card.out).toMatch(/^SERVICE +OWNER +SCORE +OWNER-TEAM +SLO +READINESS +TESTS +VULNERABILITIES +FLAGS +DEPLOYED-RECENTLY$/m);
    expect(card.out).toContain("orders: Has an SLO: no SLO declared under slos:");
    expect(card.out).toContain("storefront: Deployed in the last 30 days: no successful rollout recorded");
    const commerce = JSON.parse((await keelson(["scorecard", "--team", "commerce", "--json"])).out) as ScorecardReport;
    expect(commerce.services.map((c) => c.service)).toEqual(["orders"]);
    expect(commerce.teams).toEqual([{ name: "commerce", score: commerce.services[0]?.score, services: 1 }]);
  });
});

describe("drift as the CLI marks it", () => {
  it("marks calls not declared with + and declared calls not seen with -, and says when there is no trace data", () => {
    const deps = (observed: ServiceDetail["dependencies"]["observed"], undeclared: string[], unused: string[]) => ({ dependencies: { declared: [{ service: "payments" }, { service: "inventory" }], observed, undeclared, unused } });
    expect(driftMarker(deps([{ service: "payments", calls: 3, callsPerMinute: 0.2, errorRatio: 0 }, { service: "search", calls: 1, callsPerMinute: 0.07, errorRatio: 1 }], ["search"], ["inventory"]))).toBe("+search -inventory");
    expect(driftMarker(deps([], [], []))).toBe("none");
    expect(driftMarker(deps(undefined, [], []))).toBe("?");
    const detail = {
      name: "orders",
      description: undefined,
      lifecycle: undefined,
      tags: [],
      owner: { team: "ana", declared: false, contact: undefined },
      links: [],
      api: { file: "/x/openapi.yaml", declared: true, exists: false },
      release: "r-1",
      replicas: { desired: 2, ready: 1 },
      ...deps([{ service: "payments", calls: 3, callsPerMinute: 0.2, errorRatio: 0 }, { service: "search", calls: 1, callsPerMinute: 0.07, errorRatio: 1 }], ["search"], ["inventory"]),
      dependents: { declared: [], observed: [{ service: "(external)", calls: 5, callsPerMinute: 0.33, errorRatio: 0 }] },
      scorecard: { score: undefined, passed: 0, failed: 0, unknown: 0, failing: [] },
      scorecardResults: [],
      deploys: [],
      observedWindowSeconds: 900,
    } satisfies ServiceDetail;
    const text = formatService(detail);
    expect(text).toMatch(/^owner +ana \(not a declared team\)$/m);
    expect(text).toMatch(/^api +\/x\/openapi\.yaml \(missing\)$/m);
    expect(text).toMatch(/^calls +payments +✓ 0\.2\/min, 0\.0% errors$/m);
    expect(text).toMatch(/^ +inventory +- declared, not called \(unused\)$/m);
    expect(text).toMatch(/^ +search +\+ called, not declared in calls \(0\.07\/min, 100\.0% errors\)$/m);
    expect(text).toMatch(/^called by +\(external\) +0\.33\/min, 0\.0% errors$/m);
    expect(text).toContain("(observed: traces of the last 15m)");
  });
});
