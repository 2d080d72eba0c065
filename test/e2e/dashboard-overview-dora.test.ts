// End to end in a real browser: the overview's traffic columns (request rate, error ratio, p99,
// error budget) from real requests through the gateway, the incident the SLO raises and a canary
// paused for approval; then the DORA view's four keys with their buckets after real deploys, a
// promotion and a rollback, per team and per service. Phone width, the CSP, and a viewer's page.
// Drives Debian's Chromium (`chromium` on PATH) with playwright-core; skipped when it is missing.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiFetch, apiToken, git, makeTempDir, useGitTestEnv, writeOneServiceProject } from "#test-support";
import { chromiumAvailable, logIn, openBrowser, screenshot, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";

const available = chromiumAvailable();
useGitTestEnv();

/** Answers `/fail…` with a 500 (the error ratio and the SLO's incident), anything else 200 with its version. */
function server(version: string): string {
  return `
import { createServer } from "node:http";
const server = createServer((req, res) => {
  if (req.url === "/ready") { res.end("ok"); return; }
  res.setHeader("content-type", "application/json");
  if (req.url.startsWith("/fail")) res.statusCode = 500;
  res.end(JSON.stringify({ pid: process.pid, version: ${JSON.stringify(version)} }));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;
}

interface RedRow {
  labels: Record<string, string>;
  requestRate: number;
  errorRatio?: number;
  p99?: number;
}

type Bucket = "elite" | "high" | "medium" | "low" | null;
interface DoraSummary {
  counts: { deployments: number; successful: number; failed: number };
  summary: Record<"deploymentFrequency" | "leadTime" | "changeFailureRate" | "recoveryTime", { bucket: Bucket }>;
  weeks: Array<{ deployments: number }>;
  services: Array<{ service: string; deployments: number }>;
}

describe.skipIf(!available).sequential("dashboard overview metrics and DORA view in Chromium", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let gatewayPort: number;
  /** Every URL the page asked for, with its query. */
  const urls: string[] = [];

  const api = async <T,>(path: string, init?: RequestInit): Promise<T> => {
    const res = await apiFetch(dir, `${url}${path}`, init);
    expect(res.status, path).toBeLessThan(300);
    return (await res.json()) as T;
  };
  const row = () => page.locator('table.services tr[data-service="api"]');
  const cell = (field: string) => row().locator(`td[data-field="${field}"]`);
  /** The whole page fits the viewport's width: no horizontal scrolling. */
  const pageWidth = () => page.evaluate("document.documentElement.scrollWidth") as Promise<number>;

  /** A commit of everything but the state folder, so that releases carry a commit and its time (DORA lead time). */
  async function commitAll(message: string): Promise<void> {
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-q", "-m", message]);
  }

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dash-dora-"));
    const ports = await writeOneServiceProject(dir, {
      project: "dora",
      server: server("v1"),
      service: ["slos: [{ name: avail, availability: 99, window: 1h }]", "deploy: { strategy: canary, drain: 0, steps: [{ setWeight: 50 }, { pause: manual }] }"],
    });
    url = `http://127.0.0.1:${ports.controlPlanePort}`;
    gatewayPort = ports.gatewayPort;
    await writeFile(join(dir, ".gitignore"), ".keelson/\n");
    await git(dir, ["init", "-q"]);
    await commitAll("api v1");
    const up = await keelson(["up", dir, "--detach"]);
    expect(up.code, up.stderr).toBe(0);
    browser = await openBrowser();
    ({ page } = browser);
    page.on("request", (r) => urls.push(r.url()));
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("shows the request rate, error ratio, p99 and error budget of real gateway traffic", async () => {
    // One request in five fails. The metric store counts a series from its second scrape (every
    // 10 s), so traffic goes on, in bounded rounds, until the API's RED row has all three figures.
    let red: RedRow | undefined;
    for (let round = 0; round < 60 && !(red && red.requestRate > 0 && (red.errorRatio ?? 0) > 0 && red.p99 !== undefined); round++) {
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`http://127.0.0.1:${gatewayPort}/api/${i % 5 === 4 ? "fail" : "ok"}`);
        await res.arrayBuffer();
      }
      await new Promise((r) => setTimeout(r, 1000));
      red = (await api<{ rows: RedRow[] }>("/v1/metrics?window=5m&by=service")).rows.find((r) => r.labels.service === "api");
    }
    expect(red?.requestRate).toBeGreaterThan(0);
    expect(red?.errorRatio).toBeGreaterThan(0);

    await logIn(page, url, await apiToken(dir));
    await expect.poll(() => row().isVisible(), { timeout: 15_000 }).toBe(true);
    // The overview loaded after the traffic: the figures are there at once (else within the 30 s safety poll).
    await expect.poll(() => cell("rate").textContent(), { timeout: 45_000 }).toMatch(/^(<?\d+(\.\d+)?)\/s$/);
    expect(await cell("errors").textContent()).toMatch(/^\d+(\.\d+)?%$/);
    expect(await cell("errors").textContent()).not.toBe("0%");
    expect(await cell("p99").textContent()).toMatch(/^(<1 ms|\d+ ms|\d+(\.\d+)? s)$/);
    // 20% errors against a 1% budget: spent, and overspent.
    expect(await cell("budget").textContent()).toMatch(/^exhausted/);
    expect(await cell("errors").getAttribute("class")).toContain("tone-bad");
    // The columns the overview had stay as they were.
    expect(await row().locator('[data-label="Owner"]').textContent()).toBe("core");
    expect(await row().locator(".replicas .count").textContent()).toBe("1/1");
    await expect.poll(() => page.locator("[data-section=rollouts]").textContent()).toContain("No rollouts under way.");
  }, 120_000);

  it("lists the incident the SLO's burn rate opens, with a badge on the service, as the event stream reports it", async () => {
    // The incident monitor evaluates every 30 s.
    await expect
      .poll(async () => (await api<{ open: unknown[] }>("/v1/incidents")).open.length, { timeout: 120_000, interval: 2000 })
      .toBeGreaterThan(0);
    const incident = page.locator('[data-section=incidents] li[data-incident="api"]');
    await expect.poll(() => incident.isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await incident.textContent()).toMatch(/Page.*avail: availability 99% over 1h: burning its error budget/);
    expect(await row().locator('[data-badge="incident"]').textContent()).toBe("incident");
  }, 180_000);

  it("lists a canary paused for approval under rollouts under way, and drops it once promoted", async () => {
    await writeFile(join(dir, "services", "api", "server.mjs"), server("v2"));
    await commitAll("api v2");
    const deploy = await keelson(["deploy", "api", "-C", dir], { timeoutMs: 180_000 });
    expect(deploy.code, deploy.stderr + deploy.stdout).toBe(0);
    const rollout = page.locator('[data-section=rollouts] li[data-rollout="api"]');
    // The rollout.paused event reloads the overview (it may show the canary's earlier step first).
    await expect.poll(() => rollout.textContent(), { timeout: 15_000 }).toMatch(/Canary paused at step 2 of 2, 50% of traffic on the new release/);
    expect(await row().locator('[data-badge="rollout"]').textContent()).toBe("rollout paused");
    // Few requests per reload, whatever the number of services: no per-service rollout calls.
    expect(browser.requests.filter((r) => /^\/v1\/services\/[^/]+\/rollout$/.test(r.path))).toEqual([]);
    expect(browser.requests.some((r) => r.path === "/v1/metrics")).toBe(true);
    await screenshot(page, "overview-metrics");

    const promote = await keelson(["promote", "api", "-C", dir, "--full"]);
    expect(promote.code, promote.stderr).toBe(0);
    await expect.poll(() => page.locator("[data-section=rollouts]").textContent(), { timeout: 60_000 }).toContain("No rollouts under way.");
    expect(await row().locator('[data-badge="rollout"]').count()).toBe(0);
  }, 240_000);

  it("fits a phone's width on the overview, each service a card with its figures labelled", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => row().isVisible()).toBe(true);
    expect(await pageWidth()).toBeLessThanOrEqual(390);
    // The header row is hidden at phone width: each cell names its column itself.
    expect(await page.evaluate(`getComputedStyle(document.querySelector('tr[data-service="api"] td[data-field="p99"]'), "::before").content`)).toBe('"p99: "');
    await screenshot(page, "overview-metrics-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it("shows the four keys with the API's buckets after real deploys, the weekly trends, and each service and team", async () => {
    // The canary went live; rolling it back makes it a failed deployment that recovered (time to restore).
    const rollback = await keelson(["rollback", "api", "-C", dir], { timeoutMs: 180_000 });
    expect(rollback.code, rollback.stderr + rollback.stdout).toBe(0);
    await expect.poll(async () => (await api<DoraSummary>("/v1/dora?deployments=false")).summary.recoveryTime.bucket, { timeout: 30_000 }).not.toBeNull();
    const report = await api<DoraSummary>("/v1/dora?deployments=false");
    // `keelson up` and the canary: two deployments, both failed since (the incident, the rollback).
    expect(report.counts).toMatchObject({ deployments: 2, successful: 2, failed: 2 });

    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "DORA" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/dora");
    await expect.poll(() => page.getByRole("heading", { name: /DORA and teams/, level: 1 }).isVisible()).toBe(true);
    const cards = page.locator(".dora-key");
    await expect.poll(() => cards.count(), { timeout: 15_000 }).toBe(4);
    const words = { elite: "Elite", high: "High", medium: "Medium", low: "Low" } as const;
    for (const key of ["deploymentFrequency", "leadTime", "changeFailureRate", "recoveryTime"] as const) {
      const bucket = report.summary[key].bucket;
      expect(bucket, key).not.toBeNull();
      expect(await page.locator(`.dora-key[data-key=${key}] [data-field=bucket]`).textContent(), key).toBe(words[bucket!]);
      expect(await page.locator(`.dora-key[data-key=${key}] [data-field=value]`).textContent(), key).not.toBe("No data");
    }
    expect(await page.locator(".dora-key[data-key=changeFailureRate] [data-field=value]").textContent()).toBe("100%");
    expect(await page.locator(".dora-key[data-key=changeFailureRate] [data-field=detail]").textContent()).toBe("2 of 2 deployments failed");

    // Four weekly charts, drawn by uPlot on canvases (the CSP allows no inline styles: uPlot sets them through the CSSOM).
    await expect.poll(() => page.locator(".dora-charts .chart canvas").count()).toBe(4);
    const weeks = page.locator("table.dora-weeks-table tbody tr");
    expect(await weeks.count()).toBe(report.weeks.length);
    await page.getByText("The weekly figures as a table").click();
    let weekly = 0;
    for (const week of await weeks.all()) weekly += Number(await week.locator("td").first().textContent());
    expect(weekly).toBe(2);
    expect(await page.locator('table.dora-services tr[data-service="api"] [data-field=deployments]').textContent()).toBe("2");
    expect(await page.locator('table.dora-teams tr[data-team="core"] [data-field=deployments]').textContent()).toBe("2");
    await screenshot(page, "dora");

    // Per team and per service: the selector asks the API for that scope.
    await page.getByLabel("Scope").selectOption("team:core");
    await expect.poll(() => page.locator("[data-field=scope]").textContent(), { timeout: 15_000 }).toMatch(/^Team core, .*: 2 deployments/);
    expect(await page.locator("table.dora-teams").count()).toBe(0);
    await page.getByLabel("Scope").selectOption("service:api");
    await expect.poll(() => page.locator("[data-field=scope]").textContent(), { timeout: 15_000 }).toMatch(/^Service api, .*: 2 deployments/);
    await page.getByLabel("Window").selectOption("30d");
    // The previous report stays, marked busy, until the new window's arrives.
    await expect.poll(() => urls.some((u) => /\/v1\/dora\?.*window=30d/.test(u))).toBe(true);
    await expect.poll(() => page.locator(".dora-stale").count(), { timeout: 15_000 }).toBe(0);
    expect(await page.locator(".dora-key").count()).toBe(4);
    expect(await page.locator(".dora-key[data-key=recoveryTime] [data-field=bucket]").textContent()).toBe(words[report.summary.recoveryTime.bucket!]);
    await page.getByLabel("Scope").selectOption("all");
    await expect.poll(() => page.locator("[data-field=scope]").textContent(), { timeout: 15_000 }).toMatch(/^The whole project/);
  }, 240_000);

  it("asks for the DORA report without its deployment list, per scope", async () => {
    const doraCalls = urls.filter((u) => new URL(u).pathname === "/v1/dora");
    expect(doraCalls.length).toBeGreaterThan(0);
    for (const call of doraCalls) expect(new URL(call).searchParams.get("deployments")).toBe("false");
    const scopes = new Set(doraCalls.map((c) => new URL(c).searchParams.get("team") ?? new URL(c).searchParams.get("service") ?? "all"));
    expect([...scopes].sort()).toEqual(["all", "api", "core"]);
  });

  it("fits a phone's width on the DORA view", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.locator(".dora-key").count()).toBe(4);
    await expect.poll(() => pageWidth()).toBeLessThanOrEqual(390);
    await screenshot(page, "dora-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(browser.cspViolations).toEqual([]);
  });

  it("shows a viewer the same figures with no control that changes anything", async () => {
    const created = await apiFetch(dir, `${url}/v1/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "dora-viewer", role: "viewer" }) });
    expect(created.status).toBe(201);
    const { token } = (await created.json()) as { token: string };
    await page.getByRole("button", { name: "Log out" }).click();
    await logIn(page, url, token);
    await expect.poll(() => page.getByTestId("principal").textContent(), { timeout: 15_000 }).toMatch(/dora-viewer \(viewer\)/);
    await expect.poll(() => row().isVisible(), { timeout: 15_000 }).toBe(true);
    await expect.poll(() => cell("rate").textContent(), { timeout: 45_000 }).toMatch(/\/s$/);
    await expect.poll(() => page.locator('[data-section=incidents] li[data-incident="api"]').count()).toBe(1);
    // Nothing in the page's main part acts: no buttons, no forms that post.
    expect(await page.locator("main button, main form[method=post], main input[type=submit]").count()).toBe(0);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "DORA" }).click();
    await expect.poll(() => page.locator(".dora-key").count(), { timeout: 15_000 }).toBe(4);
    expect(await page.locator("main button, main form[method=post], main input[type=submit]").count()).toBe(0);
    // Its only controls choose what is shown.
    expect(await page.locator("main select").count()).toBe(2);
    await screenshot(page, "dora-viewer");
    // The API refuses the viewer what the page does not offer.
    const refused = await fetch(`${url}/v1/services/api/promote`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
    expect(refused.status).toBe(403);
    expect(browser.cspViolations).toEqual([]);
  }, 90_000);
});
