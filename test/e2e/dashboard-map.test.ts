// End to end in a real browser: services that call each other through the gateway (with
// @keelson/sdk, so they trace and log the trace id) show up on the service map: nodes, edges colored
// by error ratio, a declared call nobody makes dashed, a call nobody declared dotted and labelled,
// the same calls in a table, each box opening its service. A trace's waterfall lists the log
// lines that carry its id, the selected span's marked. Drives Debian's Chromium; skipped without it.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiFetch, apiToken, makeTempDir, writeOneServiceProject } from "#test-support";
import { chromiumAvailable, logIn, openBrowser, screenshot, type Browser } from "./browser.js";
import { ROOT, keelson } from "./cli.js";

const available = chromiumAvailable();
const SDK = pathToFileURL(join(ROOT, "packages/sdk/dist/index.js")).href;
/** Requests sent through web; every other one asks billing for a failing charge. */
const REQUESTS = 8;

/** A service with @keelson/sdk: serve() traces each request and logs it; `body` handles `url`, `client`, `logger`, `res`. */
function sdkService(body: string): string {
  return `
import { activeSpanContext, createClient, createLogger, serve } from ${JSON.stringify(SDK)};
const logger = createLogger();
const client = createClient({ logger });
await serve({
  logger,
  handler: async (req, res) => {
    const url = new URL(req.url ?? "/", "http://local");
    res.setHeader("content-type", "application/json");
${body}
    res.statusCode = 404;
    res.end("{}");
  },
});
`;
}

const WEB = sdkService(`
    if (url.pathname === "/buy") {
      const answer = await client.call("orders", "/order?fail=" + (url.searchParams.get("fail") ?? "0"));
      res.end(JSON.stringify({ orders: answer.status, ...(await answer.json()) }));
      return;
    }`);

const ORDERS = sdkService(`
    if (url.pathname === "/order") {
      const fail = url.searchParams.get("fail") === "1";
      logger.info("placing order", { fail });
      const charge = await client.call("billing", fail ? "/charge/fail" : "/charge/ok");
      await charge.arrayBuffer();
      // Around the mesh, through api's public route: a call the manifest does not declare.
      const span = activeSpanContext();
      const stock = await fetch(process.env.PUBLIC_GATEWAY + "/api/level", { headers: span ? { traceparent: "00-" + span.traceId + "-" + span.spanId + "-01" } : {} });
      await stock.arrayBuffer();
      res.end(JSON.stringify({ charged: charge.ok, stock: stock.status }));
      return;
    }`);

const BILLING = sdkService(`
    if (url.pathname === "/charge/ok") { res.end(JSON.stringify({ ok: true })); return; }
    if (url.pathname === "/charge/fail") { res.statusCode = 500; res.end(JSON.stringify({ error: { code: "DECLINED", message: "card declined" } })); return; }`);

describe.skipIf(!available).sequential("service map and trace logs in Chromium", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let browser: Browser;
  let page: Page;
  let url: string;
  let gatewayPort: number;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-dashboard-map-"));
    const ports = await writeOneServiceProject(dir, { project: "mapshop" });
    url = `http://127.0.0.1:${ports.controlPlanePort}`;
    gatewayPort = ports.gatewayPort;
    // Three SDK services next to the helper's plain `api` (route /api): web → orders → billing,
    // declared; web declares billing too but never calls it; orders calls api's public route undeclared.
    const service = (name: string, extra: string[]) => [
      `  ${name}:`,
      "    owner: shop",
      `    path: services/${name}`,
      "    start: node main.mjs",
      "    readiness: /ready",
      '    pipeline: { stages: [{ name: test, run: "node -e 0" }] }',
      ...extra.map((l) => `    ${l}`),
    ];
    const manifest = await readFile(join(dir, "keelson.yaml"), "utf8");
    await writeFile(
      join(dir, "keelson.yaml"),
      [
        manifest.trimEnd(),
        ...service("web", ["routes: [{ path: /web, stripPrefix: true }]", "calls: [orders, billing]"]),
        ...service("orders", ["calls: [billing]", `env: { PUBLIC_GATEWAY: "http://127.0.0.1:${gatewayPort}" }`]),
        // No retries and no circuit breaker: every failing charge is one failed call.
        ...service("billing", ["resilience: { retries: { attempts: 0 }, circuitBreaker: false }"]),
        "",
      ].join("\n"),
    );
    for (const [name, source] of [
      ["web", WEB],
      ["orders", ORDERS],
      ["billing", BILLING],
    ] as const) {
      await mkdir(join(dir, "services", name), { recursive: true });
      await writeFile(join(dir, "services", name, "main.mjs"), source);
      await writeFile(join(dir, "services", name, "package.json"), JSON.stringify({ name, version: "1.0.0", private: true, type: "module" }));
    }
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 240_000 });
    expect(up.code, up.stderr).toBe(0);
    browser = await openBrowser();
    page = browser.page;
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    if (dir) await keelson(["down", dir]);
    await cleanup?.();
  }, 120_000);

  it("logs in", async () => {
    await logIn(page, url, await apiToken(dir));
    expect(await page.getByRole("link", { name: "Service map" }).isVisible()).toBe(true);
  });

  it("draws the calls the traffic made: nodes, the failing edge red with its ratio, the unused call dashed, the undeclared one dotted and labelled, and the same in the table", async () => {
    for (let i = 0; i < REQUESTS; i++) {
      const res = await fetch(`http://127.0.0.1:${gatewayPort}/web/buy?fail=${i % 2}`);
      expect(res.status, await res.text()).toBe(200);
    }
    // Spans reach the control plane in batches: wait until the map has all of them.
    type Edge = { from: string; to: string; calls: number; errors: number };
    await expect
      .poll(
        async () => {
          const map = (await (await apiFetch(dir, `${url}/v1/service-map?window=1h`)).json()) as { edges: Edge[] };
          return map.edges.map((e) => `${e.from}->${e.to} ${e.calls}/${e.errors}`).sort();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toEqual([`(external)->web ${REQUESTS}/0`, `orders->api ${REQUESTS}/0`, `orders->billing ${REQUESTS}/${REQUESTS / 2}`, `web->orders ${REQUESTS}/0`]);

    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Service map" }).click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/map");
    const edge = (id: string) => page.locator(`svg.map-svg g.map-edge[data-edge="${id}"]`);
    await expect.poll(() => edge("orders->billing").count(), { timeout: 15_000 }).toBe(1);
    // Expressions as strings: they run in the page (the tests' TypeScript has no DOM types).
    const nodes = (await page.evaluate('[...document.querySelectorAll("svg.map-svg .map-node")].map((e) => e.getAttribute("data-node"))')) as string[];
    expect(nodes.sort()).toEqual(["(external)", "api", "billing", "orders", "web"]);
    expect(await page.locator('svg.map-svg a.map-node[data-node="orders"]').getAttribute("href")).toBe("#/services/orders");
    expect(await page.locator('svg.map-svg [data-node="(external)"]').evaluate((e: { tagName: string }) => e.tagName.toLowerCase())).toBe("g");

    // The failing edge: red, its ratio on the line and in its description.
    const failing = edge("orders->billing");
    expect(await failing.getAttribute("data-bucket")).toBe("bad");
    expect(await failing.locator("title").textContent()).toMatch(/^orders calls billing: 8 calls, 4 failed \(50 % errors\)/);
    expect(await page.locator('[data-edge-label="orders->billing"]').textContent()).toBe("50 % errors");
    const style = (selector: string, property: string) => page.evaluate(`getComputedStyle(document.querySelector(${JSON.stringify(selector)}))[${JSON.stringify(property)}]`) as Promise<string>;
    const stroke = (id: string) => style(`g.map-edge[data-edge="${id}"] path`, "stroke");
    expect(await edge("web->orders").getAttribute("data-bucket")).toBe("ok");
    expect(await stroke("orders->billing")).not.toBe(await stroke("web->orders"));
    const colorOf = (cls: string) => page.evaluate(`(() => { const s = document.createElement("span"); s.className = "${cls}"; document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c; })()`);
    expect(await stroke("orders->billing")).toBe(await colorOf("bad"));
    expect(await stroke("web->orders")).toBe(await colorOf("ok"));

    // Declared but unused: dashed and grey. Used but undeclared: dotted, labelled "not declared".
    const dashes = (id: string) => style(`g.map-edge[data-edge="${id}"] path`, "strokeDasharray");
    expect(await edge("web->billing").getAttribute("data-declaration")).toBe("unused");
    expect(await edge("web->billing").getAttribute("data-bucket")).toBe("none");
    expect(await dashes("web->billing")).toBe("8px, 5px");
    expect(await edge("orders->api").getAttribute("data-declaration")).toBe("undeclared");
    expect(await dashes("orders->api")).toBe("1.5px, 4px");
    expect(await dashes("web->orders")).toBe("none");
    expect(await page.locator('[data-edge-label="orders->api"]').textContent()).toBe("not declared");
    expect(await edge("orders->api").locator("title").textContent()).toMatch(/not declared in the caller's calls/);

    // The table lists the same calls for keyboards, screen readers and phones.
    const row = (id: string) => page.locator(`table.map-edges-table tr[data-edge="${id}"]`);
    expect(await page.locator("table.map-edges-table tbody tr").count()).toBe(5);
    expect(await row("orders->billing").locator('[data-field="errors"]').textContent()).toBe("50 % (4 failed)");
    expect(await row("orders->billing").locator('[data-field="calls"]').textContent()).toMatch(/^8\b/);
    expect(await row("orders->billing").getAttribute("data-bucket")).toBe("bad");
    expect(await row("orders->api").locator('[data-field="declaration"]').textContent()).toBe("not declared");
    expect(await row("web->billing").locator('[data-field="declaration"]').textContent()).toBe("declared, unused");
    expect(await row("web->billing").locator('[data-field="errors"]').textContent()).toBe("no traffic");
    expect(await row("web->orders").locator('[data-field="declaration"]').textContent()).toBe("declared");
    expect(await row("(external)->web").locator('[data-field="declaration"]').textContent()).toBe("from outside");
    await screenshot(page, "service-map");
    expect(browser.cspViolations).toEqual([]);
  });

  it("takes the window to the API and opens a service from its box", async () => {
    const asked = browser.requests.length;
    await page.getByLabel("Window").selectOption("5m");
    await expect.poll(() => browser.requests.slice(asked).some((r) => r.path === "/v1/service-map")).toBe(true);
    await expect.poll(() => page.locator('svg.map-svg g.map-edge[data-edge="orders->billing"]').count(), { timeout: 15_000 }).toBe(1);
    await page.locator('svg.map-svg a.map-node[data-node="orders"]').click();
    await expect.poll(() => page.evaluate("location.hash")).toBe("#/services/orders");
    await expect.poll(() => page.getByRole("heading", { name: "orders", level: 1 }).isVisible(), { timeout: 15_000 }).toBe(true);
  });

  it("fits a phone's width: the graph scales down, the table becomes cards", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.evaluate('location.hash = "#/map"');
    await expect.poll(() => page.locator("table.map-edges-table tbody tr").count(), { timeout: 15_000 }).toBe(5);
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    expect((await page.locator("svg.map-svg").boundingBox())?.width).toBeLessThanOrEqual(390);
    expect(await page.evaluate('getComputedStyle(document.querySelector("table.map-edges-table thead")).position')).toBe("absolute");
    await screenshot(page, "service-map-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(browser.cspViolations).toEqual([]);
  });

  it("lists the log lines that share a trace's id under its waterfall, the selected span's marked", async () => {
    const { traces } = (await (await apiFetch(dir, `${url}/v1/traces?service=orders&since=1h&limit=50`)).json()) as { traces: Array<{ traceId: string; rootService: string }> };
    const traceId = traces.find((t) => t.rootService === "keelson-gateway")?.traceId ?? traces[0]?.traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    // The collector picks lines up within a moment: wait until the API has orders' line.
    await expect
      .poll(
        async () => {
          const body = (await (await apiFetch(dir, `${url}/v1/traces/${traceId}/logs`)).json()) as { logs: Array<{ service: string; line: string }> };
          return body.logs.some((l) => l.service === "orders" && l.line.includes("placing order"));
        },
        { timeout: 15_000, interval: 250 },
      )
      .toBe(true);

    await page.evaluate(`location.hash = "#/traces/${traceId}"`);
    await expect.poll(() => page.locator("ol.waterfall li").count(), { timeout: 15_000 }).toBeGreaterThan(2);
    const placing = page.locator('ol.log-lines li[data-service="orders"]', { hasText: "placing order" });
    await expect.poll(() => placing.count(), { timeout: 15_000 }).toBe(1);
    expect(await placing.locator(".log-level").textContent()).toMatch(/info/i);
    expect(await placing.locator(".log-source").textContent()).toMatch(/^orders orders-/);
    expect(await page.locator('ol.log-lines li[data-service="web"]').count()).toBeGreaterThan(0);
    expect(await page.locator('[data-field="log-summary"]').textContent()).toMatch(/in the logs of .*orders/);

    // Selecting the span the line was written in marks it; orders' other lines are its service's.
    const spanId = await placing.getAttribute("data-span");
    expect(spanId).toMatch(/^[0-9a-f]{16}$/);
    await page.locator(`ol.waterfall li[data-span="${spanId}"] button`).click();
    await expect.poll(() => placing.getAttribute("data-relation")).toBe("span");
    expect(await placing.textContent()).toMatch(/this span/);
    for (const other of await page.locator('ol.log-lines li[data-service="web"]').all()) expect(await other.getAttribute("data-relation")).toBe("other");
    await page.getByLabel("Only lines of orders").check();
    await expect.poll(() => page.locator('ol.log-lines li[data-service="web"]').count()).toBe(0);
    expect(await placing.count()).toBe(1);
    await page.getByLabel("Only lines of orders").uncheck();
    await expect.poll(() => page.locator('ol.log-lines li[data-service="web"]').count()).toBeGreaterThan(0);
    await screenshot(page, "trace-logs");

    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await screenshot(page, "trace-logs-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(browser.cspViolations).toEqual([]);
  });
});
