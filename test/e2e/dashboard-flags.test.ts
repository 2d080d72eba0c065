// The dashboard's Flags views end to end in Chromium, against the real `keelson` binary: the list
// with its filter; a flag's editor refusing bad targeting with the API's error beside the field
// (and nothing changed), saving a good edit that shows in the history with its diff; Disable and
// Enable; the kill switch (checked through OFREP); rolling back from the history; experiment
// results with counts, lift and its interval from events posted to the API, and the sample ratio
// warning; a viewer who gets no controls and a 403 from the API; no CSP violations; phone width.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiFetch, apiToken, makeTempDir, writeOneServiceProject } from "#test-support";
import { chromiumAvailable, logIn, openBrowser, screenshot, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";

const available = chromiumAvailable();

/** The manifest's flag: declared, so `keelson up` sets it. */
const MANIFEST_FLAGS = [
  "flags:",
  "  new-checkout:",
  "    state: ENABLED",
  "    type: release",
  "    owner: core",
  "    description: The one-page checkout",
  "    variants: { on: true, off: false }",
  '    defaultVariant: "off"',
  '    safeVariant: "off"',
  '    targeting: { if: [{ ends_with: [{ var: email }, "@shop.test"] }, "on", "off"] }',
];

const experiment = (owner: string) => ({ state: "ENABLED", type: "experiment", owner, variants: { on: true, off: false }, defaultVariant: "off", targeting: { fractional: [["on", 50], ["off", 50]] } });

interface FlagAnswer {
  revision: number;
  declared?: boolean;
  flag: { state: string; defaultVariant: string; targeting?: unknown; metadata?: Record<string, unknown> };
}

describe.skipIf(!available).sequential("dashboard flags and experiments in Chromium", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let cspViolations: string[];
  let requests: Browser["requests"];

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await apiFetch(dir, `${url}${path}`, { method, headers: { "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    return { status: res.status, body: (text === "" ? undefined : JSON.parse(text)) as unknown };
  };
  const getFlag = async (key: string) => (await api("GET", `/v1/flags/${key}`)).body as FlagAnswer;
  const historyItems = () => page.locator("ol.flag-history > li");

  beforeAll(async () => {
    expect(existsSync(join(ROOT, "packages/dashboard/dist/index.html")), "the dashboard is built (npm run build)").toBe(true);
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dashboard-flags-"));
    const ports = await writeOneServiceProject(dir, { project: "flagdash", top: MANIFEST_FLAGS });
    url = `http://127.0.0.1:${ports.controlPlanePort}`;
    const up = await keelson(["up", dir, "--detach"]);
    expect(up.code, up.stderr).toBe(0);
    // Flags managed live, next to the declared one.
    expect((await api("PUT", "/v1/flags/banner", { state: "ENABLED", type: "operational", owner: "core", variants: { plain: "Welcome", sale: "20% off" }, defaultVariant: "plain" })).status).toBe(200);
    expect((await api("PUT", "/v1/flags/pay-experiment", experiment("core"))).status).toBe(200);
    expect((await api("PUT", "/v1/flags/skewed-experiment", experiment("core"))).status).toBe(200);
    browser = await openBrowser();
    ({ page, cspViolations, requests } = browser);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("lists every flag with type, owner, state and default variant, and filters them in the page", async () => {
    await logIn(page, url, await apiToken(dir));
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Flags" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/flags");
    const rows = page.locator("table.flag-table tbody tr");
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(4);
    const checkout = page.locator('tr[data-flag="new-checkout"]');
    expect(await checkout.locator('[data-field="type"]').textContent()).toBe("release");
    expect(await checkout.locator('[data-field="owner"]').textContent()).toBe("core");
    expect(await checkout.locator('[data-field="state"]').textContent()).toBe("ENABLED");
    expect(await checkout.locator('[data-field="default"]').textContent()).toBe("off = false");
    expect(await checkout.locator("th").textContent()).toContain("The one-page checkout");
    expect(await page.locator('tr[data-flag="banner"] [data-field="default"]').textContent()).toBe('plain = "Welcome"');
    expect(await checkout.locator('[data-field="stale"]').textContent()).toBe("no");

    await page.getByRole("searchbox", { name: "Filter" }).fill("experiment");
    await expect.poll(() => rows.count()).toBe(2);
    expect(await page.getByTestId("flag-count").textContent()).toBe("2 of 4 flags");
    await page.getByRole("searchbox", { name: "Filter" }).fill("no-such-flag");
    await expect.poll(() => page.getByText("No flags match.").isVisible()).toBe(true);
    await page.getByRole("searchbox", { name: "Filter" }).fill("");
    await expect.poll(() => rows.count()).toBe(4);
    await screenshot(page, "flags");
  });

  it("shows the definition of a flag declared in keelson.yaml, with its history", async () => {
    await page.locator('tr[data-flag="new-checkout"] a').click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/flags/new-checkout");
    await expect.poll(() => page.getByRole("heading", { name: "new-checkout", level: 1 }).isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await page.locator('[data-field="managed"]').textContent()).toBe("in keelson.yaml");
    expect(await page.locator('p[data-field="declared"]').textContent()).toMatch(/keelson up/);
    expect(await page.locator('pre[data-field="targeting"]').textContent()).toContain('"ends_with"');
    await expect.poll(() => historyItems().count()).toBe(1);
    expect(await historyItems().first().textContent()).toMatch(/Created by keelson up/);
  });

  it("refuses invalid JSON in the browser and unknown JsonLogic at the API, beside the targeting field, and changes nothing", async () => {
    const before = await getFlag("new-checkout");
    await page.getByRole("button", { name: "Edit" }).click();
    const targeting = page.getByLabel("Targeting (JsonLogic)");
    await expect.poll(() => targeting.isVisible()).toBe(true);
    const errors = page.locator('[data-error-for="targeting"]');

    // Bad JSON never leaves the browser.
    const puts = () => requests.filter((r) => r.method === "PUT" && r.path === "/v1/flags/new-checkout").length;
    await targeting.fill('{"if": [');
    await page.getByRole("button", { name: "Save flag" }).click();
    await expect.poll(() => errors.textContent()).toMatch(/not valid JSON at line 1, column 9/);
    expect(puts()).toBe(0);

    // Valid JSON, unknown operator: the API's issue, with its path, at the field.
    await targeting.fill('{"if": [{"bogus": [{"var": "email"}]}, "on", "off"]}');
    await page.getByRole("button", { name: "Save flag" }).click();
    await expect.poll(() => errors.textContent(), { timeout: 10_000 }).toContain('targeting.if.0.bogus: unknown operator "bogus"');
    expect(puts()).toBe(1);
    expect(await targeting.getAttribute("aria-invalid")).toBe("true");
    expect(await page.getByRole("alert").first().textContent()).toMatch(/Not saved: 1 problem \(shown beside the fields\)\. Nothing changed\./);
    // The focus went to the field with the problem.
    expect(await page.evaluate("document.activeElement?.id")).toBe("flag-edit-targeting");
    await screenshot(page, "flag-edit-error");
    const after = await getFlag("new-checkout");
    expect(after.revision).toBe(before.revision);
    expect(after.flag).toEqual(before.flag);
    expect(await historyItems().count()).toBe(1);
  });

  it("saves a valid edit, which shows in the history with its diff", async () => {
    await page.getByLabel("Targeting (JsonLogic)").fill('{"if": [{"starts_with": [{"var": "email"}, "qa-"]}, "on", "off"]}');
    await page.getByLabel("Default variant").selectOption("on");
    await page.getByRole("button", { name: "Save flag" }).click();
    await expect.poll(() => page.getByRole("status").filter({ hasText: "Saved new-checkout" }).isVisible(), { timeout: 10_000 }).toBe(true);
    expect(await page.getByLabel("Targeting (JsonLogic)").count()).toBe(0);
    const saved = await getFlag("new-checkout");
    expect(saved.flag).toMatchObject({ defaultVariant: "on", targeting: { if: [{ starts_with: [{ var: "email" }, "qa-"] }, "on", "off"] } });

    await expect.poll(() => historyItems().count(), { timeout: 10_000 }).toBe(2);
    const newest = historyItems().first();
    expect(await newest.locator(".flag-change-kind").textContent()).toBe("Changed");
    expect(await newest.locator('[data-field="actor"]').textContent()).toMatch(/^user:/);
    const defaultLine = newest.locator('li[data-path="defaultVariant"]');
    expect(await defaultLine.locator("del").textContent()).toContain('"off"');
    expect(await defaultLine.locator("ins").textContent()).toContain('"on"');
    expect(await newest.locator('li[data-path="targeting.if"] del').textContent()).toContain("ends_with");
    expect(await newest.locator('li[data-path="targeting.if"] ins').textContent()).toContain("starts_with");
    expect(await page.locator('[data-field="defaultVariant"]').textContent()).toBe("on");
  });

  it("toggles the flag off and on, and each toggle shows in the change history", async () => {
    await page.getByRole("button", { name: "Disable" }).click();
    await page.getByRole("button", { name: "Confirm disable" }).click();
    await expect.poll(() => page.locator('dd[data-field="state"]').textContent(), { timeout: 10_000 }).toBe("DISABLED");
    expect((await getFlag("new-checkout")).flag.state).toBe("DISABLED");
    await expect.poll(() => historyItems().count(), { timeout: 10_000 }).toBe(3);
    const off = historyItems().first().locator('li[data-path="state"]');
    expect([await off.locator("del").textContent(), await off.locator("ins").textContent()]).toEqual(['"ENABLED"', '"DISABLED"']);

    await page.getByRole("button", { name: "Enable" }).click();
    await page.getByRole("button", { name: "Confirm enable" }).click();
    await expect.poll(() => page.locator('dd[data-field="state"]').textContent(), { timeout: 10_000 }).toBe("ENABLED");
    await expect.poll(() => historyItems().count(), { timeout: 10_000 }).toBe(4);
    expect(await historyItems().first().locator('li[data-path="state"] ins').textContent()).toBe('"ENABLED"');
    await screenshot(page, "flag-history");
  });

  it("kills the flag after a confirmation: everyone gets the safe variant (through OFREP)", async () => {
    const ofrep = async () => (await api("POST", "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "u-1", email: "qa-1@shop.test" } })).body as { value: unknown; reason: string };
    expect(await ofrep()).toMatchObject({ value: true, reason: "TARGETING_MATCH" });
    await page.getByRole("button", { name: "Kill switch" }).click();
    expect(await page.getByRole("group", { name: "Confirm: Kill switch" }).textContent()).toMatch(/Everyone gets off \(false\)/);
    await page.getByRole("button", { name: "Kill the flag" }).click();
    await expect.poll(() => page.getByRole("status").filter({ hasText: "Killed: everyone gets off" }).isVisible(), { timeout: 10_000 }).toBe(true);
    expect(await ofrep()).toMatchObject({ value: false, reason: "STATIC" });
    await expect.poll(() => historyItems().first().locator(".flag-change-kind").textContent(), { timeout: 10_000 }).toBe("Killed");
    await expect.poll(() => page.locator('dd[data-field="state"]').textContent()).toBe("ENABLED killed");
    expect(await page.locator('p[data-field="targeting"]').textContent()).toMatch(/^None/);
  });

  it("rolls back to an earlier version from the history", async () => {
    // The saved edit: the entry whose diff changed the default variant.
    const edit = historyItems().filter({ has: page.locator('li[data-path="defaultVariant"]') }).filter({ hasText: "Changed" });
    await expect.poll(() => edit.count()).toBe(1);
    const seq = Number(await edit.getAttribute("data-seq"));
    // Put back what the flag was right after that edit: enabled, "on" by default, the qa- targeting.
    await edit.getByRole("button", { name: "Roll back to this version" }).click();
    await edit.getByRole("button", { name: "Confirm roll back" }).click();
    await expect.poll(() => edit.getByRole("status").textContent(), { timeout: 10_000 }).toMatch(new RegExp(`^Rolled back to change ${seq}`));
    const restored = await getFlag("new-checkout");
    expect(restored.flag).toMatchObject({ state: "ENABLED", defaultVariant: "on", targeting: { if: [{ starts_with: [{ var: "email" }, "qa-"] }, "on", "off"] } });
    expect(restored.flag.metadata).toBeUndefined();
    await expect.poll(() => historyItems().first().locator(".flag-change-kind").textContent(), { timeout: 10_000 }).toBe(`Rolled back to change ${seq}`);
    await expect.poll(() => page.locator('pre[data-field="targeting"]').textContent()).toContain("starts_with");
    // The newest entry is the current definition: nothing to roll back to there.
    expect(await historyItems().first().getByRole("button", { name: "Roll back to this version" }).count()).toBe(0);
  });

  it("shows an experiment's counts, lift and interval from posted events, and warns of a sample ratio mismatch", async () => {
    // 500 users per arm: 30% of "on" convert, 10% of "off".
    const events: unknown[] = [];
    for (let i = 0; i < 1000; i++) {
      const user = `pay-${i}`;
      const variant = i % 2 === 0 ? "on" : "off";
      events.push({ type: "exposure", flag: "pay-experiment", variant, targetingKey: user });
      if ((variant === "on" && i % 20 < 6) || (variant === "off" && i % 20 === 1)) events.push({ type: "conversion", event: "purchase", targetingKey: user });
    }
    // The skewed one: 900 users shown "on", 100 "off" for a 50/50 split.
    for (let i = 0; i < 1000; i++) events.push({ type: "exposure", flag: "skewed-experiment", variant: i < 900 ? "on" : "off", targetingKey: `skew-${i}` });
    for (let i = 0; i < events.length; i += 1000) expect((await api("POST", "/v1/experiments/events", { events: events.slice(i, i + 1000) })).status).toBe(200);

    await page.goto(`${url}/#/flags/pay-experiment`);
    const onRow = page.locator('table.experiment-variants tr[data-variant="on"]');
    await expect.poll(() => onRow.locator('[data-field="users"]').textContent(), { timeout: 15_000 }).toBe("500");
    expect(await onRow.locator('[data-field="conversions"]').textContent()).toBe("150");
    expect(await onRow.locator('[data-field="rate"]').textContent()).toMatch(/^30\.0%/);
    const offRow = page.locator('table.experiment-variants tr[data-variant="off"]');
    expect(await offRow.locator('[data-field="users"]').textContent()).toBe("500");
    expect(await offRow.locator('[data-field="conversions"]').textContent()).toBe("50");
    expect(await offRow.locator("th").textContent()).toBe("off (control)");

    const lift = page.locator('li[data-comparison="on"]');
    expect(await lift.locator('[data-field="lift"] strong').textContent()).toBe("+20.0 pts");
    expect(await lift.locator('[data-field="interval"]').textContent()).toMatch(/^\(95% interval \+\d+\.\d pts to \+\d+\.\d pts\)$/);
    expect(await page.locator('[data-field="verdict"] strong').textContent()).toBe("treatment wins");
    // The bar: placed through the CSSOM (allowed by the CSP), right of zero, with its text alternative.
    const bar = lift.locator(".interval-bar");
    expect(await bar.getAttribute("class")).toContain("above");
    const [barBox, zeroBox] = [await bar.boundingBox(), await lift.locator(".interval-zero").boundingBox()];
    expect(barBox?.width).toBeGreaterThan(0);
    expect(barBox!.x).toBeGreaterThan(zeroBox!.x);
    expect(await lift.getByRole("img").getAttribute("aria-label")).toMatch(/^on vs off: \+20\.0 pts, 95% interval .* wholly above zero$/);
    expect(await page.locator('[data-field="srm"]').count()).toBe(0);
    await screenshot(page, "experiment");

    await page.goto(`${url}/#/flags/skewed-experiment`);
    await expect.poll(() => page.locator('[data-field="srm"]').textContent(), { timeout: 15_000 }).toMatch(/^Sample ratio mismatch\. .*expected on 50\.0%, off 50\.0%/);
    expect(await page.locator('[data-field="verdict"] strong').textContent()).toBe("broken: sample ratio mismatch");
  });

  it("fits a phone's width, the list and a flag", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await page.goto(`${url}/#/flags`);
      await expect.poll(() => page.locator('tr[data-flag="new-checkout"]').isVisible(), { timeout: 15_000 }).toBe(true);
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
      await page.goto(`${url}/#/flags/new-checkout`);
      await expect.poll(() => historyItems().count(), { timeout: 15_000 }).toBeGreaterThan(3);
      await page.getByRole("button", { name: "Edit" }).click();
      await expect.poll(() => page.getByLabel("Targeting (JsonLogic)").isVisible()).toBe(true);
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
      // The editor takes the focus when it opens and gives it back to Edit when it closes.
      expect(await page.evaluate('document.activeElement?.closest("form.flag-editor") !== null')).toBe(true);
      await screenshot(page, "flag-phone");
      await page.getByRole("button", { name: "Cancel" }).click();
      await expect.poll(() => page.evaluate("document.activeElement?.textContent?.trim()")).toBe("Edit");
      await page.goto(`${url}/#/flags/pay-experiment`);
      await expect.poll(() => page.locator('li[data-comparison="on"]').isVisible(), { timeout: 15_000 }).toBe(true);
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it("refuses a save over a change someone made while the editor was open (If-Match), until the latest is loaded", async () => {
    await page.goto(`${url}/#/flags/banner`);
    await page.getByRole("button", { name: "Edit" }).click();
    await expect.poll(() => page.getByLabel("Default variant").isVisible(), { timeout: 15_000 }).toBe(true);
    // Someone else changes the flag meanwhile.
    const theirs = { ...(await getFlag("banner")).flag, description: "changed by someone else" };
    expect((await api("PUT", "/v1/flags/banner", theirs)).status).toBe(200);
    await expect.poll(() => page.getByText("Someone changed this flag since you opened the editor").isVisible(), { timeout: 15_000 }).toBe(true);
    await page.getByLabel("Default variant").selectOption("sale");
    await page.getByRole("button", { name: "Save flag" }).click();
    await expect.poll(() => page.getByRole("alert").first().textContent(), { timeout: 10_000 }).toMatch(/changed since it was read/);
    expect((await getFlag("banner")).flag).toMatchObject({ description: "changed by someone else", defaultVariant: "plain" });
    // Loading the latest, the same change goes through and keeps theirs.
    await page.getByRole("button", { name: "Load the latest" }).click();
    await page.getByLabel("Default variant").selectOption("sale");
    await page.getByRole("button", { name: "Save flag" }).click();
    await expect.poll(() => page.getByRole("status").filter({ hasText: "Saved banner" }).isVisible(), { timeout: 10_000 }).toBe(true);
    expect((await getFlag("banner")).flag).toMatchObject({ description: "changed by someone else", defaultVariant: "sale" });
  });

  it("gives a viewer no edit, kill or rollback controls, and the API refuses them with 403", async () => {
    const created = await api("POST", "/v1/tokens", { name: "flag-viewer", role: "viewer" });
    expect(created.status).toBe(201);
    const { token } = created.body as { token: string };
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.goto(`${url}/#/flags/new-checkout`);
    await expect.poll(() => page.getByTestId("principal").textContent(), { timeout: 15_000 }).toMatch(/flag-viewer \(viewer\)/);
    await expect.poll(() => historyItems().count(), { timeout: 15_000 }).toBeGreaterThan(3);
    await expect.poll(() => page.locator('[data-field="read-only"]').textContent()).toMatch(/admin token or a deployer token of team core/);
    for (const name of ["Edit", "Disable", "Enable", "Kill switch", "Roll back to this version"]) expect(await page.getByRole("button", { name, exact: true }).count(), name).toBe(0);
    await page.goto(`${url}/#/flags/pay-experiment`);
    await expect.poll(() => page.locator('li[data-comparison="on"]').isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await page.getByRole("button", { name: "Kill switch" }).count()).toBe(0);

    const [{ seq }] = ((await api("GET", "/v1/flags/new-checkout/history")).body as { changes: Array<{ seq: number }> }).changes as [{ seq: number }];
    const asViewer = (method: string, path: string, body?: unknown) =>
      fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    for (const [method, path, body] of [
      ["PUT", "/v1/flags/new-checkout", { state: "DISABLED", variants: { on: true, off: false }, defaultVariant: "off" }],
      ["POST", "/v1/flags/new-checkout/kill", undefined],
      ["POST", "/v1/flags/new-checkout/rollback", { to: seq }],
    ] as const) {
      const res = await asViewer(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("KEELSON_ERR_FORBIDDEN");
    }
    expect(cspViolations).toEqual([]);
  });
});
