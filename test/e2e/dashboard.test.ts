// End to end in a real browser: the control plane serves the dashboard at /, a user logs in with
// a token, sees each service's replicas and watches a scale change arrive without reloading.
// Drives Debian's Chromium (`chromium` on PATH) with playwright-core; skipped when it is missing.
import { accessSync, constants, existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiFetch, apiToken, makeTempDir, requireComponent, writeOneServiceProject } from "#test-support";
import { ROOT, keelson } from "./cli.js";

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];
const OUTPUT = join(ROOT, "test-output", "dashboard");

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {}
  }
  return undefined;
}

const chromiumPath = findOnPath("chromium");
const available = requireComponent("Chromium", chromiumPath !== undefined, "no `chromium` on PATH (apt-get install chromium)");

describe.skipIf(!available).sequential("dashboard in Chromium", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let profile: { dir: string; cleanup: () => Promise<void> };
  let context: BrowserContext;
  let page: Page;
  let url: string;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dashboard-"));
    const ports = await writeOneServiceProject(dir, { project: "dash" });
    url = `http://127.0.0.1:${ports.controlPlanePort}`;
    const up = await keelson(["up", dir, "--detach"]);
    expect(up.code, up.stderr).toBe(0);
    profile = await makeTempDir("keelson-chromium-");
    context = await chromium.launchPersistentContext(profile.dir, { executablePath: chromiumPath!, args: CHROMIUM_ARGS, headless: true, viewport: { width: 1280, height: 800 } });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    await mkdir(OUTPUT, { recursive: true });
  }, 180_000);
  afterAll(async () => {
    await context?.close();
    await profile?.cleanup();
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

  it("shows a scale change without a reload", async () => {
    // A marker on the window: a reload would drop it. (Expressions as strings: they run in the page.)
    await page.evaluate("window.keep = 42");
    const res = await apiFetch(dir, `${url}/v1/services/api/scale`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ replicas: 2 }) });
    expect(res.status).toBe(202);
    const count = page.locator('tr[data-service="api"] .replicas .count');
    await expect.poll(() => count.textContent(), { timeout: 30_000 }).toBe("2/2");
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

  it("goes back to the login screen with the reason when the token is revoked", async () => {
    const created = await apiFetch(dir, `${url}/v1/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "dash-viewer", role: "viewer" }) });
    expect(created.status).toBe(201);
    const { token, record } = (await created.json()) as { token: string; record: { id: string } };
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    await expect.poll(() => page.locator('tr[data-service="api"]').isVisible(), { timeout: 15_000 }).toBe(true);
    expect((await apiFetch(dir, `${url}/v1/tokens/${record.id}`, { method: "DELETE" })).status).toBe(200);
    await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 15_000 }).toMatch(/refused your token \(401\)/);
    expect(await page.getByLabel("API token").isVisible()).toBe(true);
    expect(cspViolations).toEqual([]);
  });
});
