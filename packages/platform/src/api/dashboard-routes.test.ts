// The control plane serves the dashboard's built files: public, with the dashboard's CSP, hashed
// assets cached for good, nothing outside the assets folder, and a hint when it is not built.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { createReconciler } from "../delivery/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createMemoryStore } from "../store/index.js";
import { createApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";
import { DASHBOARD_CSP, findDashboardDir } from "./dashboard-routes.js";

const silent = { info() {}, warn() {}, error() {} };

async function startControlPlane(stateDir: string, dashboardDir: string): Promise<{ cp: ControlPlane; url: string; security: Awaited<ReturnType<typeof createApiSecurity>> }> {
  const store = createMemoryStore();
  const driver = createMemoryDriver();
  const reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:1", log: silent });
  const security = await createApiSecurity({ store, project: "shop", stateDir });
  const cp = createControlPlane({ project: "shop", dir: stateDir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, dashboardDir });
  return { cp, url: await cp.listen("127.0.0.1", 0), security };
}

describe("dashboard routes", () => {
  let cleanup: () => Promise<void>;
  let built: Awaited<ReturnType<typeof startControlPlane>>;
  let missing: Awaited<ReturnType<typeof startControlPlane>>;
  // Bytes that are not UTF-8: a text round trip would turn them into U+FFFD.
  const binary = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80]);

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-dashboard-");
    cleanup = tmp.cleanup;
    const dist = join(tmp.dir, "dist");
    await mkdir(join(dist, "assets"), { recursive: true });
    await writeFile(join(dist, "index.html"), '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>');
    await writeFile(join(dist, "assets", "index-abc123.js"), "console.log(1)");
    await writeFile(join(dist, "assets", "index-abc123.css"), "body{}");
    await writeFile(join(dist, "assets", "logo-abc123.png"), binary);
    await writeFile(join(tmp.dir, "secret.js"), "the token");
    built = await startControlPlane(tmp.dir, dist);
    missing = await startControlPlane(tmp.dir, join(tmp.dir, "not-built"));
  });
  afterAll(async () => {
    await built.cp.close();
    await missing.cp.close();
    await cleanup();
  });

  it("serves index.html at / without a token, with the dashboard's CSP and revalidation", async () => {
    const res = await fetch(`${built.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(await res.text()).toContain("/assets/index-abc123.js");
  });

  it("serves hashed assets with their content type, cached immutably", async () => {
    const js = await fetch(`${built.url}/assets/index-abc123.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(await js.text()).toBe("console.log(1)");
    const css = await fetch(`${built.url}/assets/index-abc123.css`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
  });

  it("serves binary assets byte for byte while the vault holds secrets (API answers are redacted, built files are not)", async () => {
    await built.security.vault.set("api", "TOKEN", "console", "user:test");
    await built.security.secretsChanged?.("api");
    const png = await fetch(`${built.url}/assets/logo-abc123.png`);
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await png.arrayBuffer()).equals(binary)).toBe(true);
    // The built script contains the secret's value as a word: it is served as built.
    expect(await (await fetch(`${built.url}/assets/index-abc123.js`)).text()).toBe("console.log(1)");
  });

  it("answers 404 for anything outside the assets folder or of an unknown type", async () => {
    for (const path of ["/assets/..%2Fsecret.js", "/assets/%2E%2E%2Fsecret.js", "/assets/.hidden.js", "/assets/nope.js", "/assets/index.html"]) {
      const res = await fetch(`${built.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(await res.text(), path).not.toContain("the token");
    }
    expect((await fetch(`${built.url}/assets/../secret.js`)).status).not.toBe(200);
  });

  it("keeps the strict CSP on API answers", async () => {
    const res = await fetch(`${built.url}/healthz`);
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
    expect((await fetch(`${built.url}/v1/status`)).status).toBe(401);
  });

  it("says how to build the dashboard when it is not built", async () => {
    const res = await fetch(`${missing.url}/`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await res.text()).toMatch(/dashboard is not built.*npm run build/);
  });

  it("finds the dashboard package's dist folder", () => {
    expect(findDashboardDir()).toMatch(/packages[/\\]dashboard[/\\]dist$/);
  });
});
