// End to end in a real browser against the real example shop (issue #12's test plan): the overview
// lists the six services with their owners and healthy replicas; orders placed through the gateway
// show up as a trace across orders, inventory, payments and notifications, as request rates and as
// edges of the service map; the express-checkout flag is disabled and enabled again with both
// changes in its history; the DORA view shows the four keys. Then a viewer visits every view:
// no button in any of them changes anything, the browsing sends no mutation, and the API refuses
// each mutation to that token with 403. Drives Debian's Chromium; skipped when it is missing.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { StatusReport } from "@keelson/protocol";
import { apiFetch, apiToken, freePort, makeTempDir } from "#test-support";
import { chromiumAvailable, logIn, openBrowser, screenshot, SCREENSHOTS, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";
import { writeShopCopy } from "./shop-copy.js";

const available = chromiumAvailable();

/** The shop's manifest, for the owners, replica counts and flags the dashboard must show. */
interface ShopManifest {
  services: Record<string, { owner: string; replicas: number }>;
  flags: Record<string, { owner: string; type: string; state: string }>;
}
const SHOP = parse(await readFile(join(ROOT, "examples/shop/keelson.yaml"), "utf8")) as ShopManifest;
const SERVICES = ["storefront", "orders", "payments", "inventory", "notifications", "recommendations"];
const FLAG = "express-checkout";
/** Orders placed through the storefront: enough for a trace and the map's edges, few for a 2-core machine. */
const ORDERS = 3;
/** Buttons that only choose, search or show: every other button a viewer can see fails the sweep. */
const READ_ONLY = new Set(["Search", "Filter", "Refresh", "Refresh logs", "Show log", "Hide log", "Follow log", "Show more runs"]);
const SLOW = { timeout: 30_000, interval: 250 };

interface TraceSummary {
  traceId: string;
  services: string[];
}
interface FlagAnswer {
  revision: number;
  flag: { state: string; owner?: string; variants: Record<string, unknown>; defaultVariant: string };
}

describe.skipIf(!available).sequential("the example shop in the dashboard, in Chromium", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let gateway: string;
  /** The trace of one order, found through the API once all its services' spans are stored. */
  let orderTrace: string;

  const api = async <T,>(path: string, init?: RequestInit): Promise<T> => {
    const res = await apiFetch(dir, `${url}${path}`, init);
    expect(res.status, path).toBeLessThan(300);
    return (await res.json()) as T;
  };
  const nav = (name: string) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
  const serviceRow = (name: string) => page.locator(`table.services tr[data-service="${name}"]`);
  const historyItems = () => page.locator("ol.flag-history > li");

  /**
   * The accessible name of every button a user can see in the page's main part, except the
   * waterfall's span rows (they only select a span; counted apart).
   */
  async function buttonsInMain(): Promise<{ names: string[]; spanRows: number }> {
    const names: string[] = [];
    let spanRows = 0;
    for (const button of await page.locator("main").getByRole("button").all()) {
      if (await button.evaluate((el: { closest(selector: string): unknown }) => el.closest("ol.waterfall") !== null)) {
        spanRows++;
        continue;
      }
      // `- button "Deploy orders": Deploy`: the name is the quoted part (YAML escapes, as JSON's).
      const name = /^- button "((?:[^"\\]|\\.)*)"/.exec(await button.ariaSnapshot({ timeout: 10_000 }))?.[1];
      names.push(name === undefined ? "(a button without a name)" : (JSON.parse(`"${name}"`) as string));
    }
    return { names, spanRows };
  }

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dashboard-shop-"));
    const ports = { controlPlane: await freePort(), gateway: await freePort(), admin: await freePort(), mesh: await freePort() };
    url = `http://127.0.0.1:${ports.controlPlane}`;
    gateway = `http://127.0.0.1:${ports.gateway}`;
    await writeShopCopy(dir, ports);
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 360_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    browser = await openBrowser({ width: 1280, height: 800 });
    ({ page } = browser);
  }, 420_000);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("logs in with the admin token and lists the six services with their owners, every replica ready", async () => {
    await logIn(page, url, await apiToken(dir));
    await expect.poll(() => page.getByTestId("principal").textContent(), SLOW).toMatch(/\(admin\)$/);
    await expect.poll(() => page.locator("table.services tbody tr").count(), SLOW).toBe(SERVICES.length);
    expect(Object.keys(SHOP.services).sort()).toEqual([...SERVICES].sort());
    for (const name of SERVICES) {
      const { owner, replicas } = SHOP.services[name]!;
      expect(await serviceRow(name).locator('[data-label="Owner"]').textContent(), name).toBe(owner);
      // The manifest's count (recommendations autoscales from it; nothing loads it yet), all of them ready.
      await expect.poll(() => serviceRow(name).locator(".replicas .count").textContent(), SLOW).toBe(`${replicas}/${replicas}`);
      expect(await serviceRow(name).locator(".replicas").getAttribute("aria-label"), name).toBe(`${replicas} of ${replicas} ready, all ready`);
      expect(await serviceRow(name).locator('[data-label="Release"] code').textContent(), name).toMatch(/^r-[0-9a-f]{10}$/);
    }
  }, 60_000);

  it("shows an order placed through the gateway as one trace across orders, inventory, payments and notifications, and the request rates", async () => {
    // Shoppers look at the shop page (storefront calls inventory and recommendations) and order.
    for (let i = 0; i < ORDERS; i++) expect((await fetch(`${gateway}/`)).status).toBe(200);
    const catalog = (await (await fetch(`${gateway}/api/catalog`)).json()) as { products: Array<{ sku: string; stock: number }> };
    const product = catalog.products.find((p) => p.stock >= ORDERS);
    expect(product).toBeDefined();
    for (let i = 0; i < ORDERS; i++) {
      const res = await fetch(`${gateway}/checkout`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ items: [{ sku: product!.sku, qty: 1 }], card: "4242424242424242", email: "ada@example.com" }),
      });
      expect(res.status).toBe(201);
      expect(((await res.json()) as { status: string }).status).toBe("confirmed");
    }
    // Spans reach the control plane in batches: wait until one order's trace has all its services.
    const want = ["storefront", "orders", "inventory", "payments", "notifications"];
    await expect
      .poll(async () => {
        const { traces } = await api<{ traces: TraceSummary[] }>("/v1/traces?service=orders&since=15m&limit=50");
        orderTrace = traces.find((t) => want.every((s) => t.services.includes(s)))?.traceId ?? "";
        return orderTrace;
      }, SLOW)
      .toMatch(/^[0-9a-f]{32}$/);

    await nav("Traces").click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/traces");
    await page.getByLabel("Service").fill("orders");
    await page.getByRole("button", { name: "Search" }).click();
    await expect.poll(() => browser.requests.some((r) => r.path === "/v1/traces")).toBe(true);
    const row = page.locator(`table.traces tr[data-trace="${orderTrace}"]`);
    await expect.poll(() => row.isVisible(), SLOW).toBe(true);
    expect(Number(await row.locator('[data-field="spans"]').textContent())).toBeGreaterThanOrEqual(want.length);
    expect(await row.locator('[data-field="errors"]').textContent()).toBe("none");
    await row.locator("th a").click();
    await expect.poll(() => page.evaluate("location.hash")).toBe(`#/traces/${orderTrace}`);
    const spans = page.locator("ol.waterfall li");
    await expect.poll(() => spans.count(), SLOW).toBeGreaterThanOrEqual(want.length);
    const services = await page.locator("ol.waterfall li .span-name > span.muted").allTextContents();
    expect(services).toHaveLength(await spans.count());
    expect([...new Set(services)]).toEqual(expect.arrayContaining(want));
    // Orders calls the other three: their spans sit deeper in the tree than orders' first span.
    const indent = async (service: string) =>
      parseFloat(await page.locator("ol.waterfall li .span-name").filter({ has: page.locator("span.muted", { hasText: new RegExp(`^${service}$`) }) }).first().evaluate((el: { style: { paddingLeft: string } }) => el.style.paddingLeft));
    for (const callee of ["inventory", "payments", "notifications"]) expect(await indent(callee), callee).toBeGreaterThan(await indent("orders"));
    expect(await page.locator('[data-field="trace-summary"]').textContent()).toMatch(new RegExp(`^${await spans.count()} spans · `));
    await screenshot(page, "shop-trace");

    // The gateway's request rates count from a series' second scrape (every 10 s): light traffic, in
    // bounded rounds, until the API has a rate for both storefront and orders.
    type RedRow = { labels: Record<string, string>; requestRate: number };
    const rated = async () => {
      const { rows } = await api<{ rows: RedRow[] }>("/v1/metrics?window=5m&by=service");
      return ["storefront", "orders"].every((s) => (rows.find((r) => r.labels.service === s)?.requestRate ?? 0) > 0);
    };
    for (let round = 0; round < 60 && !(await rated()); round++) {
      for (const path of ["/api/catalog", "/api/orders"]) await (await fetch(`${gateway}${path}`)).arrayBuffer();
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(await rated()).toBe(true);
    await page.locator("a.brand").click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/");
    for (const name of ["storefront", "orders"]) {
      await expect.poll(() => serviceRow(name).locator('td[data-field="rate"]').textContent(), { timeout: 45_000 }).toMatch(/^(<0\.01|\d+(\.\d+)?)\/s$/);
      expect(await serviceRow(name).locator('td[data-field="rate"]').textContent()).not.toBe("0/s");
      expect(await serviceRow(name).locator('td[data-field="errors"]').textContent(), name).toMatch(/%$/);
    }
    expect(await page.locator("table.services tbody tr").count()).toBe(SERVICES.length);
    await screenshot(page, "shop-overview");
    // The viewport alone as well (the candidate for docs/images).
    await page.screenshot({ path: join(SCREENSHOTS, "shop-overview-viewport.png") });
    expect(browser.cspViolations).toEqual([]);
  }, 180_000);

  it("draws the shop's calls from those traces on the service map", async () => {
    const edges = ["storefront->orders", "orders->inventory", "orders->payments", "orders->notifications", "storefront->inventory"];
    await expect
      .poll(async () => {
        const map = await api<{ edges: Array<{ from: string; to: string }> }>("/v1/service-map?window=15m");
        return map.edges.map((e) => `${e.from}->${e.to}`);
      }, SLOW)
      .toEqual(expect.arrayContaining(edges));

    await nav("Service map").click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/map");
    const edge = (id: string) => page.locator(`svg.map-svg g.map-edge[data-edge="${id}"]`);
    await expect.poll(() => edge("storefront->orders").count(), SLOW).toBe(1);
    const nodes = (await page.evaluate('[...document.querySelectorAll("svg.map-svg .map-node")].map((e) => e.getAttribute("data-node"))')) as string[];
    expect(nodes).toEqual(expect.arrayContaining(SERVICES));
    for (const id of edges) {
      expect(await edge(id).count(), id).toBe(1);
      expect(await edge(id).getAttribute("data-declaration"), id).toBe("declared");
      const tableRow = page.locator(`table.map-edges-table tr[data-edge="${id}"]`);
      expect(Number(/^\d+/.exec((await tableRow.locator('[data-field="calls"]').textContent()) ?? "")?.[0]), id).toBeGreaterThan(0);
    }
    // Every order went storefront → orders → payments without a failure.
    for (const id of ["storefront->orders", "orders->payments"]) {
      expect(await edge(id).getAttribute("data-bucket"), id).toBe("ok");
      expect(Number(/^\d+/.exec((await page.locator(`table.map-edges-table tr[data-edge="${id}"] [data-field="calls"]`).textContent()) ?? "")?.[0]), id).toBeGreaterThanOrEqual(ORDERS);
    }
    // Nothing the shop's manifest does not declare, apart from requests from outside and the gateway's own.
    const undeclared = (await page.locator('table.map-edges-table tr[data-declaration="undeclared"]').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { edge: string } }).dataset.edge))) as string[];
    expect(undeclared.filter((id) => !id.startsWith("(external)") && !id.includes("keelson-gateway"))).toEqual([]);
    await screenshot(page, "shop-map");
    expect(browser.cspViolations).toEqual([]);
  }, 90_000);

  it(`disables and enables the ${FLAG} flag with a confirmation, and its history shows both changes with their diffs`, async () => {
    const declared = SHOP.flags[FLAG]!;
    await nav("Flags").click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/flags");
    const listed = page.locator(`tr[data-flag="${FLAG}"]`);
    await expect.poll(() => listed.isVisible(), SLOW).toBe(true);
    expect(await listed.locator('[data-field="type"]').textContent()).toBe(declared.type);
    expect(await listed.locator('[data-field="owner"]').textContent()).toBe(declared.owner);
    expect(await listed.locator('[data-field="state"]').textContent()).toBe(declared.state);
    await listed.locator("th a").click();
    await expect.poll(() => page.evaluate("location.hash")).toBe(`#/flags/${FLAG}`);
    await expect.poll(() => page.getByRole("heading", { name: FLAG, level: 1 }).isVisible(), SLOW).toBe(true);
    await expect.poll(() => historyItems().count(), SLOW).toBeGreaterThan(0);
    const before = await historyItems().count();
    expect(await historyItems().first().textContent()).toMatch(/by keelson up/);
    // The admin's page offers the changes: the sweep below finds the same buttons gone for a viewer.
    expect((await buttonsInMain()).names).toEqual(expect.arrayContaining(["Edit", "Disable", "Kill switch", "Refresh"]));

    const state = page.locator('dd[data-field="state"]');
    await page.getByRole("button", { name: "Disable", exact: true }).click();
    expect(await page.getByRole("group", { name: "Confirm: Disable" }).textContent()).toMatch(/Everyone gets classic/);
    await page.getByRole("button", { name: "Confirm disable" }).click();
    await expect.poll(() => state.textContent(), SLOW).toBe("DISABLED");
    expect((await api<FlagAnswer>(`/v1/flags/${FLAG}`)).flag.state).toBe("DISABLED");
    await expect.poll(() => historyItems().count(), SLOW).toBe(before + 1);

    await page.getByRole("button", { name: "Enable", exact: true }).click();
    await page.getByRole("button", { name: "Confirm enable" }).click();
    await expect.poll(() => state.textContent(), SLOW).toBe("ENABLED");
    expect((await api<FlagAnswer>(`/v1/flags/${FLAG}`)).flag.state).toBe("ENABLED");
    await expect.poll(() => historyItems().count(), SLOW).toBe(before + 2);

    // Newest first: the enable, then the disable, each by the admin, each a diff of `state` alone.
    const diff = async (index: number) => {
      const item = historyItems().nth(index);
      return {
        kind: await item.locator(".flag-change-kind").textContent(),
        actor: await item.locator('[data-field="actor"]').textContent(),
        paths: await item.locator("ul.flag-diff > li").evaluateAll((lines) => lines.map((l) => (l as unknown as { dataset: { path: string } }).dataset.path)),
        before: await item.locator('li[data-path="state"] del').textContent(),
        after: await item.locator('li[data-path="state"] ins').textContent(),
      };
    };
    expect(await diff(0)).toEqual({ kind: "Changed", actor: "user:admin", paths: ["state"], before: '"DISABLED"', after: '"ENABLED"' });
    expect(await diff(1)).toEqual({ kind: "Changed", actor: "user:admin", paths: ["state"], before: '"ENABLED"', after: '"DISABLED"' });
    expect(browser.cspViolations).toEqual([]);
  }, 90_000);

  it("shows the project's four keys in the DORA view, as the API computes them", async () => {
    type Bucket = "elite" | "high" | "medium" | "low" | null;
    type Report = {
      counts: { deployments: number; successful: number; failed: number };
      summary: Record<"deploymentFrequency" | "leadTime" | "changeFailureRate" | "recoveryTime", { bucket: Bucket }>;
      services: Array<{ service: string; deployments: number }>;
    };
    const report = await api<Report>("/v1/dora?deployments=false&window=90d");
    // `keelson up` deployed each of the six services once, and nothing failed since.
    expect(report.counts).toMatchObject({ deployments: SERVICES.length, successful: SERVICES.length, failed: 0 });

    await nav("DORA").click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/dora");
    await expect.poll(() => page.getByRole("heading", { name: "DORA and teams · shop", level: 1 }).isVisible(), SLOW).toBe(true);
    const keys = ["deploymentFrequency", "leadTime", "changeFailureRate", "recoveryTime"] as const;
    await expect.poll(() => page.locator(".dora-key").evaluateAll((cards) => cards.map((c) => (c as unknown as { dataset: { key: string } }).dataset.key)), SLOW).toEqual([...keys]);
    expect(await page.locator(".dora-key h3").allTextContents()).toEqual(["Deployment frequency", "Lead time for changes", "Change failure rate", "Time to restore"]);
    const words = { elite: "Elite", high: "High", medium: "Medium", low: "Low" } as const;
    for (const key of keys) {
      const bucket = report.summary[key].bucket;
      expect(await page.locator(`.dora-key[data-key=${key}] [data-field=bucket]`).textContent(), key).toBe(bucket === null ? "No bucket" : words[bucket]);
    }
    expect(await page.locator("[data-field=scope]").textContent()).toMatch(new RegExp(`^The whole project, .*: ${SERVICES.length} deployments \\(${SERVICES.length} successful, 0 failed\\)`));
    expect(await page.locator(".dora-key[data-key=deploymentFrequency] [data-field=value]").textContent()).not.toBe("No data");
    expect(await page.locator(".dora-key[data-key=changeFailureRate] [data-field=value]").textContent()).toBe("0%");
    expect(await page.locator(".dora-key[data-key=changeFailureRate] [data-field=detail]").textContent()).toBe(`0 of ${SERVICES.length} deployments failed`);
    expect((await page.locator("table.dora-services tbody tr").evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { service: string } }).dataset.service))).sort()).toEqual([...SERVICES].sort());
    // A team's deployments are its services' (commerce owns orders and inventory).
    const commerce = Object.values(SHOP.services).filter((s) => s.owner === "commerce").length;
    expect(commerce).toBe(2);
    expect(await page.locator('table.dora-teams tr[data-team="commerce"] [data-field=deployments]').textContent()).toBe(String(commerce));
    expect(browser.cspViolations).toEqual([]);
  }, 60_000);

  it("shows a viewer every view without a button that changes anything; the browsing sends no mutation and the API refuses each with 403", async () => {
    const created = await apiFetch(dir, `${url}/v1/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "shop-viewer", role: "viewer" }) });
    expect(created.status).toBe(201);
    const { token } = (await created.json()) as { token: string };
    await page.getByRole("button", { name: "Log out" }).click();
    await expect.poll(() => page.getByLabel("API token").isVisible(), SLOW).toBe(true);
    const from = browser.requests.length;
    await logIn(page, url, token);
    await expect.poll(() => page.getByTestId("principal").textContent(), SLOW).toBe("shop-viewer (viewer)");
    expect(await nav("Audit").count()).toBe(0);

    const go = async (hash: string) => {
      await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
      await expect.poll(() => page.evaluate("location.hash")).toBe(hash);
    };
    const views: Array<{ hash: string; ready: () => Promise<void>; expect?: string[] }> = [
      { hash: "#/", ready: () => expect.poll(() => page.locator("table.services tbody tr").count(), SLOW).toBe(SERVICES.length) },
      {
        hash: "#/services/orders",
        ready: async () => {
          await expect.poll(() => page.locator("table.replica-table tbody tr").count(), SLOW).toBe(SHOP.services.orders!.replicas);
          await expect.poll(() => page.locator("ul.rules li").count(), SLOW).toBeGreaterThan(0);
          await expect.poll(() => page.locator('[data-field="logs-state"]').textContent(), SLOW).toMatch(/lines of every replica/);
        },
        expect: ["Search"],
      },
      {
        hash: "#/deploys",
        ready: async () => {
          await expect.poll(() => page.locator("[data-service-card]").count(), SLOW).toBe(SERVICES.length);
          await expect.poll(() => page.locator("ol.deploys-runs > li").count(), SLOW).toBeGreaterThanOrEqual(SERVICES.length);
          // Reading a run's log is for everyone.
          await page.getByRole("button", { name: "Show log" }).first().click();
          await expect.poll(() => page.locator(".deploys-log .meta").first().textContent(), SLOW).toMatch(/The run has ended/);
        },
        expect: ["Hide log", "Show log"],
      },
      { hash: "#/traces", ready: () => expect.poll(() => page.locator("table.traces tbody tr").count(), SLOW).toBeGreaterThan(0), expect: ["Search"] },
      {
        hash: `#/traces/${orderTrace}`,
        ready: async () => {
          await expect.poll(() => page.locator("ol.waterfall li").count(), SLOW).toBeGreaterThanOrEqual(5);
          await expect.poll(() => page.locator('[data-field="log-summary"]').isVisible(), SLOW).toBe(true);
        },
        expect: ["Refresh logs"],
      },
      { hash: "#/map", ready: () => expect.poll(() => page.locator('svg.map-svg g.map-edge[data-edge="storefront->orders"]').count(), SLOW).toBe(1), expect: ["Refresh"] },
      { hash: "#/flags", ready: () => expect.poll(() => page.locator(`tr[data-flag="${FLAG}"]`).isVisible(), SLOW).toBe(true) },
      {
        hash: `#/flags/${FLAG}`,
        ready: async () => {
          await expect.poll(() => historyItems().count(), SLOW).toBeGreaterThanOrEqual(3);
          await expect.poll(() => page.locator('[data-field="read-only"]').textContent(), SLOW).toMatch(/admin token or a deployer token of team web/);
          await expect.poll(() => page.locator("#experiment-heading").isVisible(), SLOW).toBe(true);
        },
        expect: ["Refresh"],
      },
      { hash: "#/dora", ready: () => expect.poll(() => page.locator(".dora-key").count(), SLOW).toBe(4) },
      { hash: "#/audit", ready: () => expect.poll(() => page.getByText("Only admins may read the audit log.").isVisible(), SLOW).toBe(true) },
    ];
    for (const view of views) {
      await go(view.hash);
      await view.ready();
      const { names, spanRows } = await buttonsInMain();
      expect(names.filter((n) => !READ_ONLY.has(n)), `buttons on ${view.hash}`).toEqual([]);
      expect(names, `buttons on ${view.hash}`).toEqual(expect.arrayContaining(view.expect ?? []));
      // Only the waterfall has span rows, one per span.
      expect(spanRows, view.hash).toBe(view.hash.startsWith("#/traces/") ? await page.locator("ol.waterfall li").count() : 0);
      expect(await page.locator("main form[method=post], main input[type=submit]").count(), view.hash).toBe(0);
    }

    // Every view loaded through the API, and none of that was a change (the recorder does see
    // changes: the admin's flag toggles are in it, before the viewer logged in).
    expect(browser.requests.slice(0, from).filter((r) => r.method === "PUT").map((r) => r.path)).toContain(`/v1/flags/${FLAG}`);
    const browsed = browser.requests.slice(from);
    const paths = new Set(browsed.map((r) => r.path));
    for (const path of ["/v1/status", "/v1/whoami", "/v1/catalog/services/orders", "/v1/traces", `/v1/traces/${orderTrace}`, "/v1/service-map", "/v1/flags", `/v1/flags/${FLAG}/history`, "/v1/dora"]) expect(paths.has(path), path).toBe(true);
    expect([...paths].some((p) => /^\/v1\/pipelines\/[^/]+\/log$/.test(p))).toBe(true);
    expect(browsed.filter((r) => !["GET", "HEAD", "OPTIONS"].includes(r.method)).map((r) => `${r.method} ${r.path}`)).toEqual([]);
    expect(browser.cspViolations).toEqual([]);
    // Neither did the control plane record any: nothing audited (each change is) for this token.
    type AuditRecord = { action: string; result: string };
    const audited = async () => (await api<{ records: AuditRecord[] }>("/v1/audit?actor=user:shop-viewer&limit=100")).records;
    expect(await audited()).toEqual([]);

    // The API refuses the viewer each change, whatever the page shows: the role check comes before
    // the body is read, and each body is one the endpoint would accept from an admin.
    const flag = await api<FlagAnswer>(`/v1/flags/${FLAG}`);
    const { changes } = await api<{ changes: Array<{ seq: number }> }>(`/v1/flags/${FLAG}/history`);
    const oldest = changes.at(-1)!.seq;
    const statusBefore = await api<StatusReport>("/v1/status");
    const mutations: Array<[string, string, unknown]> = [
      ["POST", "/v1/services/orders/deploy", { wait: false }],
      ["POST", "/v1/services/orders/promote", { full: true }],
      ["POST", "/v1/services/orders/abort", {}],
      ["POST", "/v1/services/orders/rollback", { wait: false }],
      ["POST", "/v1/services/orders/scale", { replicas: 3 }],
      ["POST", "/v1/services/orders/restart", {}],
      ["PUT", `/v1/flags/${FLAG}`, { ...flag.flag, state: "DISABLED" }],
      ["POST", `/v1/flags/${FLAG}/kill`, undefined],
      ["POST", `/v1/flags/${FLAG}/rollback`, { to: oldest }],
      ["POST", "/v1/apply", { wait: false }],
    ];
    for (const [method, path, body] of mutations) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code, `${method} ${path}`).toBe("KEELSON_ERR_FORBIDDEN");
    }
    // Nothing changed, and each refusal is in the audit log.
    expect((await api<FlagAnswer>(`/v1/flags/${FLAG}`)).revision).toBe(flag.revision);
    const statusAfter = await api<StatusReport>("/v1/status");
    const shape = (s: StatusReport) => s.services.map((x) => `${x.name} ${x.release} ${x.replicas.desired}`).sort();
    expect(shape(statusAfter)).toEqual(shape(statusBefore));
    await expect.poll(async () => (await audited()).length, SLOW).toBe(mutations.length);
    expect(new Set((await audited()).map((r) => r.result))).toEqual(new Set(["denied"]));
  }, 240_000);
});
