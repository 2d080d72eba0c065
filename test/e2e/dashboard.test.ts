// End to end in a real browser: the control plane serves the dashboard at /, a user logs in with
// a token, sees each service's replicas, watches scale changes arrive over the event stream, opens
// the service view, and finds Roll back only when the token's role may use it; searches traces and
// opens one's waterfall, and reads the audit log (an admin's view only).
// Drives Debian's Chromium (`chromium` on PATH) with playwright-core; skipped when it is missing.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiFetch, apiToken, makeTempDir, writeOneServiceProject } from "#test-support";
import { chromiumAvailable, openBrowser, SCREENSHOTS as OUTPUT, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";

const available = chromiumAvailable();

describe.skipIf(!available).sequential("dashboard in Chromium", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let gatewayPort: number;
  let cspViolations: string[];
  let requests: Browser["requests"];

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dashboard-"));
    const ports = await writeOneServiceProject(dir, { project: "dash" });
    url = `http://127.0.0.1:${ports.controlPlanePort}`;
    gatewayPort = ports.gatewayPort;
    const up = await keelson(["up", dir, "--detach"]);
    expect(up.code, up.stderr).toBe(0);
    browser = await openBrowser();
    ({ page, cspViolations, requests } = browser);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("serves the login form at / without a token, under the dashboard's CSP", async () => {
    const res = await page.goto(`${url}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-security-policy"]).toContain("script-src 'self'");
    await expect.poll(() => page.getByLabel("API token").isVisible()).toBe(true);
    expect(await page.getByRole("button", { name: "Log in" }).isVisible()).toBe(true);
  });

  it("refuses a wrong token with a message", async () => {
    await page.getByLabel("API token").fill("ks_wrong000000000000000000000000000000000000");
    await page.getByRole("button", { name: "Log in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/token was refused/);
    expect(await page.evaluate('sessionStorage.getItem("keelson.token")')).toBeNull();
  });

  it("logs in with the project's token and shows the service with its replicas", async () => {
    await page.getByLabel("API token").fill(await apiToken(dir));
    await page.getByLabel("API token").press("Enter"); // the keyboard works as well as the button
    const row = page.locator('tr[data-service="api"]');
    await expect.poll(() => row.isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await row.locator('[data-label="Owner"]').textContent()).toBe("core");
    expect(await row.locator('[data-label="Routes"]').textContent()).toBe("/api");
    await expect.poll(() => row.locator(".replicas .count").textContent(), { timeout: 15_000 }).toBe("1/1");
    await expect.poll(() => page.locator(".events li").count()).toBeGreaterThan(0);
  });

  it("follows the event stream instead of polling", async () => {
    await expect.poll(() => page.locator(".live.on").isVisible(), { timeout: 10_000 }).toBe(true);
    expect(requests.some((r) => r.path === "/v1/watch/events")).toBe(true);
    // The first slice polled /v1/status every 2 s; now only events (or the 30 s safety poll) reload
    // it. The reload the stream's opening asks for runs within 150 ms: the window starts after it.
    await new Promise((r) => setTimeout(r, 500));
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 2500));
    expect(requests.filter((r) => r.path === "/v1/status" && r.at >= from)).toEqual([]);
  });

  it("shows a scale change without a reload, as the stream reports it", async () => {
    // A marker on the window: a reload would drop it. (Expressions as strings: they run in the page.)
    await page.evaluate("window.keep = 42");
    const res = await apiFetch(dir, `${url}/v1/services/api/scale`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ replicas: 2 }) });
    expect(res.status).toBe(202);
    const count = page.locator('tr[data-service="api"] .replicas .count');
    // Well inside the 30 s safety poll: only the stream can bring it this soon.
    await expect.poll(() => count.textContent(), { timeout: 15_000 }).toBe("2/2");
    expect(await page.evaluate("window.keep")).toBe(42);
    await expect.poll(() => page.locator(".events").textContent(), { timeout: 10_000 }).toMatch(/replica\.ready/);
    // Into test-output only: a test run never changes committed files (docs/images has a copy chosen by hand).
    await page.screenshot({ path: join(OUTPUT, "overview.png"), fullPage: true });
  });

  it("fits a phone's width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.locator('tr[data-service="api"]').isVisible()).toBe(true);
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(OUTPUT, "overview-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it("opens the service view from the overview: replicas, scorecard, deploys, and Roll back for an admin", async () => {
    await page.locator('tr[data-service="api"] a', { hasText: "api" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/services/api");
    await expect.poll(() => page.getByRole("heading", { name: "api", level: 1 }).isVisible()).toBe(true);
    expect(await page.locator('[data-field="owner"]').textContent()).toBe("core");
    const replicas = page.locator("table.replica-table tbody tr");
    await expect.poll(() => replicas.count(), { timeout: 15_000 }).toBe(2);
    for (const row of await replicas.all()) {
      expect(await row.locator('[data-field="state"]').textContent()).toBe("ready");
      expect(await row.locator('[data-field="restarts"]').textContent()).toBe("0");
      expect(await row.locator('[data-field="pid"]').textContent()).toMatch(/^\d+$/);
    }
    await expect.poll(() => page.locator("ul.rules li").count()).toBeGreaterThan(2);
    expect(await page.locator('[data-field="score"]').textContent()).toMatch(/passed, \d+ failed/);
    expect(await page.locator(".deploys li").count()).toBeGreaterThan(0);
    expect(await page.getByTestId("principal").textContent()).toMatch(/\(admin\)/);
    // The admin may roll back; with one release there is nothing to go back to, and the page says why.
    await page.getByRole("button", { name: "Roll back" }).click();
    await page.getByRole("button", { name: "Confirm roll back" }).click();
    await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 15_000 }).toMatch(/no previous release/);
    await page.screenshot({ path: join(OUTPUT, "service.png"), fullPage: true });
  });

  it("shows a scale change on the service view through the stream", async () => {
    const res = await apiFetch(dir, `${url}/v1/services/api/scale`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ replicas: 1 }) });
    expect(res.status).toBe(202);
    await expect.poll(() => page.locator("table.replica-table tbody tr").count(), { timeout: 15_000 }).toBe(1);
    expect(await page.evaluate("location.hash")).toBe("#/services/api");
  });

  it("lists a trace the gateway exported and opens its waterfall, with a span's attributes on selection", async () => {
    // The gateway exports a span per request to the control plane: poll until one is stored.
    const sent = await fetch(`http://127.0.0.1:${gatewayPort}/api/x`);
    expect(sent.status).toBeLessThan(500);
    await expect
      .poll(
        async () => {
          const res = await apiFetch(dir, `${url}/v1/traces?service=keelson-gateway&since=1h`);
          return ((await res.json()) as { traces?: unknown[] }).traces?.length ?? 0;
        },
        { timeout: 15_000, interval: 250 },
      )
      .toBeGreaterThan(0);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Traces" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/traces");
    const rows = page.locator("table.traces tbody tr");
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(await rows.first().locator('[data-field="service"]').textContent()).toBe("keelson-gateway");
    expect(await rows.first().locator('[data-field="spans"]').textContent()).toMatch(/^\d+$/);
    // The search goes through the API's parameters: an unknown service lists nothing.
    await page.getByLabel("Service").fill("no-such-service");
    await page.getByRole("button", { name: "Search" }).click();
    await expect.poll(() => page.getByText("No traces match.").isVisible()).toBe(true);
    await page.getByLabel("Service").fill("keelson-gateway");
    await page.getByRole("button", { name: "Search" }).click();
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(OUTPUT, "traces.png"), fullPage: true });

    await rows.first().locator("th a").click();
    await expect.poll(() => page.evaluate("location.hash")).toMatch(/^#\/traces\/[0-9a-f]{32}$/);
    const spans = page.locator("ol.waterfall li");
    await expect.poll(() => spans.count(), { timeout: 10_000 }).toBeGreaterThan(0);
    // The bar's place and width come through the CSSOM, which the CSP's style-src allows.
    const width = await spans.first().locator(".span-bar").evaluate((el: { style: { width: string } }) => el.style.width);
    expect(width).toMatch(/%$/);
    expect((await spans.first().locator(".span-bar").boundingBox())?.width).toBeGreaterThan(0);
    // Keyboard: focus the row and press Enter to show its attributes.
    await spans.first().locator("button").focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => spans.first().locator("button").getAttribute("aria-pressed")).toBe("true");
    await expect.poll(() => page.locator(".span-details dd[data-attribute]").count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(OUTPUT, "trace-waterfall.png"), fullPage: true });
    expect(cspViolations).toEqual([]);
  });

  it("shows the scale calls in the audit log for an admin, filtered through the API", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/audit");
    const scale = page.locator("table.audit tbody tr", { hasText: "POST /v1/services/:name/scale" });
    await expect.poll(() => scale.count(), { timeout: 10_000 }).toBe(2);
    expect(await scale.first().locator('[data-field="target"]').textContent()).toBe("service/api");
    expect(await scale.first().locator('[data-field="result"]').textContent()).toMatch(/^ok/);
    await page.getByLabel("Action").fill("POST /v1/services/:name/rollback");
    await page.getByRole("button", { name: "Filter" }).click();
    const rows = page.locator("table.audit tbody tr");
    await expect.poll(() => scale.count()).toBe(0);
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    for (const row of await rows.all()) expect(await row.locator('[data-field="action"]').textContent()).toBe("POST /v1/services/:name/rollback");
    await page.screenshot({ path: join(OUTPUT, "audit.png"), fullPage: true });
    await page.locator("a.brand").click();
    await page.locator('tr[data-service="api"] a', { hasText: "api" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/services/api");
  });

  it("goes back to the login screen with the reason when the token is revoked; a viewer sees no Roll back and the API refuses it", async () => {
    const created = await apiFetch(dir, `${url}/v1/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "dash-viewer", role: "viewer" }) });
    expect(created.status).toBe(201);
    const { token, record } = (await created.json()) as { token: string; record: { id: string } };
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    // Still on #/services/api: the viewer sees the service, not the button.
    await expect.poll(() => page.locator("table.replica-table tbody tr").count(), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => page.getByTestId("principal").textContent()).toMatch(/dash-viewer \(viewer\)/);
    expect(await page.getByRole("button", { name: "Roll back" }).count()).toBe(0);
    expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Traces" }).isVisible()).toBe(true);
    expect(await page.getByRole("link", { name: "Audit" }).count()).toBe(0);
    await page.screenshot({ path: join(OUTPUT, "service-viewer.png"), fullPage: true });
    // The API enforces it, whatever the page shows.
    const refused = await fetch(`${url}/v1/services/api/rollback`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("KEELSON_ERR_FORBIDDEN");
    await page.locator(".crumbs a").click();
    await expect.poll(() => page.locator('tr[data-service="api"]').isVisible(), { timeout: 15_000 }).toBe(true);
    expect((await apiFetch(dir, `${url}/v1/tokens/${record.id}`, { method: "DELETE" })).status).toBe(200);
    await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 15_000 }).toMatch(/refused your token \(401\)/);
    expect(await page.getByLabel("API token").isVisible()).toBe(true);
    expect(cspViolations).toEqual([]);
  });
});
