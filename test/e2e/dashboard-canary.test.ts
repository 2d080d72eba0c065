// End to end in a real browser: a canary of a broken release, watched on the Service view. Real
// traffic goes through the gateway while `keelson deploy` starts the canary; the rollout panel shows
// the canary's weight while it runs, Promote ends its pause, and the canary analysis rolls it back
// on its own: the panel shows the Failed verdict with its evidence, the reason recorded with the
// rollback, and the per-version charts. The releases (who, when, commit), the logs search (through
// the API) and the autoscaler show real data; a viewer sees no Promote, Abort or Roll back and the
// API refuses them. Drives Debian's Chromium (`chromium` on PATH); skipped when it is missing.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { apiFetch, apiToken, git, makeTempDir, writeOneServiceProject } from "#test-support";
import { chromiumAvailable, logIn, openBrowser, screenshot, SCREENSHOTS, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";

const available = chromiumAvailable();

/** The service: `/ready` answers ok; the broken version fails one request in 25 with a 500 and says so on stderr. */
function serverSource(version: string, broken: boolean): string {
  return `// api ${version}: a dependency-free HTTP server for the dashboard's canary test.
import { createServer } from "node:http";
const VERSION = ${JSON.stringify(version)};
const release = process.env.KEELSON_RELEASE ?? "dev";
let served = 0;
const server = createServer((req, res) => {
  if (req.url === "/ready") { res.end("ok"); return; }
  served++;
  res.setHeader("content-type", "application/json");
  ${
    broken
      ? `if (served % 25 === 0) {
    res.statusCode = 500;
    console.error(\`ERROR deliberately broken release \${release}: \${req.method} \${req.url} answered 500 (\${served} served)\`);
    res.end(JSON.stringify({ error: "deliberately broken release " + release }));
    return;
  }`
      : ""
  }
  if (served % 200 === 1) console.log(\`api \${VERSION} served \${served} requests\`);
  res.end(JSON.stringify({ version: VERSION, release, pid: process.pid }));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log(\`api \${VERSION} listening on \${process.env.PORT} (release \${release})\`));
process.on("SIGTERM", () => { server.close(() => process.exit(0)); server.closeIdleConnections(); });
`;
}

/** A few loops of GET /api/x through the gateway, bounded in count and time; `stop` waits for them. */
function startLoad(url: string, options: { loops?: number; maxRequests?: number; deadlineMs?: number } = {}) {
  const { loops = 3, maxRequests = 30_000, deadlineMs = 240_000 } = options;
  const statuses: number[] = [];
  const t0 = Date.now();
  let stopped = false;
  const more = () => !stopped && statuses.length < maxRequests && Date.now() - t0 < deadlineMs;
  const loop = async () => {
    while (more()) {
      try {
        const res = await fetch(`${url}/api/x`, { signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        statuses.push(res.status);
      } catch {
        statuses.push(0);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const done = Promise.all(Array.from({ length: loops }, loop));
  return {
    statuses,
    async stop() {
      stopped = true;
      await done;
      return statuses;
    },
  };
}

describe.skipIf(!available).sequential("the Service view watches a broken canary roll back", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let gatewayUrl: string;
  let viewerToken: string;
  let canary: string;
  let first: string;
  let commit: string;

  const panel = () => page.locator("section.rollout");
  const phase = () => panel().locator('[data-field="phase"]').textContent();

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dashboard-canary-"));
    const ports = await writeOneServiceProject(dir, {
      project: "canary-ui",
      replicas: 2,
      server: serverSource("v1", false),
      service: [
        "autoscale: { min: 2, max: 3, target: { inflight: 50 }, interval: 1s }",
        "deploy:",
        "  strategy: canary",
        "  drain: 200ms",
        "  analysis: { interval: 1s, duration: 60s, minRequests: 20 }",
        "  steps:",
        "    - setWeight: 25",
        "    - pause: 10m",
        "    - analysis: {}",
        "    - setWeight: 50",
      ],
    });
    url = `http://127.0.0.1:${ports.controlPlanePort}`;
    gatewayUrl = `http://127.0.0.1:${ports.gatewayPort}`;
    // A git repository, so that the broken release is built from a commit the releases list names.
    await writeFile(join(dir, ".gitignore"), ".keelson/\nnode_modules/\n");
    await git(dir, ["init", "-q"]);
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-q", "-m", "api v1"]);
    first = await git(dir, ["rev-parse", "HEAD"]);
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 180_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const created = await apiFetch(dir, `${url}/v1/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "canary-viewer", role: "viewer" }) });
    expect(created.status).toBe(201);
    viewerToken = ((await created.json()) as { token: string }).token;
    browser = await openBrowser();
    page = browser.page;
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("shows the first release: its rollout, releases, replicas, autoscaler and logs", async () => {
    await logIn(page, url, await apiToken(dir));
    await page.evaluate('location.hash = "#/services/api"');
    await expect.poll(() => page.getByRole("heading", { name: "api", level: 1 }).isVisible(), { timeout: 15_000 }).toBe(true);
    await expect.poll(phase, { timeout: 15_000 }).toBe("Succeeded");
    const releases = page.locator("table.releases tbody tr");
    await expect.poll(() => releases.count(), { timeout: 15_000 }).toBe(1);
    expect(await releases.first().locator('[data-field="status"]').textContent()).toBe("live");
    // `up` built a clean working tree: the release names its commit.
    expect(await releases.first().locator('[data-field="commit"]').textContent()).toBe(first.slice(0, 10));
    expect(await releases.first().locator('[data-field="deployed-by"]').textContent()).toMatch(/admin/);
    await expect.poll(() => page.locator("table.replica-table tbody tr").count(), { timeout: 30_000 }).toBe(2);
    // The autoscaler has looked at the service: its bounds and the measure it read.
    await expect.poll(() => page.locator('[data-field="autoscale-summary"]').textContent(), { timeout: 30_000 }).toMatch(/2 replicas \(min 2, max 3\), desired 2/);
    await expect.poll(() => page.locator('.autoscale tr[data-measure="inflight"]').count(), { timeout: 30_000 }).toBe(1);
    // The logs tail follows both replicas.
    await expect.poll(() => page.locator("ol.log-lines li", { hasText: "api v1 listening on" }).count(), { timeout: 15_000 }).toBe(2);
  });

  it("shows the canary with its weight while it runs; a viewer sees no Promote, Abort or Roll back and the API refuses them", async () => {
    const load = startLoad(gatewayUrl);
    onTestFinished(async () => void (await load.stop()));
    await writeFile(join(dir, "services", "api", "server.mjs"), serverSource("v2", true));
    await git(dir, ["commit", "-q", "-am", "api v2: broken on purpose"]);
    commit = await git(dir, ["rev-parse", "HEAD"]);
    const deploy = await keelson(["deploy", "api", "-C", dir, "--commit", commit, "--no-wait"], { timeoutMs: 120_000 });
    expect(deploy.code, deploy.stdout + deploy.stderr).toBe(0);

    // The canary takes its 25% once its replica (and the baseline's) is ready, then pauses.
    await expect.poll(phase, { timeout: 30_000 }).toBe("In progress");
    expect(await panel().getAttribute("data-strategy")).toBe("canary");
    await expect.poll(() => panel().locator('[data-share="canary"] [data-field="weight"]').textContent(), { timeout: 60_000 }).toBe("25%");
    expect(await panel().locator('[data-share="baseline"] [data-field="weight"]').textContent()).toBe("25%");
    expect(await panel().locator('[data-share="stable"] [data-field="weight"]').textContent()).toBe("50%");
    canary = ((await panel().locator('[data-share="canary"] code').getAttribute("title")) ?? "").trim();
    expect(canary).toMatch(/^r-[0-9a-f]{12}$/);
    await expect.poll(() => panel().locator('ol.steps li[data-mark="current"]').textContent(), { timeout: 30_000 }).toMatch(/^Pause 10 min/);
    expect(await panel().locator('ol.steps li[data-mark="done"]').count()).toBe(1);
    await expect.poll(() => page.locator("table.replica-table .role.canary").count(), { timeout: 15_000 }).toBe(1);
    expect(await page.locator("table.replica-table .role.baseline").count()).toBe(1);
    // An admin may promote or abort it.
    await expect.poll(() => page.getByRole("button", { name: "Promote", exact: true }).isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await page.getByRole("button", { name: "Abort" }).isVisible()).toBe(true);
    await screenshot(page, "service-canary-running");

    // A viewer, in another tab: the same rollout, none of the buttons.
    const viewer = await browser.context.newPage();
    viewer.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) browser.cspViolations.push(m.text());
    });
    try {
      await logIn(viewer, url, viewerToken);
      await viewer.evaluate('location.hash = "#/services/api"');
      await expect.poll(() => viewer.locator('section.rollout [data-field="phase"]').textContent(), { timeout: 15_000 }).toBe("In progress");
      await expect.poll(() => viewer.locator('section.rollout [data-share="canary"] [data-field="weight"]').textContent()).toBe("25%");
      await expect.poll(() => viewer.locator("table.releases tbody tr").count(), { timeout: 15_000 }).toBeGreaterThan(0);
      for (const name of ["Promote", "Promote fully", "Abort", "Roll back"]) expect(await viewer.getByRole("button", { name, exact: true }).count(), name).toBe(0);
      await viewer.screenshot({ path: join(SCREENSHOTS, "service-canary-viewer.png"), fullPage: true });
    } finally {
      await viewer.close();
    }
    for (const action of ["promote", "abort", "rollback"]) {
      const refused = await fetch(`${url}/v1/services/api/${action}`, { method: "POST", headers: { authorization: `Bearer ${viewerToken}`, "content-type": "application/json" }, body: "{}" });
      expect(refused.status, action).toBe(403);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("KEELSON_ERR_FORBIDDEN");
    }
    expect(await phase()).toBe("In progress");
  }, 180_000);

  it("Promote ends the pause; the analysis fails the canary and the panel shows the rollback, why, the verdict's evidence and the per-version charts", async () => {
    const load = startLoad(gatewayUrl);
    onTestFinished(async () => void (await load.stop()));
    await page.getByRole("button", { name: "Promote", exact: true }).click();
    await expect.poll(() => panel().locator(".rollout-actions [role=status]").textContent(), { timeout: 15_000 }).toMatch(/^Promoted: the rollout goes on with step 3\./);
    // The analysis under way is charted as it looks (the panel polls while a rollout runs).
    await expect.poll(() => panel().locator('.analysis[data-verdict="Running"], .analysis[data-verdict="Failed"]').count(), { timeout: 30_000 }).toBe(1);

    await expect.poll(phase, { timeout: 90_000 }).toBe("Rolled back");
    const statuses = await load.stop();
    expect(statuses.filter((s) => s === 500).length, "the canary served some requests, and failed them").toBeGreaterThan(0);
    // The reason recorded with the rollback, with the numbers.
    const why = await panel().locator('[data-field="why"]').textContent();
    expect(why).toMatch(/^Why: canary analysis failed: error ratio: canary \d+\.\d+% \([\d.]+\/[\d.]+\) vs baseline 0\.00% \(0\/[\d.]+\); evidence 10\^[\d.]+, fails at 10\^[\d.]+/);
    expect(await panel().locator('[data-field="outcome"] strong').textContent()).toMatch(/^Rolled back to r-[0-9a-f]{10}/);
    // The verdict and its evidence: the numbers per version and the failed check's statistic.
    const failed = panel().locator('.analysis[data-verdict="Failed"]');
    expect(await failed.count()).toBe(1);
    expect(await failed.locator("h4").textContent()).toMatch(/^Step 3: analysis Failed/);
    expect(await failed.locator('[data-field="reason"]').textContent()).toMatch(/^error ratio: canary/);
    expect(Number.parseFloat((await failed.locator('tr[data-version="canary"] [data-field="error-ratio"]').textContent()) ?? "")).toBeGreaterThan(0);
    expect(await failed.locator('tr[data-version="baseline"] [data-field="error-ratio"]').textContent()).toBe("0.00%");
    expect(await failed.locator('li[data-check="error ratio"] .check').textContent()).toBe("FAIL");
    expect(await failed.locator('li[data-check="error ratio"] .detail').textContent()).toMatch(/evidence 10\^[\d.]+, fails at 10\^[\d.]+/);
    expect(await panel().locator('ol.steps li[data-mark="stopped"]').textContent()).toMatch(/^Analysis/);
    // Charts of both versions over the analysis: uPlot's canvases and a legend naming each version.
    const charts = panel().locator(".analysis-charts .chart");
    await expect.poll(() => charts.count()).toBe(2);
    for (const chart of await charts.all()) {
      expect(await chart.locator("canvas").count()).toBeGreaterThan(0);
      const labels = await chart.locator(".u-legend .u-label").allTextContents();
      expect(labels.some((l) => l.startsWith(`canary ${canary.slice(0, 12)}`)), labels.join(", ")).toBe(true);
      expect(labels.some((l) => /^baseline r-[0-9a-f]{10}/.test(l)), labels.join(", ")).toBe(true);
    }
    expect(await panel().getByRole("button", { name: "Abort" }).count()).toBe(0);
    // Traffic is all back on the stable release; the broken one is marked failed in the releases, with its commit and who deployed it.
    await expect.poll(() => panel().locator('[data-share="stable"] [data-field="weight"]').textContent(), { timeout: 15_000 }).toBe("100%");
    const broken = page.locator(`table.releases tr[data-release="${canary}"]`);
    await expect.poll(() => broken.locator('[data-field="status"]').textContent(), { timeout: 15_000 }).toBe("failed");
    expect(await broken.locator('[data-field="commit"]').textContent()).toBe(commit.slice(0, 10));
    expect(await broken.locator('[data-field="deployed-by"]').textContent()).toMatch(/admin/);
    await expect.poll(() => page.locator("table.releases tbody tr").first().getAttribute("data-release")).toBe(canary);
    await screenshot(page, "service-canary-rolled-back");
    // A viewport-sized one too, from the rollout panel down (the candidate for docs/images).
    await panel().evaluate((el: { scrollIntoView(): void }) => el.scrollIntoView());
    await page.screenshot({ path: join(SCREENSHOTS, "service-canary-rolled-back-viewport.png") });
  }, 180_000);

  it("searches the logs through the API: only lines with the text, older ones too", async () => {
    const searched = page.waitForRequest((r) => r.url().includes("/v1/services/api/logs?") && new URL(r.url()).searchParams.get("grep") === "deliberately broken", { timeout: 15_000 });
    await page.getByLabel("Search logs").fill("deliberately broken");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await searched;
    const lines = page.locator("ol.log-lines li");
    await expect.poll(() => lines.count(), { timeout: 15_000 }).toBeGreaterThan(0);
    for (const text of await lines.allTextContents()) expect(text).toMatch(/ERROR deliberately broken release r-[0-9a-f]{12}: GET \/x answered 500/);
    expect(await lines.first().getAttribute("class")).toBe("stderr");
    expect(await page.locator("ol.log-lines mark").first().textContent()).toBe("deliberately broken");
    await page.getByLabel("Search logs").fill("no line says this");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect.poll(() => page.locator('[data-field="logs-empty"]').textContent(), { timeout: 15_000 }).toMatch(/No lines contain “no line says this” yet/);
    expect(await lines.count()).toBe(0);
  });

  it("fits a phone's width, with no Content Security Policy violation", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => panel().isVisible()).toBe(true);
    await expect.poll(() => page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await screenshot(page, "service-canary-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(browser.cspViolations).toEqual([]);
  });
});
