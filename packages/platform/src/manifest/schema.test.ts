import { describe, expect, it } from "vitest";
import { Duration, ManifestSchema, ServiceSpecSchema, meshPortOf, mtlsEnabled, parseDuration } from "./schema.js";

const service = { owner: "commerce", path: "services/orders", start: "node server.js" };

describe("parseDuration", () => {
  it("turns every unit into milliseconds", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("10s")).toBe(10_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("30d")).toBe(2_592_000_000);
    expect(parseDuration("0.0005s")).toBe(1);
  });

  it("rejects anything else", () => {
    expect(() => parseDuration("10")).toThrow("not a duration: 10");
    expect(() => parseDuration("10 s")).toThrow("not a duration: 10 s");
    expect(() => parseDuration("-1s")).toThrow("not a duration: -1s");
    expect(() => parseDuration("1w")).toThrow("not a duration: 1w");
  });
});

describe("Duration", () => {
  it("accepts milliseconds as a number and strings with a unit", () => {
    expect(Duration.parse(250)).toBe(250);
    expect(Duration.parse("2m")).toBe(120_000);
  });

  it("rejects negative, fractional and unitless values", () => {
    expect(Duration.safeParse(-1).success).toBe(false);
    expect(Duration.safeParse(1.5).success).toBe(false);
    expect(Duration.safeParse("15").success).toBe(false);
  });
});

describe("ServiceSpecSchema", () => {
  it("parses canary analysis, match and affinity, and rejects an analysis without metrics or bounds", () => {
    const canary = (deploy: unknown) => ServiceSpecSchema.safeParse({ ...service, deploy: { strategy: "canary", ...(deploy as object) } });
    const ok = canary({
      affinity: { header: "x-user-id" },
      analysis: { interval: "2s", duration: "1m", metrics: ["errors", { name: "q", query: "sum(q)", max: 3 }] },
      steps: [{ match: { headers: { "X-Beta": "1", "x-group": { prefix: "qa-" } }, cookies: { c: { regex: "a.*" } } } }, { setWeight: 10 }, { analysis: { dryRun: true } }],
    });
    expect(ok.success).toBe(true);
    const deploy = ok.data?.deploy;
    expect(deploy?.analysis).toEqual({ interval: 2000, duration: 60_000, metrics: ["errors", { name: "q", query: "sum(q)", max: 3, failureLimit: 2 }] });
    expect(deploy?.steps?.[0]).toEqual({ match: { headers: { "X-Beta": { exact: "1" }, "x-group": { prefix: "qa-" } }, cookies: { c: { regex: "a.*" } } } });
    const issue = (r: ReturnType<typeof canary>) => r.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    expect(issue(canary({ steps: [{ setWeight: 10 }, { analysis: { metrics: [] } }] }))).toContainEqual(expect.stringMatching(/analysis.metrics: an analysis needs at least one metric/));
    expect(canary({ steps: [{ setWeight: 10 }, { analysis: { metrics: [{ name: "q", query: "sum(q)" }] } }] }).success).toBe(false);
    expect(canary({ steps: [{ match: {} }] }).success).toBe(false);
    expect(canary({ steps: [{ match: { headers: { a: { regex: "(" } } } }] }).success).toBe(false);
    expect(canary({ steps: [{ setWeight: 101 }] }).success).toBe(false);
    expect(canary({ affinity: { header: "a", cookie: "b" }, steps: [{ setWeight: 1 }] }).success).toBe(false);
  });

  it("fills in defaults", () => {
    expect(ServiceSpecSchema.parse(service)).toEqual({
      ...service,
      replicas: 1,
      routes: [],
      calls: [],
      env: {},
      stopTimeout: 10_000,
      startTimeout: 30_000,
      tls: false,
    });
  });

  it("expands probe and route shorthands", () => {
    const spec = ServiceSpecSchema.parse({ ...service, readiness: "/ready", liveness: { path: "/live", timeout: "2s" }, routes: ["/orders", { host: "shop.test" }] });
    expect(spec.readiness).toEqual({ path: "/ready", interval: 500, timeout: 1000, failureThreshold: 3 });
    expect(spec.liveness).toEqual({ path: "/live", interval: 500, timeout: 2000, failureThreshold: 3 });
    expect(spec.routes).toEqual([
      { path: "/orders", stripPrefix: false, auth: "public" },
      { path: "/", host: "shop.test", stripPrefix: false, auth: "public" },
    ]);
  });

  it("parses a route's flag: context from headers and cookies (none by default), variants with a service and/or version", () => {
    const flag = {
      key: "checkout-experiment",
      context: { targetingKey: { header: "x-user-id" }, visitor: { cookie: "shop-visitor" } },
      variants: { control: { version: "stable" }, treatment: { service: "checkout-v2", version: "canary" } },
    };
    expect(ServiceSpecSchema.parse({ ...service, routes: [{ path: "/checkout", flag }] }).routes[0]?.flag).toEqual(flag);
    expect(ServiceSpecSchema.parse({ ...service, routes: [{ flag: { key: "f", variants: { on: { service: "b" } } } }] }).routes[0]?.flag).toEqual({
      key: "f",
      context: {},
      variants: { on: { service: "b" } },
    });
  });

  it("rejects route flag variants and context of the wrong shape, naming the field", () => {
    const problems = (flag: unknown) =>
      ServiceSpecSchema.safeParse({ ...service, routes: [{ path: "/", flag }] }).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    const key = "checkout-experiment";
    expect(problems({ key, variants: { treatment: {} } })).toContain("routes.0.flag.variants.treatment: a variant needs service, version or both");
    expect(problems({ key, variants: {} })).toContain("routes.0.flag.variants: list at least one variant");
    expect(problems({ key, variants: { treatment: { service: "Checkout_V2" } } }).join("\n")).toMatch(/routes\.0\.flag\.variants\.treatment\.service: service name must be/);
    expect(problems({ key, variants: { treatment: { release: "r-1" } } }).join("\n")).toMatch(/routes\.0\.flag\.variants\.treatment/);
    expect(problems({ key: "-bad", variants: { on: { version: "canary" } } }).join("\n")).toMatch(/routes\.0\.flag\.key: flag key must be/);
    expect(problems({ key, context: { targetingKey: { header: "x-user-id", cookie: "uid" } }, variants: { on: { version: "canary" } } })).not.toEqual([]);
    expect(problems({ key, context: { "user.id": { header: "x-user-id" } }, variants: { on: { version: "canary" } } })).not.toEqual([]);
  });

  it("normalizes calls to { service } mappings, keeping the paths and methods a mapping allows", () => {
    const spec = ServiceSpecSchema.parse({
      ...service,
      calls: ["payments", { service: "ledger", paths: ["/charges", "/refunds/"], methods: ["POST", "GET"] }, { service: "stock", methods: ["GET"] }],
    });
    expect(spec.calls).toEqual([
      { service: "payments" },
      { service: "ledger", paths: ["/charges", "/refunds/"], methods: ["POST", "GET"] },
      { service: "stock", methods: ["GET"] },
    ]);
  });

  it("rejects calls with a bad method, a path without a leading slash, empty lists, unknown keys or a bad name", () => {
    // zod reports inside the mapping when only that option fits, else at the entry; parseManifest
    // then places each problem (see load-manifest.test.ts).
    const problems = (call: unknown) => ServiceSpecSchema.safeParse({ ...service, calls: [call] }).error?.issues.map((i) => `${i.code} ${i.path.join(".")}`) ?? [];
    expect(problems({ service: "payments", methods: ["FETCH"] })).toEqual(["invalid_union calls.0"]);
    expect(problems({ service: "payments", methods: ["get"] })).toEqual(["invalid_union calls.0"]);
    expect(problems({ service: "payments", paths: ["charges"] })).toEqual(["invalid_format calls.0.paths.0"]);
    expect(problems({ service: "payments", paths: [] })).toEqual(["too_small calls.0.paths"]);
    expect(problems({ service: "payments", verbs: ["GET"] })).toEqual(["unrecognized_keys calls.0"]);
    expect(problems({ paths: ["/charges"] })).toEqual(["invalid_union calls.0"]);
    expect(problems("Payments")).toEqual(["invalid_union calls.0"]);
  });

  it("makes routes public unless they set auth, and parses API key and JWT auth with their defaults", () => {
    const routes = ServiceSpecSchema.parse({
      ...service,
      routes: [
        { path: "/open" },
        { path: "/partner", auth: { apiKey: { secret: "PARTNER_KEYS" } } },
        { path: "/ops", auth: { apiKey: { secret: "OPS_KEYS", header: "x-ops-key" } } },
        { path: "/account", auth: { jwt: { issuer: "https://id.shop.test/", audience: "shop", jwksUrl: "https://id.shop.test/.well-known/jwks.json" } } },
        { path: "/internal", auth: { jwt: { issuer: "ops", jwksFile: "keys/jwks.json", algorithms: ["ES256", "EdDSA"] } } },
      ],
    }).routes;
    expect(routes).toEqual([
      { path: "/open", stripPrefix: false, auth: "public" },
      { path: "/partner", stripPrefix: false, auth: { apiKey: { secret: "PARTNER_KEYS", header: "x-api-key" } } },
      { path: "/ops", stripPrefix: false, auth: { apiKey: { secret: "OPS_KEYS", header: "x-ops-key" } } },
      { path: "/account", stripPrefix: false, auth: { jwt: { issuer: "https://id.shop.test/", audience: "shop", jwksUrl: "https://id.shop.test/.well-known/jwks.json" } } },
      { path: "/internal", stripPrefix: false, auth: { jwt: { issuer: "ops", jwksFile: "keys/jwks.json", algorithms: ["ES256", "EdDSA"] } } },
    ]);
  });

  it("rejects route auth of the wrong shape: a JWT needs exactly one key source", () => {
    const problems = (auth: unknown) =>
      ServiceSpecSchema.safeParse({ ...service, routes: [{ path: "/", auth }] }).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    expect(problems({ jwt: { issuer: "https://id.shop.test/" } })).toEqual(["routes.0.auth.jwt: give exactly one of jwksUrl and jwksFile"]);
    expect(problems({ jwt: { issuer: "https://id.shop.test/", jwksUrl: "https://id.shop.test/jwks", jwksFile: "jwks.json" } })).toEqual([
      "routes.0.auth.jwt: give exactly one of jwksUrl and jwksFile",
    ]);
    expect(problems({ jwt: { issuer: "i", jwksUrl: "ftp://id.shop.test/jwks" } })).not.toEqual([]);
    expect(problems({ jwt: { issuer: "i", jwksFile: "jwks.json", algorithms: ["HS256"] } })).not.toEqual([]);
    expect(problems({ apiKey: { secret: "KEYS", header: "X-Api-Key" } })).not.toEqual([]);
    expect(problems({ apiKey: { secret: "1KEYS" } })).not.toEqual([]);
    expect(problems({ apiKey: { secret: "KEYS" }, jwt: { issuer: "i", jwksFile: "jwks.json" } })).not.toEqual([]);
    expect(problems("private")).not.toEqual([]);
  });

  it("turns env values into strings", () => {
    expect(ServiceSpecSchema.parse({ ...service, env: { A: 1, B: false, C: "x" } }).env).toEqual({ A: "1", B: "false", C: "x" });
  });

  it("defaults the deploy strategy and the SLO window", () => {
    const spec = ServiceSpecSchema.parse({ ...service, deploy: {}, slos: [{ name: "avail", availability: 99.9 }] });
    expect(spec.deploy).toEqual({ strategy: "rolling", drain: 1000, rollbackWindow: 600_000, timeout: 600_000 });
    expect(spec.slos).toEqual([{ name: "avail", availability: 99.9, window: 30 * 86_400_000 }]);
  });

  it("defaults the pipeline's include, stage timeout and retention", () => {
    const spec = ServiceSpecSchema.parse({ ...service, pipeline: { stages: [{ name: "test", run: "npm test", timeout: "2m" }] } });
    expect(spec.pipeline).toEqual({ stages: [{ name: "test", run: "npm test", timeout: 120_000 }], include: [], stageTimeout: 600_000, retainReleases: 10 });
  });

  it("requires an SLO to have an objective", () => {
    const result = ServiceSpecSchema.safeParse({ ...service, slos: [{ name: "empty" }] });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe("an SLO needs availability, latency or both");
  });

  it("requires autoscale.min <= autoscale.max", () => {
    const result = ServiceSpecSchema.safeParse({ ...service, autoscale: { min: 3, max: 2 } });
    expect(result.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([["autoscale.min", "must not exceed autoscale.max"]]);
  });

  it("names the field of an autoscale target that cannot be met", () => {
    const issues = (autoscale: unknown) => ServiceSpecSchema.safeParse({ ...service, autoscale }).error?.issues.map((i) => [i.path.join("."), i.message]);
    expect(issues({ min: 1, max: 3, target: {} })).toEqual([["autoscale.target", "give at least one of inflight, rps, p95, cpu"]]);
    expect(issues({ min: 1, max: 3, target: { inflight: 0 } })?.[0]?.[0]).toBe("autoscale.target.inflight");
    expect(issues({ min: 1, max: 3, target: { memory: 50 } })?.[0]?.[0]).toBe("autoscale.target");
    expect(issues({ min: 1, max: 3, scaleToZero: { idle: "1m" } })).toEqual([["autoscale.scaleToZero", "needs autoscale.min: 0"]]);
    expect(issues({ min: 1, max: 3, scaleDown: { policies: [{ type: "nodes", value: 1, period: "15s" }] } })?.[0]?.[0]).toBe("autoscale.scaleDown.policies.0.type");
    const ok = ServiceSpecSchema.parse({ ...service, autoscale: { min: 0, max: 4, target: { p95: "200ms" }, scaleDown: { stabilization: "2m" }, scaleToZero: { idle: "10m" } } });
    expect(ok.autoscale).toEqual({ min: 0, max: 4, target: { p95: 200 }, scaleDown: { stabilization: 120_000 }, scaleToZero: { idle: 600_000 } });
  });

  it("refuses autoscale durations of 0 where 0 means nothing, naming the field (regression: p95 0 scaled to max)", () => {
    const issues = (autoscale: unknown) => ServiceSpecSchema.safeParse({ ...service, autoscale }).error?.issues.map((i) => [i.path.join("."), i.message]);
    expect(issues({ min: 1, max: 3, target: { p95: 0 } })).toEqual([["autoscale.target.p95", "must be more than 0 (no latency can meet a target of 0)"]]);
    expect(issues({ min: 1, max: 3, target: { p95: "0ms" } })).toEqual([["autoscale.target.p95", "must be more than 0 (no latency can meet a target of 0)"]]);
    expect(issues({ min: 1, max: 3, window: "0s" })).toEqual([["autoscale.window", "must be 1s to 60s (the gateway keeps the last 60 seconds, in whole seconds)"]]);
    expect(issues({ min: 1, max: 3, window: "2m" })?.[0]?.[0]).toBe("autoscale.window");
    expect(issues({ min: 1, max: 3, interval: 0 })).toEqual([["autoscale.interval", "must be more than 0 (the autoscaler would look without pause)"]]);
    expect(issues({ min: 1, max: 3, scaleUp: { policies: [{ type: "pods", value: 4, period: "0s" }] } })).toEqual([["autoscale.scaleUp.policies.0.period", "must be more than 0 (a period of 0 would limit nothing)"]]);
    expect(issues({ min: 0, max: 3, scaleToZero: { holdTimeout: 0 } })?.[0]?.[0]).toBe("autoscale.scaleToZero.holdTimeout");
    expect(issues({ min: 0, max: 3, scaleToZero: { activation: 0 } })?.[0]?.[0]).toBe("autoscale.scaleToZero.activation");
    // 0 stays meaningful where it is: no stabilization, stop at once when idle.
    const ok = ServiceSpecSchema.parse({ ...service, autoscale: { min: 0, max: 3, window: "1s", interval: "10ms", target: { p95: "1ms" }, scaleUp: { stabilization: 0 }, scaleToZero: { idle: 0, activation: 3 } } });
    expect(ok.autoscale).toEqual({ min: 0, max: 3, window: 1_000, interval: 10, target: { p95: 1 }, scaleUp: { stabilization: 0 }, scaleToZero: { idle: 0, activation: 3 } });
  });

  it("telemetry.prometheus.scrapeInterval: a duration above 0, read as milliseconds", () => {
    const parse = (prometheus: object) => ManifestSchema.safeParse({ project: "shop", services: {}, telemetry: { prometheus } });
    expect(parse({ url: "http://127.0.0.1:9090", scrapeInterval: "15s" }).data?.telemetry?.prometheus).toEqual({ url: "http://127.0.0.1:9090", scrapeInterval: 15_000 });
    expect(parse({ url: "http://127.0.0.1:9090" }).data?.telemetry?.prometheus).toEqual({ url: "http://127.0.0.1:9090" });
    expect(parse({ url: "http://127.0.0.1:9090", scrapeInterval: "0s" }).error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["telemetry.prometheus.scrapeInterval", "must be more than 0 (Prometheus would never take a new sample)"],
    ]);
  });

  it("reads a memory limit as bytes and refuses one under 1mb", () => {
    expect(ServiceSpecSchema.parse({ ...service, resources: { memory: "256mb" } }).resources).toEqual({ memory: 256 * 1024 * 1024 });
    expect(ServiceSpecSchema.safeParse({ ...service, resources: { memory: "512kb" } }).error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([["resources.memory", "must be at least 1mb"]]);
  });

  it("rejects names that are not DNS labels", () => {
    for (const owner of ["Commerce", "1team", "team-", "a_b", "x".repeat(64)]) {
      expect(ServiceSpecSchema.safeParse({ ...service, owner }).success, owner).toBe(false);
    }
    for (const owner of ["a", "team-2", "x".repeat(63)]) {
      expect(ServiceSpecSchema.safeParse({ ...service, owner }).success, owner).toBe(true);
    }
  });
});

describe("ManifestSchema", () => {
  it("fills in top-level defaults", () => {
    expect(ManifestSchema.parse({ project: "shop", services: {} })).toEqual({
      version: 1,
      project: "shop",
      controlPlane: { host: "127.0.0.1", port: 7070 },
      gateway: { host: "127.0.0.1", port: 8080, adminPort: 8081 },
      runtime: "process",
      security: {
        certTtl: 86_400_000,
        scan: { secrets: "block", vulnerabilities: { block: "critical", advisories: [], npmAudit: false }, licenses: { deny: [] } },
      },
      services: {},
    });
  });

  it("fills in defaults inside partly written sections", () => {
    const m = ManifestSchema.parse({ project: "shop", gateway: { port: 9080 }, teams: { web: {} }, services: {} });
    expect(m.gateway).toEqual({ host: "127.0.0.1", port: 9080, adminPort: 8081 });
    expect(m.teams).toEqual({ web: { members: [] } });
  });

  it("takes a written security section, filling in the rest of it", () => {
    const m = ManifestSchema.parse({
      project: "shop",
      services: {},
      security: {
        mtls: true,
        certTtl: "1h",
        scan: { secrets: "warn", allowlist: ".keelson-allowlist", vulnerabilities: { block: "high", advisories: ["advisories/"] }, licenses: { deny: ["AGPL-3.0-only"] } },
        api: { tls: { cert: "tls/api.pem", key: "tls/api-key.pem" } },
      },
    });
    expect(m.security).toEqual({
      mtls: true,
      certTtl: 3_600_000,
      scan: {
        secrets: "warn",
        allowlist: ".keelson-allowlist",
        vulnerabilities: { block: "high", advisories: ["advisories/"], npmAudit: false },
        licenses: { deny: ["AGPL-3.0-only"] },
      },
      api: { tls: { cert: "tls/api.pem", key: "tls/api-key.pem" } },
    });
  });

  it("rejects security values outside their sets, naming the field", () => {
    const problems = (security: unknown) => ManifestSchema.safeParse({ project: "shop", services: {}, security }).error?.issues.map((i) => i.path.join(".")) ?? [];
    expect(problems({ scan: { vulnerabilities: { block: "severe" } } })).toEqual(["security.scan.vulnerabilities.block"]);
    expect(problems({ scan: { secrets: "ignore" } })).toEqual(["security.scan.secrets"]);
    expect(problems({ certTtl: "1 day" })).toEqual(["security.certTtl"]);
    expect(problems({ api: { tls: { cert: "api.pem" } } })).toEqual(["security.api.tls.key"]);
    expect(problems({ mtls: "yes" })).toEqual(["security.mtls"]);
  });

  it("keeps gateway.meshPort optional: meshPortOf gives port + 2 unless it is set", () => {
    const gateway = (g: object) => ManifestSchema.parse({ project: "shop", services: {}, gateway: g }).gateway;
    expect(gateway({ port: 9080 })).toEqual({ host: "127.0.0.1", port: 9080, adminPort: 8081 });
    expect(gateway({ port: 9080, meshPort: 9100 })).toEqual({ host: "127.0.0.1", port: 9080, adminPort: 8081, meshPort: 9100 });
    expect(meshPortOf(ManifestSchema.parse({ project: "shop", services: {} }).gateway)).toBe(8082);
    expect(meshPortOf(gateway({ port: 9080 }))).toBe(9082);
    expect(meshPortOf(gateway({ port: 9080, meshPort: 9100 }))).toBe(9100);
    // No room above the public port: the mesh listener goes two below it.
    expect(meshPortOf({ port: 65_534 })).toBe(65_532);
    expect(ManifestSchema.safeParse({ project: "shop", services: {}, gateway: { meshPort: 70_000 } }).success).toBe(false);
  });

  it("turns mTLS on by default for docker and kubernetes, off for processes; security.mtls wins", () => {
    const manifest = (extra: object) => ManifestSchema.parse({ project: "shop", services: {}, ...extra });
    expect(mtlsEnabled(manifest({}))).toBe(false);
    expect(mtlsEnabled(manifest({ runtime: "process" }))).toBe(false);
    expect(mtlsEnabled(manifest({ runtime: "docker" }))).toBe(true);
    expect(mtlsEnabled(manifest({ runtime: "kubernetes" }))).toBe(true);
    expect(mtlsEnabled(manifest({ runtime: "process", security: { mtls: true } }))).toBe(true);
    expect(mtlsEnabled(manifest({ runtime: "docker", security: { mtls: false } }))).toBe(false);
    expect(mtlsEnabled(manifest({ runtime: "kubernetes", security: { mtls: false } }))).toBe(false);
  });

  it("rejects unknown keys and other versions", () => {
    expect(ManifestSchema.safeParse({ project: "shop", services: {}, extra: 1 }).success).toBe(false);
    expect(ManifestSchema.safeParse({ version: 2, project: "shop", services: {} }).success).toBe(false);
  });

  it("keeps flags in flagd's format with Keelson's fields, targeting as written", () => {
    const targeting = { if: [{ ends_with: [{ var: "email" }, "@shop.test"] }, "on", { fractional: [["on", 10], ["off", 90]] }] };
    const flag = { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", targeting, type: "release", owner: "commerce", safeVariant: "off", prerequisites: [{ flag: "base", variant: "yes" }], metadata: { jira: "SHOP-1", weight: 2 } };
    const m = ManifestSchema.parse({ project: "shop", services: {}, flags: { "new-checkout": flag }, flagEvaluators: { staff: { "==": [1, 1] } } });
    expect(m.flags?.["new-checkout"]).toEqual(flag);
    expect(m.flagEvaluators).toEqual({ staff: { "==": [1, 1] } });
  });

  it("checks the structure of flags: keys, required fields, states, unknown fields", () => {
    const flag = { state: "ENABLED", variants: { on: true }, defaultVariant: "on" };
    const paths = (flags: unknown) => ManifestSchema.safeParse({ project: "shop", services: {}, flags }).error?.issues.map((i) => i.path.join("."));
    expect(paths({ "Release_1.x": flag })).toBeUndefined();
    expect(paths({ "-bad": flag })).toEqual(["flags.-bad"]);
    expect(paths({ a: { state: "ENABLED", variants: { on: true } } })).toEqual(["flags.a.defaultVariant"]);
    expect(paths({ a: { ...flag, state: "on" } })).toEqual(["flags.a.state"]);
    expect(paths({ a: { ...flag, colour: "red" } })).toEqual(["flags.a"]);
  });
});
