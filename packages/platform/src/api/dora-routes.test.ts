// The DORA endpoints through the real control plane: who may read and import, bad queries and
// bodies answered 400 naming the field (and nothing stored), CSV export, and an import that is
// idempotent and changes lead time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { createReconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import type { DoraReport } from "../catalog/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
services:
  orders:
    owner: commerce
    path: orders
    start: node main.js
  search:
    owner: web
    path: search
    start: node main.js
`;

const H = 3_600_000;
const SHA = (c: string) => c.repeat(40);
const NOW = new Date("2026-03-01T00:00:00Z");

describe("DORA endpoints", () => {
  let cp: ControlPlane;
  let url: string;
  let store: Store;
  let cleanup: () => Promise<void>;
  let clock = Date.parse("2026-02-01T00:00:00Z");
  const tokens: Record<"admin" | "commerce" | "web" | "viewer", string> = { admin: "", commerce: "", web: "", viewer: "" };
  const silent = { info() {}, warn() {}, error() {} };

  const call = (method: string, path: string, token: string, body?: unknown) =>
    fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

  /** A successful rolling deployment as the rollout controller records it, at `at`. */
  async function deployed(service: string, id: string, to: string, at: string, commit: string, commitTime: string): Promise<void> {
    clock = Date.parse(at);
    const details = { rollout: id, strategy: "rolling", to, commit, commitTime };
    await store.appendEvent({ project: "shop", kind: "rollout.started", actor: "user:ana", subject: `service/${service}`, details });
    await store.appendEvent({ project: "shop", kind: "rollout.succeeded", actor: "reconciler", subject: `service/${service}`, details: { ...details, servedAt: at } });
  }

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-cp-dora-");
    cleanup = tmp.cleanup;
    store = createMemoryStore({ now: () => clock });
    const { manifest } = parseManifest(yaml, "/tmp/shop/keelson.yaml", { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date(clock).toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
    await deployed("orders", "ro-1", "r-1", "2026-02-10T12:00:00.000Z", SHA("a"), "2026-02-10T10:00:00Z");
    await deployed("search", "ro-2", "s-1", "2026-02-11T12:00:00.000Z", SHA("b"), "2026-02-11T11:00:00Z");
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent });
    const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
    tokens.admin = (await security.tokens.create({ name: "ops", role: "admin", actor: "test" })).token;
    tokens.commerce = (await security.tokens.create({ name: "commerce-ci", role: "deployer", teams: ["commerce"], actor: "test" })).token;
    tokens.web = (await security.tokens.create({ name: "web-ci", role: "deployer", teams: ["web"], actor: "test" })).token;
    tokens.viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, now: () => NOW });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await cp?.close();
    await cleanup?.();
  });

  it("answers the four keys to any token, for the project, a team or a service", async () => {
    const res = await call("GET", "/v1/dora?window=30d", tokens.viewer);
    expect(res.status).toBe(200);
    const report = (await res.json()) as DoraReport;
    // The window starts with the data (the first deployment), not before.
    expect(report.window).toEqual({ days: 30, from: "2026-02-10T12:00:00.000Z", to: "2026-03-01T00:00:00.000Z" });
    expect(report.counts).toMatchObject({ deployments: 2, successful: 2, failed: 0 });
    expect(report.summary.leadTime).toMatchObject({ medianMs: 1.5 * H, bucket: "elite", changes: 2 });
    const web = (await (await call("GET", "/v1/dora?team=web", tokens.viewer)).json()) as DoraReport;
    expect(web.deployments.map((d) => d.id)).toEqual(["ro-2"]);
    const orders = (await (await call("GET", "/v1/dora?service=orders&window=12w", tokens.viewer)).json()) as DoraReport;
    expect(orders.deployments.map((d) => [d.id, d.team])).toEqual([["ro-1", "commerce"]]);
    // Without the deployment list (what the dashboard asks for on every event): the same figures.
    const summary = (await (await call("GET", "/v1/dora?team=web&deployments=false", tokens.viewer)).json()) as Partial<DoraReport>;
    expect(summary).not.toHaveProperty("deployments");
    expect(summary).toEqual({ ...web, deployments: undefined });
    expect(summary.weeks?.reduce((n, w) => n + w.deployments, 0)).toBe(1);
    // A window that ends before anything happened: no data, not zero.
    const early = (await (await call("GET", "/v1/dora?window=1d", tokens.viewer)).json()) as DoraReport;
    expect(early.summary.changeFailureRate).toMatchObject({ value: null, reason: "no deployments in the window" });
  });

  it("refuses bad queries with 400 naming the parameter, and unknown teams or services with 404", async () => {
    const cases: Array<[string, number, RegExp]> = [
      ["/v1/dora?window=90", 400, /^window: expected a window like "90d"/],
      ["/v1/dora?window=0d", 400, /^window:/],
      ["/v1/dora?window=99999d", 400, /^window:.*at most 3650d/],
      ["/v1/dora?format=xml", 400, /^format: expected json or csv, got "xml"/],
      ["/v1/dora?teams=web", 400, /^teams: not a parameter of \/v1\/dora \(parameters: team, service, window, format, deployments\)/],
      ["/v1/dora?deployments=no", 400, /^deployments: expected true or false, got "no"/],
      ["/v1/dora?format=csv&deployments=false", 400, /^deployments: the CSV export is the list of deployments/],
      ["/v1/dora?team=web&team=commerce", 400, /^team: given more than once/],
      ["/v1/dora?team=web&service=orders", 400, /^team, service: give one of them/],
      ["/v1/dora?service=%2e%2e%2f", 400, /^service: expected a service name/],
      ["/v1/dora?team=nobody", 404, /^team: "nobody" owns no service/],
      ["/v1/dora?service=nothing", 404, /^service: "nothing" does not exist/],
      ["/v1/dora/deployments?format=csv", 400, /^format: not a parameter/],
    ];
    for (const [path, status, message] of cases) {
      const res = await call("GET", path, tokens.viewer);
      expect(res.status, path).toBe(status);
      expect((await errorOf(res)).message, path).toMatch(message);
    }
    expect((await fetch(`${url}/v1/dora`)).status).toBe(401);
  });

  it("exports CSV, one row per deployment", async () => {
    const res = await call("GET", "/v1/dora?format=csv&window=30d", tokens.viewer);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="dora-shop-2026-03-01.csv"');
    const lines = (await res.text()).trimEnd().split("\r\n");
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^ro-1,orders,commerce,rolling,r-1,,a{40},2026-02-10T10:00:00Z,/);
  });

  it("lets admins and the owner team's deployers import commits, and no one else", async () => {
    const body = { deployments: [{ id: "ro-1", commit: SHA("a"), commits: [{ sha: SHA("1"), authorTime: "2026-02-09T12:00:00Z" }, { sha: SHA("a"), authorTime: "2026-02-10T10:00:00Z" }] }] };
    expect((await call("POST", "/v1/services/orders/dora/changes", tokens.viewer, body)).status).toBe(403);
    expect((await call("POST", "/v1/services/orders/dora/changes", tokens.web, body)).status).toBe(403);
    const ok = await call("POST", "/v1/services/orders/dora/changes", tokens.commerce, body);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ service: "orders", deployments: 1, commits: 2 });
    // Again: the same document is replaced, not added.
    expect((await call("POST", "/v1/services/orders/dora/changes", tokens.admin, body)).status).toBe(200);
    expect(await store.listDocuments({ collection: "dora.changes", project: "shop" })).toHaveLength(1);
    const report = (await (await call("GET", "/v1/dora?service=orders", tokens.viewer)).json()) as DoraReport;
    // 24 h and 2 h: median 13 h, from the imported commits rather than the head alone.
    expect(report.deployments[0]).toMatchObject({ changes: 2, changeSource: "imported", leadTimeMs: 13 * H });
    const audit = await store.listEvents({ kinds: ["audit"] });
    expect(audit.some((e) => e.details.action === "POST /v1/services/:name/dora/changes" && e.details.status === 403)).toBe(true);
  });

  it("answers a bad import 400 naming the field, and stores nothing of it", async () => {
    const before = await store.listDocuments({ collection: "dora.changes", project: "shop" });
    const good = { id: "ro-1", commits: [{ sha: SHA("c"), authorTime: "2026-02-09T12:00:00Z" }] };
    const cases: Array<[unknown, RegExp]> = [
      [{}, /^deployments: expected a list of deployments, got nothing/],
      [{ deployments: [] }, /^deployments: expected at least one deployment/],
      [{ deployments: [good], extra: 1 }, /^body: Unrecognized key: "extra"/],
      [{ deployments: [{ ...good, commits: [{ sha: SHA("c"), authorTime: "yesterday" }] }] }, /^deployments\[0\]\.commits\[0\]\.authorTime: expected an ISO 8601 time with a zone.*got "yesterday"/],
      [{ deployments: [{ ...good, commits: [{ sha: "abc", authorTime: "2026-02-09T12:00:00Z" }] }] }, /^deployments\[0\]\.commits\[0\]\.sha: expected a commit sha/],
      [{ deployments: [good, { ...good, id: "ro-nope" }] }, /^deployments\[1\]\.id: service "orders" has no finished rollout "ro-nope"/],
      [{ deployments: [{ ...good, id: "ro-2" }] }, /^deployments\[0\]\.id: service "orders" has no finished rollout "ro-2"/],
      [{ deployments: [good, good] }, /^deployments\[1\]\.id: "ro-1" is listed twice/],
      [{ deployments: [{ ...good, commit: SHA("f") }] }, /^deployments\[0\]\.commit: rollout ro-1 deployed a{40}, not f{40}/],
      [{ deployments: [{ ...good, commits: Array.from({ length: 5001 }, () => good.commits[0]) }] }, /^deployments\[0\]\.commits: at most 5000 commits per deployment/],
    ];
    for (const [body, message] of cases) {
      const res = await call("POST", "/v1/services/orders/dora/changes", tokens.admin, body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect((await errorOf(res)).message).toMatch(message);
    }
    const notJson = await fetch(`${url}/v1/services/orders/dora/changes`, { method: "POST", headers: { authorization: `Bearer ${tokens.admin}`, "content-type": "application/json" }, body: "{" });
    expect(notJson.status).toBe(400);
    expect((await call("POST", "/v1/services/nothing/dora/changes", tokens.admin, { deployments: [good] })).status).toBe(404);
    expect(await store.listDocuments({ collection: "dora.changes", project: "shop" })).toEqual(before);
  });
});
