// Accessibility of every dashboard view, checked by axe-core (the engine behind Lighthouse's and
// Playwright's accessibility checks) in Debian's Chromium: WCAG 2.1 A and AA rules, color contrast
// included, in the light and the dark color scheme. Each view is visited with real data (a
// one-service project with traffic, a trace, a flag and a deploy), and no violation is allowed.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiFetch, apiToken, makeTempDir, writeOneServiceProject } from "#test-support";
import { chromiumAvailable, logIn, openBrowser, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";

const available = chromiumAvailable();

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[]; failureSummary?: string }>;
}

/** axe's findings on the page as it is now, one line per failing element. */
async function violations(page: Page, axeSource: string): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  if (!(await page.evaluate("typeof window.axe === 'object'"))) await page.evaluate(axeSource);
  const found = (await page.evaluate(
    "axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] }).then(r => r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({ target: n.target, failureSummary: n.failureSummary })) })))",
  )) as AxeViolation[];
  return found.flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact ?? "?"}): ${v.help} at ${n.target.join(" ")}${n.failureSummary ? ` (${n.failureSummary.replace(/\s+/g, " ")})` : ""}`));
}

describe.skipIf(!available).sequential("dashboard accessibility (axe-core, WCAG 2.1 AA)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let axeSource: string;
  let traceId: string | undefined;

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    axeSource = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dashboard-a11y-"));
    const ports = await writeOneServiceProject(dir, {
      project: "a11y",
      top: ["flags:", "  new-banner:", "    state: ENABLED", "    type: release", "    owner: core", "    variants: { on: true, off: false }", "    defaultVariant: off"],
    });
    url = `http://127.0.0.1:${ports.controlPlanePort}`;
    const up = await keelson(["up", dir, "--detach"]);
    expect(up.code, up.stderr).toBe(0);
    // Some traffic (bounded), so the overview, traces and the map have rows to check.
    for (let i = 0; i < 30; i++) await (await fetch(`http://127.0.0.1:${ports.gatewayPort}/api/x${i}`)).arrayBuffer();
    const traces = async () => ((await (await apiFetch(dir, `${url}/v1/traces?service=api&limit=5`)).json()) as { traces: Array<{ traceId: string }> }).traces;
    for (let tries = 0; traceId === undefined && tries < 60; tries++) {
      traceId = (await traces())[0]?.traceId;
      if (traceId === undefined) await new Promise((r) => setTimeout(r, 500));
    }
    expect(traceId, "the gateway exported a trace").toBeDefined();
    browser = await openBrowser();
    page = browser.page;
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("logs in", async () => {
    await logIn(page, url, await apiToken(dir));
  });

  const views: Array<[string, string, () => Promise<unknown>]> = [
    ["overview", "#/", () => page.locator('tr[data-service="api"]').waitFor()],
    ["service", "#/services/api", () => page.getByRole("heading", { name: "api", level: 1 }).waitFor()],
    ["deploys", "#/deploys", () => page.getByRole("heading", { level: 1 }).waitFor()],
    ["traces", "#/traces", () => page.locator(`a[href="#/traces/${traceId!}"]`).first().waitFor()],
    ["trace", "", () => page.getByRole("heading", { level: 1 }).waitFor()],
    ["service map", "#/map", () => page.locator("svg").first().waitFor()],
    ["flags", "#/flags", () => page.getByText("new-banner").first().waitFor()],
    ["flag", "#/flags/new-banner", () => page.getByRole("heading", { name: /new-banner/, level: 1 }).waitFor()],
    ["dora", "#/dora", () => page.getByRole("heading", { level: 1 }).waitFor()],
    ["audit", "#/audit", () => page.getByRole("heading", { level: 1 }).waitFor()],
  ];

  for (const scheme of ["light", "dark"] as const) {
    for (const [name, hash, ready] of views) {
      it(`${name} (${scheme}) has no WCAG 2.1 A/AA violation`, async () => {
        await page.emulateMedia({ colorScheme: scheme });
        await page.evaluate(`location.hash = ${JSON.stringify(hash === "" ? `#/traces/${traceId!}` : hash)}`);
        await ready();
        // Let the view's loads settle (the live data replaces "Loading…").
        await expect.poll(() => page.getByText("Loading…").count(), { timeout: 15_000 }).toBe(0);
        expect(await violations(page, axeSource)).toEqual([]);
      });
    }
  }

  it("finds a planted violation (the check itself works)", async () => {
    // Colors set through the CSSOM: the CSP refuses inline style attributes.
    await page.evaluate(`document.querySelector("main").insertAdjacentHTML("beforeend", '<p id="planted">low contrast</p><input id="unlabelled">');
      Object.assign(document.querySelector("#planted").style, { color: "#777", background: "#888" });`);
    const found = await violations(page, axeSource);
    expect(found.some((v) => v.startsWith("color-contrast") && v.includes("#planted"))).toBe(true);
    expect(found.some((v) => v.startsWith("label") && v.includes("#unlabelled"))).toBe(true);
    await page.evaluate('document.querySelector("#planted").remove(); document.querySelector("#unlabelled").remove()');
  });

  it("the login screen has no violation either", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("API token").waitFor();
    expect(await violations(page, axeSource)).toEqual([]);
  });
});
