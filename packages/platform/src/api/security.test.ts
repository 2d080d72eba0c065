// The control plane's security over real HTTP (memory store and driver): every endpoint needs a
// credential, roles and teams decide who may change what, every change is audited in a hash
// chain, secrets are set but never read back, and the API's answers carry the safe defaults.
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { createReconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import { createIdentityVerifier, loadOrCreateCa, type CertificateAuthority } from "../security/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import { createApiSecurity, type ApiSecurity } from "./api-security.js";
import { createControlPlane, type ControlPlane } from "./control-plane.js";

const yaml = `project: shop
services:
  storefront:
    owner: web
    path: storefront
    start: node main.js
    replicas: 0
  payments:
    owner: pay
    path: payments
    start: node main.js
    replicas: 0
`;
const SECRET = "s3cr3t-Value-that-must-never-leak-42";

describe("control-plane security", () => {
  let cp: ControlPlane;
  let url: string;
  let store: Store;
  let security: ApiSecurity;
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let cleanup: () => Promise<void>;
  const tokens: Record<"admin" | "viewer" | "web" | "expired" | "revoked", string> = { admin: "", viewer: "", web: "", expired: "", revoked: "" };
  const silent = { info() {}, warn() {}, error() {} };

  async function call(method: string, path: string, options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const body = method === "GET" || method === "HEAD" ? undefined : (options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)));
    const res = await fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    let json: Record<string, unknown> | undefined;
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, body: json };
  }

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-api-security-");
    cleanup = tmp.cleanup;
    store = createMemoryStore();
    const { manifest } = parseManifest(yaml, join(tmp.dir, "keelson.yaml"), { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: join(tmp.dir, "keelson.yaml"), manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
    ca = await loadOrCreateCa({ dir: join(tmp.dir, "ca"), trustDomain: "shop" });
    otherCa = await loadOrCreateCa({ dir: join(tmp.dir, "other-ca"), trustDomain: "shop" });
    security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir, identities: createIdentityVerifier({ jwks: ca.jwks() as never, trustDomain: "shop" }) });
    tokens.admin = (await security.tokens.create({ name: "root", role: "admin", actor: "test" })).token;
    tokens.viewer = (await security.tokens.create({ name: "watcher", role: "viewer", actor: "test" })).token;
    tokens.web = (await security.tokens.create({ name: "ci-web", role: "deployer", teams: ["web"], actor: "test" })).token;
    tokens.expired = (await security.tokens.create({ name: "short", role: "admin", expiresInMs: 1, actor: "test" })).token;
    const revoked = await security.tokens.create({ name: "gone", role: "admin", actor: "test" });
    tokens.revoked = revoked.token;
    await security.tokens.revoke(revoked.record.id, "test");
    const driver = createMemoryDriver();
    const reconciler = createReconciler({ store, driver, project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1", log: silent, skipBuilds: true });
    cp = createControlPlane({ project: "shop", dir: tmp.dir, stateDir: tmp.dir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await cp.close();
    await cleanup();
  });

  it("answers 401 on every endpoint without a token, with a forged, expired or revoked one; /healthz says only that it runs", async () => {
    const sample = (path: string) => path.replace(/:(\w+)/g, (_, k: string) => (k === "name" ? "storefront" : k === "key" ? "flag-a" : k === "run" ? "run-20261127-000000-abcdef" : "x"));
    const walked: string[] = [];
    for (const e of cp.endpoints) {
      if (e.access === "public") continue;
      const path = sample(e.path);
      for (const token of [undefined, "ks_forged0000000000000000000000000000000000000", tokens.expired, tokens.revoked, "not a token at all"]) {
        const res = await call(e.method, path, { ...(token === undefined ? {} : { token }), body: {} });
        expect(res.status, `${e.method} ${e.path} with ${token === undefined ? "no token" : token.slice(0, 8)}`).toBe(401);
        expect((res.body?.error as { code?: string } | undefined)?.code).toBe("KEELSON_ERR_UNAUTHENTICATED");
      }
      walked.push(`${e.method} ${e.path}`);
    }
    expect(walked.length).toBeGreaterThan(50);
    expect(walked).toEqual(expect.arrayContaining(["POST /v1/apply", "GET /v1/status", "POST /ofrep/v1/evaluate/flags", "PUT /v1/services/:name/secrets/:secret", "GET /v1/audit/verify"]));
    // An unknown path tells an anonymous caller nothing either.
    expect((await call("GET", "/v1/nothing-here")).status).toBe(401);
    const health = await call("GET", "/healthz");
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: "ok", project: "shop" });
    const expired = await call("GET", "/v1/status", { token: tokens.expired });
    expect(expired.headers.get("www-authenticate")).toBe('Bearer realm="keelson"');
    expect(JSON.stringify(expired.body)).toContain("expired");
  });

  it("lets viewers read, deployers change only their teams' services, admins everything", async () => {
    expect((await call("GET", "/v1/status", { token: tokens.viewer })).status).toBe(200);
    const viewerScale = await call("POST", "/v1/services/storefront/scale", { token: tokens.viewer, body: { replicas: 0 } });
    expect(viewerScale.status).toBe(403);
    expect((viewerScale.body?.error as { code: string }).code).toBe("KEELSON_ERR_FORBIDDEN");

    expect((await call("POST", "/v1/services/storefront/scale", { token: tokens.web, body: { replicas: 0 } })).status).toBe(202);
    const other = await call("POST", "/v1/services/payments/scale", { token: tokens.web, body: { replicas: 0 } });
    expect(other.status).toBe(403);
    expect(JSON.stringify(other.body)).toMatch(/payments.*pay/);
    // A group deploy needs every service's right.
    expect((await call("POST", "/v1/deploy", { token: tokens.web, body: { services: ["storefront", "payments"] } })).status).toBe(403);
    expect((await call("GET", "/v1/tokens", { token: tokens.web })).status).toBe(403);
    expect((await call("POST", "/v1/apply", { token: tokens.viewer })).status).toBe(403);

    expect((await call("POST", "/v1/services/payments/scale", { token: tokens.admin, body: { replicas: 0 } })).status).toBe(202);
    const listed = await call("GET", "/v1/tokens", { token: tokens.admin });
    expect(listed.status).toBe(200);
    // Tokens are never listed, not even hashed.
    expect(listed.text).not.toContain(tokens.web);
    expect(listed.text).not.toMatch(/[0-9a-f]{64}/);
    const events = await store.listEvents({ project: "shop", kinds: ["service.scaled"] });
    expect(events.map((e) => e.actor)).toEqual(expect.arrayContaining(["user:ci-web", "user:root"]));
  });

  it("refuses a bad token request with the field named", async () => {
    for (const [body, field] of [
      [{ name: "x", role: "root" }, "role:"],
      [{ name: "x", role: "deployer", teams: "web" }, "teams:"],
      [{ name: "x", role: "deployer" }, "teams:"],
      [{ name: "a b", role: "viewer" }, "name:"],
      [{ name: "x", role: "viewer", expiresInMs: "1d" }, "expiresInMs:"],
    ] as const) {
      const res = await call("POST", "/v1/tokens", { token: tokens.admin, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((res.body?.error as { message: string }).message).toContain(field);
    }
  });

  it("takes identity tokens from services for telemetry and flags, not for reading or changing state; another CA's token is refused", async () => {
    const orders = await ca.issueToken({ service: "orders", ttlMs: 60_000 });
    // Past authentication and authorization (this control plane runs without telemetry: 404).
    const otlp = await call("POST", "/v1/traces", { token: orders, body: { resourceSpans: [] } });
    expect(otlp.status).toBe(404);
    expect((await call("POST", "/ofrep/v1/evaluate/flags", { token: orders, body: { context: { targetingKey: "u" } } })).status).toBe(200);
    expect((await call("GET", "/v1/status", { token: orders })).status).toBe(403);
    expect((await call("POST", "/v1/services/storefront/restart", { token: orders })).status).toBe(403);
    const foreign = await otherCa.issueToken({ service: "orders", ttlMs: 60_000 });
    expect((await call("POST", "/v1/traces", { token: foreign, body: { resourceSpans: [] } })).status).toBe(401);
    expect((await call("POST", "/ofrep/v1/evaluate/flags", { token: foreign, body: { context: { targetingKey: "u" } } })).status).toBe(401);
  });

  it("keeps secrets write-only: set, listed by name and version, never in any answer", async () => {
    const set = await call("PUT", "/v1/services/storefront/secrets/DB_PASSWORD", { token: tokens.web, body: { value: SECRET } });
    expect(set.status).toBe(200);
    expect(set.text).not.toContain(SECRET);
    const list = await call("GET", "/v1/services/storefront/secrets", { token: tokens.viewer });
    expect(list.body).toMatchObject({ service: "storefront", secrets: [{ name: "DB_PASSWORD", version: 1 }] });
    // Another team's service, path traversal and bad names are refused without echoing the value.
    expect((await call("PUT", "/v1/services/payments/secrets/DB_PASSWORD", { token: tokens.web, body: { value: SECRET } })).status).toBe(403);
    for (const path of ["/v1/services/storefront/secrets/..%2F..%2Fetc", "/v1/services/storefront/secrets/a-b", "/v1/services/..%2Fpayments/secrets/X"]) {
      const bad = await call("PUT", path, { token: tokens.admin, body: { value: SECRET } });
      expect([400, 404], path).toContain(bad.status);
      expect(bad.text).not.toContain(SECRET);
    }
    // A value that shows up anywhere in an answer is redacted: here, an event that quotes it.
    await store.appendEvent({ project: "shop", kind: "deploy.refused", actor: "test", subject: "service/storefront", details: { why: `connection failed for ${SECRET}` } });
    const everything = await Promise.all(
      ["/v1/events?limit=1000", "/v1/status", "/v1/audit?limit=1000", "/v1/services/storefront/secrets", "/v1/tokens"].map((p) => call("GET", p, { token: tokens.admin })),
    );
    for (const res of everything) {
      expect(res.status).toBe(200);
      expect(res.text).not.toContain(SECRET);
    }
    expect(everything[0]?.text).toContain("connection failed for [redacted]");
  });

  it("audits every change, allowed or denied, in a chain that verifies", async () => {
    const audit = await call("GET", "/v1/audit?limit=1000", { token: tokens.admin });
    const records = (audit.body?.records ?? []) as Array<{ actor: string; action: string; target: string; result: string; status: number; from: string; before?: unknown; after?: unknown }>;
    const scale = records.find((r) => r.actor === "user:ci-web" && r.action === "POST /v1/services/:name/scale" && r.result === "ok");
    expect(scale).toMatchObject({ target: "service/storefront", status: 202, before: { replicas: 0 }, after: { replicas: 0 } });
    expect(scale?.from).toMatch(/127\.0\.0\.1/);
    expect(records.some((r) => r.actor === "user:watcher" && r.result === "denied" && r.status === 403)).toBe(true);
    expect(records.some((r) => r.action === "PUT /v1/services/:name/secrets/:secret" && r.result === "ok")).toBe(true);
    // Reads are not audited.
    expect(records.some((r) => r.action.startsWith("GET "))).toBe(false);
    const verified = await call("GET", "/v1/audit/verify", { token: tokens.admin });
    expect(verified.body).toMatchObject({ ok: true });
    expect((verified.body as { checked: number }).checked).toBe(records.length);
  });

  it("answers with safe headers, closed CORS and no internals; refuses malformed and oversized bodies", async () => {
    const res = await call("GET", "/v1/status", { token: tokens.viewer, headers: { origin: "https://evil.example" } });
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await call("OPTIONS", "/v1/status", { headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    expect(preflight.status).toBeGreaterThanOrEqual(400);

    const malformed = await call("POST", "/v1/services/storefront/scale", { token: tokens.admin, raw: "{not json" });
    expect(malformed.status).toBe(400);
    expect(malformed.text).not.toMatch(/at .*\.js:\d+/);
    const huge = await call("PUT", "/v1/services/storefront/secrets/BIG", { token: tokens.admin, raw: JSON.stringify({ value: "x".repeat(2 * 1024 * 1024) }) });
    expect(huge.status).toBe(400);
    expect(huge.text).toContain("exceeds");
  });
});

describe("control-plane API over TLS", () => {
  it("serves HTTPS with the configured certificate and sends HSTS", async () => {
    const tmp = await makeTempDir("keelson-api-tls-");
    try {
      const store = createMemoryStore();
      const ca = await loadOrCreateCa({ dir: join(tmp.dir, "ca"), trustDomain: "shop" });
      const issued = await ca.issueCertificate({ service: "keelson-gateway", ttlMs: 60_000 });
      const security = await createApiSecurity({ store, project: "shop", stateDir: tmp.dir });
      const { token } = await security.tokens.create({ name: "root", role: "admin", actor: "test" });
      const reconciler = createReconciler({ store, driver: createMemoryDriver(), project: "shop", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1" });
      const cp = createControlPlane({
        project: "shop",
        dir: tmp.dir,
        stateDir: tmp.dir,
        store,
        driver: createMemoryDriver(),
        reconciler,
        gatewayUrl: "http://127.0.0.1:1",
        log: { info() {}, warn() {}, error() {} },
        security,
        tls: { cert: issued.certPem, key: issued.keyPem },
      });
      const url = await cp.listen("127.0.0.1", 0);
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const agent = new Agent({ connect: { ca: ca.caPem(), servername: "localhost" } });
      try {
        const res = await request(`${url}/v1/status`, { dispatcher: agent, headers: { authorization: `Bearer ${token}` } });
        expect(res.statusCode).toBe(200);
        expect(res.headers["strict-transport-security"]).toBe("max-age=31536000");
        await res.body.dump();
        const anonymous = await request(`${url}/v1/status`, { dispatcher: agent });
        expect(anonymous.statusCode).toBe(401);
        await anonymous.body.dump();
        // Plain HTTP to the TLS port gets no API answer.
        await expect(fetch(url.replace("https:", "http:") + "/healthz")).rejects.toThrow();
      } finally {
        await agent.close();
        await cp.close();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
