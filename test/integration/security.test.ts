// Issue #8 end to end, on the real binary: zero-trust calls through the gateway's mesh listener,
// the pipeline's security gate (a planted AWS key, a vulnerable dependency), secrets that never
// leak into logs, API answers or traces, an audit chain that catches an edited row, and a control
// plane that answers 401 on every endpoint without a token.
import { createHash, randomBytes } from "node:crypto";
import { readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTempDir, waitFor } from "#test-support";
import { keelson } from "../e2e/cli.js";
import { createApiSecurity, createControlPlane } from "../../packages/platform/src/api/index.js";
import { createReconciler } from "../../packages/platform/src/delivery/index.js";
import { createMemoryDriver } from "../../packages/platform/src/runtime/index.js";
import { createMemoryStore } from "../../packages/platform/src/store/index.js";

const SECRET = `pw-${randomBytes(12).toString("hex")}`;
const TRACE_ID = randomBytes(16).toString("hex");

/** A dependency-free service: calls another through the mesh (/call), answers (/data), uses its secret (/secret). */
const SERVER = `import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";

const NAME = process.env.KEELSON_SERVICE;
const identity = () => readFileSync(process.env.KEELSON_IDENTITY_FILE, "utf8").trim();

const server = createServer(async (req, res) => {
  const u = new URL(req.url, "http://localhost");
  try {
    if (u.pathname === "/ready") return res.end("ok");
    if (u.pathname === "/data") {
      res.setHeader("content-type", "application/json");
      return res.end(JSON.stringify({ from: NAME, caller: req.headers["x-keelson-caller"] ?? null, identityHeader: req.headers["x-keelson-identity"] ?? null }));
    }
    if (u.pathname === "/call") {
      const headers = { "x-keelson-service": u.searchParams.get("target") };
      if (u.searchParams.get("anonymous") !== "1") headers["x-keelson-identity"] = identity();
      if (u.searchParams.get("claim")) headers["x-keelson-caller"] = u.searchParams.get("claim");
      const r = await fetch(process.env.KEELSON_GATEWAY_URL + (u.searchParams.get("path") ?? "/data"), { method: u.searchParams.get("method") ?? "GET", headers });
      res.writeHead(r.status, { "content-type": "application/json" });
      return res.end(await r.text());
    }
    if (u.pathname === "/secret") {
      const value = process.env.DB_PASSWORD ?? "";
      // A careless log line and a span attribute carrying the value: the platform must not spread them.
      console.log("connecting with password " + value);
      const now = BigInt(Date.now()) * 1000000n;
      const span = { traceId: u.searchParams.get("trace"), spanId: "00f067aa0ba902b7", name: "db.connect", kind: 3, startTimeUnixNano: String(now), endTimeUnixNano: String(now + 1000000n),
        attributes: [{ key: "db.password", value: { stringValue: value } }, { key: "db.statement", value: { stringValue: "AUTH " + value } }] };
      const body = { resourceSpans: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: NAME } }] }, scopeSpans: [{ scope: { name: "test" }, spans: [span] }] }] };
      const sent = await fetch(process.env.KEELSON_OTLP_ENDPOINT, { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer " + identity() }, body: JSON.stringify(body) });
      res.setHeader("content-type", "application/json");
      return res.end(JSON.stringify({ length: value.length, sha256: createHash("sha256").update(value).digest("hex"), otlp: sent.status }));
    }
    res.statusCode = 404;
    res.end("{}");
  } catch (err) {
    res.statusCode = 500;
    res.end(JSON.stringify({ error: String(err) }));
  }
});
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;

const LOCKFILE = {
  name: "api",
  version: "1.0.0",
  lockfileVersion: 3,
  requires: true,
  packages: { "": { name: "api", version: "1.0.0" }, "node_modules/left-pad": { version: "1.1.0", license: "WTFPL" } },
};
const ADVISORY = {
  schema_version: "1.6.0",
  id: "GHSA-test-left-pad",
  summary: "left-pad drops characters",
  affected: [{ package: { ecosystem: "npm", name: "left-pad" }, ranges: [{ type: "SEMVER", events: [{ introduced: "0" }, { fixed: "1.3.0" }] }] }],
  database_specific: { severity: "CRITICAL" },
};

describe("security end to end", { timeout: 240_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let controlPlane: string;
  let gateway: string;
  let token: string;

  const api = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${controlPlane}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers } });
    return { status: res.status, text: await res.text() };
  };

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-security-e2e-"));
    const [cp, gw, admin, mesh] = [await freePort(), await freePort(), await freePort(), await freePort()];
    controlPlane = `http://127.0.0.1:${cp}`;
    gateway = `http://127.0.0.1:${gw}`;
    const service = (name: string, calls: string) =>
      [`  ${name}:`, "    owner: core", `    path: services/${name}`, "    start: node server.mjs", "    readiness: /ready", `    routes: [{ path: /${name}, stripPrefix: true }]`, `    calls: ${calls}`, "    pipeline: { stages: [{ name: test, run: \"node -e 0\" }] }"].join("\n");
    await writeFile(
      join(dir, "keelson.yaml"),
      [
        "version: 1",
        "project: sec",
        `controlPlane: { host: 127.0.0.1, port: ${cp} }`,
        `gateway: { host: 127.0.0.1, port: ${gw}, adminPort: ${admin}, meshPort: ${mesh} }`,
        "security:",
        "  scan:",
        "    vulnerabilities: { block: critical, advisories: [advisories] }",
        "services:",
        service("api", "[]"),
        service("front", "[{ service: api, paths: [/data], methods: [GET] }]"),
        service("rogue", "[]"),
        "",
      ].join("\n"),
    );
    await mkdir(join(dir, "advisories"));
    await writeFile(join(dir, "advisories", "left-pad.json"), JSON.stringify(ADVISORY));
    for (const name of ["api", "front", "rogue"]) {
      await mkdir(join(dir, "services", name), { recursive: true });
      await writeFile(join(dir, "services", name, "server.mjs"), SERVER);
      await writeFile(join(dir, "services", name, "package.json"), JSON.stringify({ name, version: "1.0.0", private: true, type: "module" }));
    }
    const up = await keelson(["up", dir, "--detach"], { timeoutMs: 180_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    token = (await readFile(join(dir, ".keelson", "token"), "utf8")).trim();
  });
  afterAll(async () => {
    await keelson(["down", dir], { timeoutMs: 60_000 });
    await cleanup();
  });

  it("stores the CLI's admin token with mode 0600", async () => {
    const { stat } = await import("node:fs/promises");
    expect((await stat(join(dir, ".keelson", "token"))).mode & 0o777).toBe(0o600);
    expect(token).toMatch(/^ks_[\w-]{43}$/);
  });

  it("lets a service call only what it lists in calls (403 otherwise), as its verified identity", async () => {
    const allowed = await fetch(`${gateway}/front/call?target=api&path=/data`);
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ from: "api", caller: "front", identityHeader: null });
    // Outside the path or method it lists.
    expect((await fetch(`${gateway}/front/call?target=api&path=/admin`)).status).toBe(403);
    expect((await fetch(`${gateway}/front/call?target=api&path=/data&method=POST`)).status).toBe(403);
    // A service that lists nothing, even claiming to be front.
    const denied = await fetch(`${gateway}/rogue/call?target=api&claim=front`);
    expect(denied.status).toBe(403);
    expect(JSON.stringify(await denied.json())).toContain('service \\"rogue\\" may not call');
    // Without its identity token: 401. Through the public listener: 403.
    expect((await fetch(`${gateway}/front/call?target=api&anonymous=1`)).status).toBe(401);
    expect((await fetch(`${gateway}/data`, { headers: { "x-keelson-service": "api", "x-keelson-caller": "front" } })).status).toBe(403);
    const metrics = await (await fetch(`http://127.0.0.1:${await readAdminPort()}/metrics`)).text();
    expect(metrics).toMatch(/keelson_gateway_rejections_total\{service="api",reason="policy_denied"\} 3/);
  });

  async function readAdminPort(): Promise<number> {
    const info = JSON.parse(await readFile(join(dir, ".keelson", "gateway", "gateway.pid.json"), "utf8")) as { adminUrl: string };
    return Number(new URL(info.adminUrl).port);
  }

  it("blocks a release with a planted AWS key, naming the file and line; nothing is deployed", async () => {
    const before = JSON.parse((await api("/v1/services/api/releases")).text) as { releases: Array<{ id: string }> };
    await mkdir(join(dir, "services", "api", "src"), { recursive: true });
    await writeFile(join(dir, "services", "api", "src", "config.js"), '// settings\nexport const region = "eu-west-1";\nexport const key = "AKIAIOSFODNN7EXAMPLE";\n');
    const deploy = await keelson(["deploy", "api", "-C", dir], { timeoutMs: 120_000 });
    expect(deploy.code).toBe(1);
    expect(deploy.stdout + deploy.stderr).toMatch(/release blocked: aws-access-key-id in src\/config\.js:3/);
    expect(deploy.stdout + deploy.stderr).not.toContain("AKIAIOSFODNN7EXAMPLE");
    const after = JSON.parse((await api("/v1/services/api/releases")).text) as { releases: Array<{ id: string }> };
    expect(after.releases.map((r) => r.id)).toEqual(before.releases.map((r) => r.id));
    const events = JSON.parse((await api("/v1/events?kind=security.blocked&limit=10")).text) as { events: Array<{ subject: string }> };
    expect(events.events.map((e) => e.subject)).toContain("service/api");
    await rm(join(dir, "services", "api", "src"), { recursive: true });
  });

  it("blocks a release whose lockfile has a dependency with a critical advisory from the local advisory file", async () => {
    await writeFile(join(dir, "services", "api", "package-lock.json"), JSON.stringify(LOCKFILE, null, 2));
    const deploy = await keelson(["deploy", "api", "-C", dir], { timeoutMs: 120_000 });
    expect(deploy.code).toBe(1);
    expect(deploy.stdout + deploy.stderr).toMatch(/left-pad@1\.1\.0 has GHSA-test-left-pad \(critical\)/);
    await rm(join(dir, "services", "api", "package-lock.json"));
    // Clean again: the next deploy passes the gate and stores an SBOM with the release.
    const ok = await keelson(["deploy", "api", "-C", dir], { timeoutMs: 120_000 });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const releases = JSON.parse((await api("/v1/services/api/releases")).text) as { releases: Array<{ id: string; current?: boolean; live?: boolean }> };
    const live = releases.releases[0]?.id as string;
    const sbom = await api(`/v1/services/api/releases/${live}/sbom`);
    expect(sbom.status).toBe(200);
    expect(JSON.parse(sbom.text)).toMatchObject({ bomFormat: "CycloneDX", specVersion: "1.5", metadata: { component: { name: "api", version: live } } });
  });

  it("injects a secret into replicas, rolls it out as a new release, and never shows its value in logs, API answers or traces", async () => {
    const releasesOf = async () => (JSON.parse((await api("/v1/services/api/releases")).text) as { releases: Array<{ id: string }> }).releases.map((r) => r.id);
    const before = await releasesOf();
    const set = await keelson(["secrets", "set", "api", "DB_PASSWORD", "-C", dir], { timeoutMs: 120_000, input: `${SECRET}\n` });
    expect(set.code, set.stdout + set.stderr).toBe(0);
    // A new release, rolled out like code; the secret's version is part of its config, its value is not.
    const after = await releasesOf();
    expect(after.length).toBe(before.length + 1);
    expect(before).not.toContain(after[0]);
    const status = JSON.parse((await api("/v1/status")).text) as { services: Array<{ name: string; release: string }> };
    expect(status.services.find((x) => x.name === "api")?.release).toBe(after[0]);
    const used = (await (await fetch(`${gateway}/api/secret?trace=${TRACE_ID}`)).json()) as { length: number; sha256: string; otlp: number };
    expect(used).toEqual({ length: SECRET.length, sha256: createHash("sha256").update(SECRET).digest("hex"), otlp: 200 });

    const trace = await waitFor(
      async () => {
        const r = await api(`/v1/traces/${TRACE_ID}`);
        return r.status === 200 ? r.text : undefined;
      },
      { timeoutMs: 15_000, what: "the service's span" },
    );
    expect(trace).toContain("AUTH [redacted]");
    const logs = await keelson(["logs", "api", "-C", dir, "--tail", "200"], { timeoutMs: 30_000 });
    expect(logs.stdout).toContain("connecting with password [redacted]");
    // The service did print it: its own stdout file holds what it wrote (the platform serves it redacted).
    const { readdir } = await import("node:fs/promises");
    const logDir = join(dir, ".keelson", "logs", "api");
    const raw = (await Promise.all((await readdir(logDir)).map((f) => readFile(join(logDir, f), "utf8")))).join("");
    expect(raw).toContain(`connecting with password ${SECRET}`);

    const answers = [
      trace,
      logs.stdout + logs.stderr,
      set.stdout + set.stderr,
      (await keelson(["secrets", "list", "api", "-C", dir])).stdout,
      (await keelson(["status", "-C", dir])).stdout,
      (await api("/v1/events?limit=1000")).text,
      (await api("/v1/audit?limit=1000")).text,
      (await api("/v1/status")).text,
      (await api("/v1/traces?service=api")).text,
      (await api("/v1/services/api/releases")).text,
    ];
    for (const text of answers) expect(text).not.toContain(SECRET);
    // What the platform itself wrote to disk: its own logs, the trace store, the state store (encrypted).
    for (const file of ["controlplane.log", join("gateway", "gateway.log"), "traces.db", "state.db", "state.db-wal"]) {
      const bytes = await readFile(join(dir, ".keelson", file)).catch(() => Buffer.alloc(0));
      expect(bytes.includes(Buffer.from(SECRET)), file).toBe(false);
    }
  });

  it("answers 401 on every endpoint without a token", async () => {
    // The endpoint list of this version of the control plane, walked against the real one.
    const store = createMemoryStore();
    const tmp = await makeTempDir("keelson-endpoints-");
    const reconciler = createReconciler({ store, driver: createMemoryDriver(), project: "sec", stateDir: tmp.dir, gatewayUrl: "http://127.0.0.1:1" });
    const local = createControlPlane({ project: "sec", dir: tmp.dir, stateDir: tmp.dir, store, driver: createMemoryDriver(), reconciler, gatewayUrl: "http://127.0.0.1:1", log: { info() {}, warn() {}, error() {} }, security: await createApiSecurity({ store, project: "sec", stateDir: tmp.dir }) });
    const endpoints = local.endpoints.filter((e) => e.access !== "public");
    await local.close();
    await tmp.cleanup();
    expect(endpoints.length).toBeGreaterThan(50);
    for (const e of endpoints) {
      const path = e.path.replace(/:(\w+)/g, (_, k: string) => (k === "name" ? "api" : k === "run" ? "run-20261127-000000-abcdef" : "x"));
      const res = await fetch(`${controlPlane}${path}`, { method: e.method, headers: { "content-type": "application/json" }, ...(e.method === "GET" ? {} : { body: "{}" }) });
      expect(res.status, `${e.method} ${e.path}`).toBe(401);
      await res.arrayBuffer();
    }
    expect((await fetch(`${controlPlane}/healthz`)).status).toBe(200);
  });

  it("verifies the audit chain, and detects an edited row", async () => {
    const ok = await keelson(["audit", "--verify", "-C", dir]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/audit chain intact: \d+ records/);
    const db = new Database(join(dir, ".keelson", "state.db"));
    try {
      const row = db.prepare("SELECT seq FROM events WHERE kind = 'audit' AND actor = 'user:admin' ORDER BY seq LIMIT 1").get() as { seq: number };
      // Someone with the database file covers their tracks: the store's own guards are dropped first.
      for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'").all() as Array<{ name: string }>) db.exec(`DROP TRIGGER "${name}"`);
      db.prepare("UPDATE events SET details = json_set(details, '$.result', 'denied') WHERE seq = ?").run(row.seq);
      const broken = await keelson(["audit", "--verify", "-C", dir]);
      expect(broken.code).toBe(1);
      expect(broken.stdout + broken.stderr).toContain(`audit chain broken at record ${row.seq}`);
    } finally {
      db.close();
    }
  });
});
