// The example shop with mTLS everywhere (security.mtls and tls: true on every service), on the real
// binary: services call each other through the gateway's mesh listener over mutual TLS, the
// gateway reaches replicas over HTTPS and checks their SPIFFE ids, and an order still goes through.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import type { RoutingTable } from "@keelson/protocol";
import { apiFetch, freePort, makeTempDir } from "#test-support";
import { keelson } from "./cli.js";
import { writeShopCopy } from "./shop-copy.js";

describe("the shop with mTLS on every hop", { timeout: 300_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let gateway: string;
  let controlPlane: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-shop-mtls-"));
    const ports = { controlPlane: await freePort(), gateway: await freePort(), admin: await freePort(), mesh: await freePort() };
    gateway = `http://127.0.0.1:${ports.gateway}`;
    controlPlane = `http://127.0.0.1:${ports.controlPlane}`;
    await writeShopCopy(dir, ports);
    const doc = parseDocument(await readFile(join(dir, "keelson.yaml"), "utf8"));
    doc.setIn(["security"], doc.createNode({ mtls: true }));
    for (const name of ["storefront", "orders", "payments", "inventory", "notifications", "recommendations"]) doc.setIn(["services", name, "tls"], true);
    await writeFile(join(dir, "keelson.yaml"), doc.toString());
  });
  afterAll(async () => {
    await keelson(["down", dir]);
    await cleanup();
  });

  it("starts every replica on HTTPS and places an order through mTLS hops", async () => {
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 240_000 });
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);

    const table = (await (await apiFetch(dir, `${controlPlane}/v1/routing`)).json()) as RoutingTable;
    expect(table.identity?.mtls).toBe(true);
    const urls = table.services.flatMap((s) => s.endpoints.map((e) => e.url));
    expect(urls.length).toBeGreaterThanOrEqual(5);
    for (const url of urls) expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    // A replica answers nobody without the gateway's or the control plane's certificate.
    await expect(fetch(urls[0]!.replace("https:", "http:") + "/ready", { signal: AbortSignal.timeout(3000) })).rejects.toThrow();

    // storefront → orders → inventory, payments, notifications: every call over the mesh listener's mTLS.
    const catalog = (await (await fetch(`${gateway}/api/catalog`)).json()) as { products: Array<{ sku: string; stock: number }> };
    const product = catalog.products.find((p) => p.stock >= 1);
    expect(product).toBeDefined();
    const res = await fetch(`${gateway}/checkout`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ items: [{ sku: product!.sku, qty: 1 }], card: "4242424242424242", email: "ada@example.com" }),
    });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { status: string }).status).toBe("confirmed");

    // No call was refused on the way.
    const info = JSON.parse(await readFile(join(dir, ".keelson", "gateway", "gateway.pid.json"), "utf8")) as { adminUrl: string };
    const metrics = await (await fetch(`${info.adminUrl}/metrics`)).text();
    expect(metrics).not.toMatch(/reason="(policy_denied|unauthenticated)"\} [1-9]/);
  });
});
