// Shared by the dashboard's browser tests: Debian's Chromium (`chromium` on PATH) driven by
// playwright-core, one private profile per test file, and the login every test starts with.
import { accessSync, constants } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { expect } from "vitest";
import { makeTempDir, requireComponent } from "#test-support";
import { ROOT } from "./cli.js";

export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];
/** Screenshots go here only: a test run never changes committed files (docs/images has copies chosen by hand). */
export const SCREENSHOTS = join(ROOT, "test-output", "dashboard");

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

export const chromiumPath = findOnPath("chromium");

/** Whether the browser suites run (a printed skip otherwise; a failure under KEELSON_REQUIRE_ALL). */
export function chromiumAvailable(): boolean {
  return requireComponent("Chromium", chromiumPath !== undefined, "no `chromium` on PATH (apt-get install chromium)");
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console messages about the Content Security Policy (a test asserts there are none). */
  cspViolations: string[];
  /** Every request the page made, with when. */
  requests: Array<{ at: number; path: string; method: string }>;
  close(): Promise<void>;
}

export async function openBrowser(viewport = { width: 1280, height: 800 }): Promise<Browser> {
  const profile = await makeTempDir("keelson-chromium-");
  const context = await chromium.launchPersistentContext(profile.dir, { executablePath: chromiumPath!, args: CHROMIUM_ARGS, headless: true, viewport });
  const page = context.pages()[0] ?? (await context.newPage());
  const cspViolations: string[] = [];
  const requests: Browser["requests"] = [];
  page.on("request", (r) => requests.push({ at: Date.now(), path: new URL(r.url()).pathname, method: r.method() }));
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  await mkdir(SCREENSHOTS, { recursive: true });
  return {
    context,
    page,
    cspViolations,
    requests,
    async close() {
      await context.close();
      await profile.cleanup();
    },
  };
}

/** Opens the dashboard at `url` and logs in with `token`; resolves once the header shows the stream is live. */
export async function logIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/#/`);
  // Whoever was logged in in this tab is forgotten; the reload starts the app at its login screen
  // (a goto that only changes the hash would not reload the page).
  await page.evaluate('sessionStorage.removeItem("keelson.token")');
  await page.reload();
  await expect.poll(() => page.getByLabel("API token").isVisible(), { timeout: 15_000 }).toBe(true);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect.poll(() => page.locator(".live.on").isVisible(), { timeout: 15_000 }).toBe(true);
}

/** A full-page screenshot into test-output/dashboard/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
