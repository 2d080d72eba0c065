// End to end in a real browser: the Deploys view (#/deploys) of a project in git whose service has a
// build and a test stage and a canary rollout that pauses until promoted. An admin deploys from the
// dashboard and follows the running test stage's log live, sees the run pass, promotes the paused
// canary, sees a failing run's failed and skipped stages, aborts a paused canary and rolls back; a
// viewer sees the runs and logs but no action, and the API refuses the actions to that token.
// Drives Debian's Chromium (`chromium` on PATH) with playwright-core; skipped when it is missing.
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusReport } from "@keelson/protocol";
import { apiFetch, apiServerSource, apiToken, freePort, git, makeTempDir } from "#test-support";
import { chromiumAvailable, logIn, openBrowser, screenshot, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";

const available = chromiumAvailable();
const LONG = 240_000;
/** Pipelines, scans and replica starts on a 2-core machine shared with other suites: generous. */
const SLOW = { timeout: 90_000, interval: 250 };

/** The test stage: waits for the go signal while HOLD_TEST exists, fails while FAIL_TEST does. */
function testStage(gate: string): string {
  return `// Test stage of the Deploys e2e test.
import { existsSync } from "node:fs";
console.log("running the tests");
if (existsSync("HOLD_TEST")) {
  console.log("waiting for the go signal");
  while (!existsSync(${JSON.stringify(gate)})) await new Promise((r) => setTimeout(r, 100));
  console.log("go signal received");
}
if (existsSync("FAIL_TEST")) {
  console.log("1 test failed: FAIL_TEST marker present");
  process.exit(1);
}
console.log("all tests passed");
`;
}

async function writeProject(dir: string, gate: string): Promise<{ url: string }> {
  const [cp, gw, admin, mesh] = [await freePort(), await freePort(), await freePort(), await freePort()];
  await writeFile(
    join(dir, "keelson.yaml"),
    [
      "version: 1",
      "project: deploys",
      `controlPlane: { host: 127.0.0.1, port: ${cp} }`,
      `gateway: { host: 127.0.0.1, port: ${gw}, adminPort: ${admin}, meshPort: ${mesh} }`,
      "services:",
      "  api:",
      "    owner: core",
      "    path: services/api",
      "    start: node server.mjs",
      "    replicas: 1",
      "    readiness: /ready",
      "    routes: [{ path: /api, stripPrefix: true }]",
      "    pipeline:",
      "      stages:",
      "        - { name: build, run: node build.mjs }",
      "        - { name: test, run: node test.mjs }",
      "    deploy: { strategy: canary, drain: 100ms, steps: [{ setWeight: 50 }, { pause: manual }] }",
      "  worker:",
      "    owner: core",
      "    path: services/worker",
      "    start: node server.mjs",
      "    replicas: 1",
      "    readiness: /ready",
      '    pipeline: { stages: [{ name: build, run: "node -e 0" }] }',
      "",
    ].join("\n"),
  );
  await writeFile(join(dir, ".gitignore"), ".keelson/\ngo-signal\n");
  for (const name of ["api", "worker"]) {
    const d = join(dir, "services", name);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, "server.mjs"), apiServerSource({ version: JSON.stringify("v1") }));
    await writeFile(join(d, "package.json"), JSON.stringify({ name, version: "1.0.0", private: true, type: "module" }));
  }
  await writeFile(join(dir, "services", "api", "build.mjs"), 'console.log("building api");\n');
  await writeFile(join(dir, "services", "api", "test.mjs"), testStage(gate));
  await git(dir, ["init", "-q"]);
  await commit(dir, "initial: api and worker");
  return { url: `http://127.0.0.1:${cp}` };
}

async function commit(dir: string, message: string): Promise<void> {
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "-q", "-m", message]);
}

describe.skipIf(!available).sequential("dashboard: the Deploys view in Chromium", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let gate: string;
  let cspViolations: string[];
  /** The release v2 (promoted) and the one a rollback goes to. */
  let promoted = "";

  const api = (path: string, init: RequestInit = {}) => apiFetch(dir, `${url}${path}`, init);
  const status = async () => (await (await api("/v1/status")).json()) as StatusReport;
  const apiService = async () => (await status()).services.find((s) => s.name === "api")!;
  const card = (): Locator => page.locator('[data-service-card="api"]');
  const newestRun = (): Locator => page.locator('li.deploys-run[data-service="api"]').first();
  const stage = (run: Locator, name: string): Locator => run.locator(`[data-stage="${name}"]`);

  async function writeServer(version: string): Promise<void> {
    await writeFile(join(dir, "services", "api", "server.mjs"), apiServerSource({ version: JSON.stringify(version) }));
  }

  /** Clicks one of the card's actions and confirms it. */
  async function confirmAction(label: string, confirm: string): Promise<void> {
    await card().getByRole("button", { name: `${label} api` }).click();
    await expect.poll(() => card().getByRole("button", { name: confirm }).isVisible()).toBe(true);
    // The confirmation has the focus: Enter confirms (the keyboard works as well as the mouse).
    await expect.poll(() => page.evaluate("document.activeElement?.textContent")).toBe(confirm);
    await page.keyboard.press("Enter");
  }

  /** Waits until api's rollout is paused at its manual step. */
  async function pausedRollout(): Promise<void> {
    await expect.poll(async () => (await apiService()).rollout?.phase, SLOW).toBe("paused");
  }

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-deploys-"));
    gate = join(dir, "go-signal");
    ({ url } = await writeProject(dir, gate));
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 180_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    browser = await openBrowser();
    ({ page, cspViolations } = browser);
  }, LONG);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("lists the first runs with their stages, the commit and who ran them; the filter asks the API for one service", async () => {
    await logIn(page, url, await apiToken(dir));
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Deploys" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/deploys");
    await expect.poll(() => page.getByRole("heading", { name: "Deploys", level: 1 }).isVisible()).toBe(true);
    const run = newestRun();
    await expect.poll(() => run.getAttribute("data-status"), SLOW).toBe("succeeded");
    expect(await run.locator('[data-field="status"]').textContent()).toBe("passed");
    for (const name of ["build", "test", "scan"]) expect(await stage(run, name).getAttribute("data-state"), name).toBe("passed");
    const meta = await run.locator(".deploys-run-meta").textContent();
    expect(meta).toContain("“initial: api and worker”");
    expect(meta).toMatch(/up by user:/);
    const release = (await apiService()).release!;
    expect(await card().locator("code").first().getAttribute("title")).toBe(release);

    // Both services' runs in one list; the filter shows one service's, through the API's parameter.
    await expect.poll(() => page.locator('li.deploys-run[data-service="worker"]').count()).toBe(1);
    const asked = page.waitForRequest((r) => r.url().includes("/v1/pipelines?") && r.url().includes("service=worker"));
    await page.getByLabel("Service").selectOption("worker");
    await asked;
    await expect.poll(() => page.locator('li.deploys-run[data-service="api"]').count()).toBe(0);
    expect(await page.locator('li.deploys-run[data-service="worker"]').count()).toBe(1);
    await page.getByLabel("Service").selectOption("");
    await expect.poll(() => page.locator('li.deploys-run[data-service="api"]').count()).toBe(1);
  }, LONG);

  it("deploys from the dashboard and follows the running test stage's log live, without a reload, until the run passes", async () => {
    const before = await newestRun().getAttribute("data-run");
    await writeFile(join(dir, "services", "api", "HOLD_TEST"), "hold the test stage until the go signal\n");
    await writeServer("v2");
    await commit(dir, "api: v2");
    await page.evaluate("window.keep = 42");

    await confirmAction("Deploy", "Confirm deploy");
    await expect.poll(() => card().getByRole("status").textContent(), SLOW).toMatch(/Pipeline run-[\w-]+ of api is running/);
    const run = newestRun();
    await expect.poll(async () => (await run.getAttribute("data-run")) !== before && (await run.getAttribute("data-status")), SLOW).toBe("running");
    await expect.poll(() => stage(run, "test").getAttribute("data-state"), SLOW).toBe("running");
    expect(await stage(run, "build").getAttribute("data-state")).toBe("passed");
    expect(await stage(run, "scan").getAttribute("data-state")).toBe("queued");
    expect(await run.locator(".deploys-run-meta").textContent()).toMatch(/“api: v2”.*dashboard by user:/);

    const toggle = run.getByRole("button", { name: "Follow log" });
    expect(await toggle.getAttribute("aria-expanded")).toBe("false");
    await toggle.click();
    expect(await run.locator(".deploys-log-toggle").getAttribute("aria-expanded")).toBe("true");
    const log = run.getByRole("log");
    await expect.poll(() => log.textContent(), SLOW).toContain("waiting for the go signal");
    // The stage waits for the signal: what the log shows came while it runs.
    expect(await stage(run, "test").getAttribute("data-state")).toBe("running");
    expect(await log.textContent()).not.toMatch(/^go signal received$/m);
    expect(await run.locator(".deploys-log .meta").textContent()).toMatch(/Following the log live/);

    await writeFile(gate, "go\n");
    await expect.poll(() => log.textContent(), SLOW).toMatch(/^go signal received$/m);
    await expect.poll(() => log.textContent(), SLOW).toMatch(/^all tests passed$/m);
    await expect.poll(() => run.getAttribute("data-status"), SLOW).toBe("succeeded");
    for (const name of ["build", "test", "scan"]) expect(await stage(run, name).getAttribute("data-state"), name).toBe("passed");
    await expect.poll(() => run.locator(".deploys-log .meta").textContent(), SLOW).toMatch(/The run has ended/);
    expect(await log.textContent()).toContain("==> stage test: node test.mjs");
    expect(await page.evaluate("window.keep"), "the page was not reloaded").toBe(42);

    // The deploy goes on into the canary, which waits at its manual pause.
    await expect.poll(() => card().getByRole("status").textContent(), SLOW).toMatch(/Deploying api: release [\w-]+ is rolling out/);
    await pausedRollout();
    const rollout = card().locator(".deploys-rollout");
    await expect.poll(() => rollout.getAttribute("data-phase"), SLOW).toBe("paused");
    expect(await rollout.textContent()).toContain("step 2 of 2: pause until promoted");
    expect(await rollout.textContent()).toContain("50% of traffic on the new release");
    expect(await card().getByRole("button", { name: "Deploy api" }).count(), "no deploy while a rollout is under way").toBe(0);
    await screenshot(page, "deploys");
  }, LONG);

  it("promotes the paused canary from the dashboard, and the rollout ends with the new release live", async () => {
    const to = (await apiService()).rollout!.to;
    await confirmAction("Promote", "Confirm promote");
    await expect.poll(() => card().getByRole("status").textContent(), SLOW).toMatch(/Promoted api: rollout ro-[\w-]+ goes on/);
    await expect.poll(async () => (await apiService()).rollout, SLOW).toBeUndefined();
    expect((await apiService()).release).toBe(to);
    const last = (await (await api("/v1/services/api/rollout")).json()) as { rollout: { phase: string; to: string } };
    expect(last.rollout).toMatchObject({ phase: "succeeded", to });
    await expect.poll(() => card().locator(".deploys-rollout").count(), SLOW).toBe(0);
    await expect.poll(() => card().locator("code").first().getAttribute("title"), SLOW).toBe(to);
    promoted = to;
  }, LONG);

  it("shows a failing run's failed stage and the stage it skipped, and the deploy's error", async () => {
    await rm(join(dir, "services", "api", "HOLD_TEST"));
    await writeFile(join(dir, "services", "api", "FAIL_TEST"), "make the test stage fail\n");
    await writeServer("v3-broken");
    await commit(dir, "api: v3 with a failing test");
    const before = await newestRun().getAttribute("data-run");

    await confirmAction("Deploy", "Confirm deploy");
    await expect.poll(() => card().getByRole("alert").textContent(), SLOW).toMatch(/stage "test".*no release was made/);
    const run = newestRun();
    await expect.poll(async () => (await run.getAttribute("data-run")) !== before && (await run.getAttribute("data-status")), SLOW).toBe("failed");
    expect(await run.locator('[data-field="status"]').textContent()).toBe("failed");
    expect(await stage(run, "build").getAttribute("data-state")).toBe("passed");
    expect(await stage(run, "test").getAttribute("data-state")).toBe("failed");
    expect(await stage(run, "scan").getAttribute("data-state")).toBe("skipped");
    expect(await run.locator(".deploys-run-message").textContent()).toMatch(/stage "test"/);
    await run.getByRole("button", { name: "Show log" }).click();
    await expect.poll(() => run.getByRole("log").textContent(), SLOW).toContain("1 test failed: FAIL_TEST marker present");
    expect((await apiService()).release, "no release was made").toBe(promoted);
  }, LONG);

  it("aborts a paused canary from the dashboard: it goes back to the release before it", async () => {
    await rm(join(dir, "services", "api", "FAIL_TEST"));
    await writeServer("v4");
    await commit(dir, "api: v4");
    const res = await api("/v1/services/api/deploy", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ wait: false }) });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/"type":"done"/);
    await pausedRollout();
    await expect.poll(() => card().getByRole("button", { name: "Abort api" }).isVisible(), SLOW).toBe(true);

    await confirmAction("Abort", "Confirm abort");
    await expect.poll(() => card().getByRole("status").textContent(), SLOW).toMatch(new RegExp(`Aborted rollout ro-[\\w-]+ of api: going back to ${promoted.slice(0, 12)}`));
    await expect.poll(async () => (await apiService()).rollout, SLOW).toBeUndefined();
    expect((await apiService()).release).toBe(promoted);
    await expect.poll(() => card().locator(".deploys-rollout").count(), SLOW).toBe(0);
  }, LONG);

  it("rolls back from the dashboard to the previous release", async () => {
    const releases = (await (await api("/v1/services/api/releases")).json()) as { releases: Array<{ id: string; status: string }> };
    const previous = releases.releases.find((r) => r.status === "previous")?.id;
    expect(previous, JSON.stringify(releases.releases)).toBeDefined();
    expect(previous).not.toBe(promoted);
    await confirmAction("Roll back", "Confirm roll back");
    await expect.poll(() => card().getByRole("status").textContent(), SLOW).toBe(`Rolling api back to ${previous!.slice(0, 12)}.`);
    await expect.poll(async () => (await apiService()).release, SLOW).toBe(previous);
    await expect.poll(async () => (await apiService()).rollout, SLOW).toBeUndefined();
    await expect.poll(() => card().locator("code").first().getAttribute("title"), SLOW).toBe(previous);
  }, LONG);

  it("fits a phone's width with a log open", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const run = newestRun();
    if ((await run.locator(".deploys-log-toggle").getAttribute("aria-expanded")) !== "true") await run.locator(".deploys-log-toggle").click();
    await expect.poll(() => run.getByRole("log").textContent(), SLOW).toContain("==> stage");
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await screenshot(page, "deploys-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
  }, LONG);

  it("shows a viewer the rollout, runs and logs but no action, and the API refuses the actions to a viewer", async () => {
    // A canary paused again, so that an admin would see Promote and Abort.
    await writeServer("v5");
    await commit(dir, "api: v5");
    const res = await api("/v1/services/api/deploy", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ wait: false }) });
    expect(await res.text()).toMatch(/"type":"done"/);
    await pausedRollout();
    await expect.poll(() => card().getByRole("button", { name: "Promote api" }).isVisible(), SLOW).toBe(true);

    const created = await api("/v1/tokens", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "deploys-viewer", role: "viewer" }) });
    expect(created.status).toBe(201);
    const { token } = (await created.json()) as { token: string };
    await page.getByRole("button", { name: "Log out" }).click();
    await logIn(page, url, token);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Deploys" }).click();
    await expect.poll(() => page.getByTestId("principal").textContent()).toMatch(/deploys-viewer \(viewer\)/);
    await expect.poll(() => card().locator(".deploys-rollout").getAttribute("data-phase"), SLOW).toBe("paused");
    await expect.poll(() => newestRun().getAttribute("data-status"), SLOW).toBe("succeeded");
    for (const name of ["Promote", "Abort", "Roll back", "Deploy"]) expect(await page.getByRole("button", { name }).count(), name).toBe(0);
    expect(await page.getByRole("group", { name: /^Actions on/ }).count()).toBe(0);
    // Reading is for every role: the viewer opens a log.
    await newestRun().getByRole("button", { name: "Show log" }).click();
    await expect.poll(() => newestRun().getByRole("log").textContent(), SLOW).toContain("all tests passed");
    await screenshot(page, "deploys-viewer");

    // The API enforces it, whatever the page shows.
    for (const path of ["/v1/services/api/promote", "/v1/services/api/abort", "/v1/services/api/rollback", "/v1/services/api/deploy"]) {
      const refused = await fetch(`${url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
      expect(refused.status, path).toBe(403);
      expect(((await refused.json()) as { error: { code: string } }).error.code, path).toBe("KEELSON_ERR_FORBIDDEN");
    }
    expect((await apiService()).rollout?.phase, "the refused calls changed nothing").toBe("paused");
    expect(cspViolations).toEqual([]);
  }, LONG);
});
