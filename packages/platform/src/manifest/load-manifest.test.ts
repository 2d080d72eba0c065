import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isKeelsonError, type KeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { loadManifest, parseManifest } from "./load-manifest.js";
import type { ManifestIssue } from "./manifest-issue.js";

/** The KEELSON_ERR_MANIFEST_INVALID error that parsing `text` throws. */
function invalid(text: string, file = "keelson.yaml", options = { checkPaths: false }): { message: string; issues: ManifestIssue[] } {
  try {
    parseManifest(text, file, options);
  } catch (err) {
    if (!isKeelsonError(err)) throw err;
    expect(err.code).toBe("KEELSON_ERR_MANIFEST_INVALID");
    return { message: err.message, issues: (err.details as { issues: ManifestIssue[] }).issues };
  }
  throw new Error("expected the manifest to be rejected");
}

const VALID = `version: 1
project: shop
teams:
  commerce:
    members: [ana@example.com]
services:
  orders:
    owner: commerce
    path: services/orders
    start: node server.js
    port: 9000
    replicas: 2
    readiness: /health
    routes: [/orders]
    calls: [payments]
    env:
      LOG_LEVEL: debug
      RETRIES: 3
      VERBOSE: true
    stopTimeout: 1.5s
  payments:
    owner: commerce
    path: services/payments
    start: node server.js
    liveness: { path: /live, interval: 2s, failureThreshold: 5 }
    routes:
      - { path: /payments, host: pay.example.com, stripPrefix: true }
    startTimeout: 2m
`;

describe("parseManifest on a valid manifest", () => {
  it("applies defaults and normalizes shorthands", () => {
    const { manifest } = parseManifest(VALID, "keelson.yaml", { checkPaths: false });
    expect(manifest.controlPlane).toEqual({ host: "127.0.0.1", port: 7070 });
    expect(manifest.gateway).toEqual({ host: "127.0.0.1", port: 8080, adminPort: 8081 });
    expect(manifest.runtime).toBe("process");
    expect(manifest.teams).toEqual({ commerce: { members: ["ana@example.com"] } });
    expect(manifest.services.orders).toEqual({
      owner: "commerce",
      path: "services/orders",
      start: "node server.js",
      port: 9000,
      replicas: 2,
      readiness: { path: "/health", interval: 500, timeout: 1000, failureThreshold: 3 },
      routes: [{ path: "/orders", stripPrefix: false, auth: "public" }],
      calls: [{ service: "payments" }],
      env: { LOG_LEVEL: "debug", RETRIES: "3", VERBOSE: "true" },
      stopTimeout: 1500,
      startTimeout: 30_000,
      tls: false,
    });
    expect(manifest.services.payments).toEqual({
      owner: "commerce",
      path: "services/payments",
      start: "node server.js",
      replicas: 1,
      liveness: { path: "/live", interval: 2000, timeout: 1000, failureThreshold: 5 },
      routes: [{ path: "/payments", host: "pay.example.com", stripPrefix: true, auth: "public" }],
      calls: [],
      env: {},
      stopTimeout: 10_000,
      startTimeout: 120_000,
      tls: false,
    });
  });

  it("returns absolute file and folder, the text and its sha256", () => {
    const loaded = parseManifest(VALID, "proj/keelson.yaml", { checkPaths: false });
    expect(loaded.file).toBe(resolve("proj/keelson.yaml"));
    expect(loaded.dir).toBe(resolve("proj"));
    expect(loaded.text).toBe(VALID);
    expect(loaded.hash).toBe(createHash("sha256").update(VALID).digest("hex"));
    expect(loaded.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("freezes the manifest so nothing can change the desired state in place", () => {
    const { manifest } = parseManifest(VALID, "keelson.yaml", { checkPaths: false });
    expect(Object.isFrozen(manifest.services.orders?.routes[0])).toBe(true);
    expect(() => {
      (manifest.services.orders as { replicas: number }).replicas = 5;
    }).toThrow(TypeError);
  });

  it("accepts merge keys so services can share settings", () => {
    const text = `project: shop
services:
  orders: &base
    owner: commerce
    path: services/orders
    start: node server.js
  payments:
    <<: *base
    path: services/payments
`;
    const { manifest } = parseManifest(text, "keelson.yaml", { checkPaths: false });
    expect(manifest.services.payments).toMatchObject({ owner: "commerce", path: "services/payments", start: "node server.js" });
  });
});

describe("parseManifest errors", () => {
  it("reports every problem at once, one line each, in file order", () => {
    const text = `project: shop
runtime: podman
servces: {}
services:
  orders:
    owner: commerce
    path: services/orders
    start: node server.js
    port: 80a
    readines: /health
    replicas: 2
  payments:
    owner: commerce
    path: services/payments
`;
    const { message, issues } = invalid(text);
    expect(message).toBe(
      [
        'keelson.yaml:2:10 runtime: expected one of "process", "docker", "kubernetes", got "podman"',
        "keelson.yaml:3:1 servces: unknown key; did you mean `services`?",
        'keelson.yaml:9:11 services.orders.port: expected integer 1-65535, got "80a"',
        "keelson.yaml:10:5 services.orders.readines: unknown key; did you mean `readiness`?",
        "keelson.yaml:13:5 services.payments.start: missing required field, expected non-empty string",
      ].join("\n"),
    );
    expect(issues).toHaveLength(5);
    expect(issues[2]).toEqual({
      file: "keelson.yaml",
      line: 9,
      column: 11,
      path: "services.orders.port",
      message: 'expected integer 1-65535, got "80a"',
      expected: "integer 1-65535",
      found: '"80a"',
    });
    expect(issues[3]).toMatchObject({ path: "services.orders.readines", message: "unknown key", hint: "did you mean `readiness`?" });
  });

  it("places a missing field at the mapping it belongs in", () => {
    const { issues } = invalid(`project: shop
services:
  orders:
    path: services/orders
    start: node server.js
`);
    expect(issues).toEqual([
      {
        file: "keelson.yaml",
        line: 4,
        column: 5,
        path: "services.orders.owner",
        message:
          'missing required field, expected team name (lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters)',
        expected: 'team name (lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters)',
      },
    ]);
  });

  it("reports a missing top-level section at the top mapping", () => {
    const { message } = invalid("# a comment first\nproject: shop\n");
    expect(message).toBe("keelson.yaml:2:1 services: missing required field, expected mapping");
  });

  it("names the value found for wrong types", () => {
    const { message } = invalid(`project: shop
services:
  orders:
    owner: commerce
    path: services/orders
    start: [node, server.js]
    replicas: 2.5
    readiness: 5
    routes: /orders
    stopTimeout: 10 seconds
    liveness: { path: live }
    env: { "1A": x, OK: { nested: true } }
`);
    expect(message).toBe(
      [
        "keelson.yaml:6:12 services.orders.start: expected non-empty string, got a list",
        "keelson.yaml:7:15 services.orders.replicas: expected integer 0-100, got 2.5",
        'keelson.yaml:8:16 services.orders.readiness: expected path like "/health" or a mapping with path, interval, timeout, failureThreshold, got 5',
        'keelson.yaml:9:13 services.orders.routes: expected list, got "/orders"',
        'keelson.yaml:10:18 services.orders.stopTimeout: expected duration like "500ms", "10s", "2m", "1h" or "30d" (or a number of milliseconds), got "10 seconds"',
        'keelson.yaml:11:23 services.orders.liveness.path: expected path starting with "/", got "live"',
        'keelson.yaml:12:12 services.orders.env["1A"]: expected environment variable name (letters, digits and "_", not starting with a digit), got "1A"',
        "keelson.yaml:12:25 services.orders.env.OK: expected string, number or true/false, got a mapping",
      ].join("\n"),
    );
  });

  it("reports a badly named service at its key and still checks its body", () => {
    const { message } = invalid(`project: shop
services:
  Orders:
    owner: commerce
    path: services/orders
    start: node server.js
    replica: 2
`);
    expect(message).toBe(
      [
        'keelson.yaml:3:3 services.Orders: expected service name (lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters), got "Orders"',
        "keelson.yaml:7:5 services.Orders.replica: unknown key; did you mean `replicas`?",
      ].join("\n"),
    );
  });

  it("lists the allowed keys when no key is close to an unknown one", () => {
    const { issues } = invalid(`project: shop
services:
  web:
    owner: commerce
    path: services/web
    start: node server.js
    routes:
      - { prefix: /web }
`);
    expect(issues).toEqual([
      expect.objectContaining({ line: 8, column: 11, path: "services.web.routes[0].prefix", message: "unknown key", hint: "allowed keys: path, host, stripPrefix, rateLimit, maxBodySize, fallback, flag, auth" }),
    ]);
  });

  it("picks the union option that was meant, and reports against all options when none fits", () => {
    const { message } = invalid(`project: shop
services:
  web:
    owner: commerce
    path: services/web
    start: node server.js
    deploy:
      strategy: canary
      steps:
        - setWeight: 120
        - pause: soon
        - { setWeight: 50, pause: 1m }
    autoscale: { min: 4, max: 2 }
    slos:
      - name: fast
`);
    expect(message).toBe(
      [
        "keelson.yaml:10:22 services.web.deploy.steps[0].setWeight: expected integer 0-100, got 120",
        'keelson.yaml:11:18 services.web.deploy.steps[1].pause: expected duration like "500ms", "10s", "2m", "1h" or "30d" (or a number of milliseconds) or "manual", got "soon"',
        "keelson.yaml:12:11 services.web.deploy.steps[2]: expected mapping with exactly one of setWeight, pause, analysis, match, got a mapping",
        "keelson.yaml:13:23 services.web.autoscale.min: must not exceed autoscale.max",
        "keelson.yaml:15:9 services.web.slos[0]: an SLO needs availability, latency or both",
      ].join("\n"),
    );
  });

  it("rejects an analysis right after a header match step, at its place: its baseline would get no traffic", () => {
    const { message } = invalid(`project: shop
services:
  api:
    owner: commerce
    path: services/api
    start: node server.js
    deploy:
      strategy: canary
      steps:
        - match: { headers: { x-beta: "1" } }
        - analysis: {}
        - setWeight: 10
`);
    expect(message).toMatch(/^keelson\.yaml:11:21 services\.api\.deploy\.steps\[1\]\.analysis: no step before this analysis sets a weight above 0, .*put a setWeight of 1-99 before it/);
  });

  it("reports two services with the same name as a duplicate key", () => {
    const { message, issues } = invalid(`project: shop
services:
  orders:
    owner: commerce
    path: services/orders
    start: node server.js
  orders:
    owner: commerce
    path: services/orders-v2
    start: node server.js
`);
    expect(message).toBe('keelson.yaml:7:3 services.orders: duplicate key "orders", first defined at line 3');
    expect(issues).toHaveLength(1);
  });

  it("reports YAML syntax errors with their place and nothing built on the broken document", () => {
    const indent = invalid("project: shop\nservices:\n  orders:\n    owner: a\n   path: b\n    port: x\n");
    // Only the syntax error: "port: x" would be a schema error, but the document's shape is unknown.
    expect(indent.issues).toEqual([{ file: "keelson.yaml", line: 5, column: 1, path: "", message: "All mapping items must start at the same column" }]);

    expect(invalid("project: shop\nservices: [1, 2]]\n").message).toBe('keelson.yaml:2:17 Unexpected flow-seq-end token in YAML stream: "]"');

    const tabs = invalid("project: shop\nservices:\n\torders: {}\n");
    expect(tabs.message).toBe("keelson.yaml:3:1 Tabs are not allowed as indentation");
  });

  it("reports an alias to no anchor", () => {
    const { message } = invalid("project: shop\nservices:\n  orders: *common\n");
    expect(message).toBe("keelson.yaml:3:11 services.orders: alias *common refers to no anchor &common before it");
  });

  it("reports an empty file and a file that is not a mapping", () => {
    expect(invalid("# nothing yet\n").message).toBe("keelson.yaml:1:1 the file is empty; a manifest needs at least project and services");
    expect(invalid("- orders\n").message).toBe("keelson.yaml:1:1 expected mapping, got a list");
  });

  it("applies the cross-field rules with places", () => {
    const { message } = invalid(`project: shop
teams:
  commerce: {}
gateway:
  port: 9001
services:
  orders:
    owner: comerce
    path: services/orders
    start: node server.js
    port: 9000
    replicas: 2
    routes: [/api]
    calls: [payment, orders]
  payments:
    owner: commerce
    path: services/payments
    start: node server.js
    port: 9002
    autoscale: { min: 1, max: 3 }
    routes: ["/api/"]
  shipping:
    owner: commerce
    path: services/shipping
    start: node server.js
    port: 9003
`);
    expect(message).toBe(
      [
        "keelson.yaml:8:12 services.orders.owner: team \"comerce\" is not declared in teams; did you mean `commerce`?",
        "keelson.yaml:11:11 services.orders.port: ports 9000-9001 (2 replicas) include gateway.port 9001",
        'keelson.yaml:14:13 services.orders.calls[0]: no service named "payment"; did you mean `payments`?',
        'keelson.yaml:14:22 services.orders.calls[1]: service "orders" lists itself; calls names the other services it calls',
        // The mesh listener's default port is the gateway's + 2: 9003 here.
        "keelson.yaml:19:11 services.payments.port: ports 9002-9004 (up to 3 replicas with autoscale) include gateway.meshPort 9003 (default)",
        'keelson.yaml:21:14 services.payments.routes[0]: route "/api/" is already claimed by services.orders.routes[0]',
        "keelson.yaml:26:11 services.shipping.port: port 9003 is also gateway.meshPort (default)",
        "keelson.yaml:26:11 services.shipping.port: port 9003 is also used by services.payments (ports 9002-9004)",
      ].join("\n"),
    );
  });

  it("places problems inside a calls mapping at the field: unknown service, itself, bad method, bad path", () => {
    const { message, issues } = invalid(`project: shop
services:
  orders:
    owner: commerce
    path: services/orders
    start: node server.js
    calls:
      - payments
      - { service: payment, paths: [/charges] }
      - { service: payments, methods: [FETCH] }
      - { service: payments, paths: [charges] }
      - { service: orders }
  payments:
    owner: commerce
    path: services/payments
    start: node server.js
`);
    expect(message).toBe(
      [
        'keelson.yaml:9:20 services.orders.calls[1].service: no service named "payment"; did you mean `payments`?',
        'keelson.yaml:10:40 services.orders.calls[2].methods[0]: expected one of "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", got "FETCH"',
        'keelson.yaml:11:38 services.orders.calls[3].paths[0]: expected path starting with "/", got "charges"',
        'keelson.yaml:12:20 services.orders.calls[4].service: service "orders" lists itself; calls names the other services it calls',
      ].join("\n"),
    );
    expect(issues[0]).toEqual({
      file: "keelson.yaml",
      line: 9,
      column: 20,
      path: "services.orders.calls[1].service",
      message: 'no service named "payment"',
      found: '"payment"',
      hint: "did you mean `payments`?",
    });
  });

  it("keeps a valid calls mapping, normalized beside plain names", () => {
    const { manifest } = parseManifest(
      `project: shop
services:
  orders:
    owner: commerce
    path: services/orders
    start: node server.js
    calls:
      - stock
      - service: payments
        paths: [/charges]
        methods: [POST]
  payments: { owner: commerce, path: services/payments, start: node server.js }
  stock: { owner: commerce, path: services/stock, start: node server.js }
`,
      "keelson.yaml",
      { checkPaths: false },
    );
    expect(manifest.services.orders?.calls).toEqual([{ service: "stock" }, { service: "payments", paths: ["/charges"], methods: ["POST"] }]);
  });

  it("places route auth and security policy problems at their field", () => {
    const { message } = invalid(`project: shop
security:
  scan:
    vulnerabilities: { block: severe }
services:
  web:
    owner: commerce
    path: services/web
    start: node server.js
    routes:
      - path: /account
        auth: { jwt: { issuer: https://id.shop.test/ } }
      - path: /both
        auth: { jwt: { issuer: https://id.shop.test/, jwksUrl: https://id.shop.test/jwks, jwksFile: jwks.json } }
      - path: /partner
        auth: { apiKey: { header: x-partner-key } }
      - path: /private
        auth: private
`);
    expect(message).toBe(
      [
        'keelson.yaml:4:31 security.scan.vulnerabilities.block: expected one of "critical", "high", "moderate", "low", "none", got "severe"',
        "keelson.yaml:12:22 services.web.routes[0].auth.jwt: give exactly one of jwksUrl and jwksFile",
        "keelson.yaml:14:22 services.web.routes[1].auth.jwt: give exactly one of jwksUrl and jwksFile",
        'keelson.yaml:16:25 services.web.routes[2].auth.apiKey.secret: missing required field, expected secret name (letters, digits and "_", not starting with a digit)',
        'keelson.yaml:18:15 services.web.routes[3].auth: expected "public", a mapping with apiKey, or a mapping with jwt, got "private"',
      ].join("\n"),
    );
  });

  it("shows the file relative to the working directory, or as given when outside it", () => {
    const inside = invalid("project: shop\n", join(process.cwd(), "proj", "keelson.yaml"));
    expect(inside.issues[0]?.file).toBe(join("proj", "keelson.yaml"));
    const outside = resolve("/", "elsewhere", "keelson.yaml");
    expect(invalid("project: shop\n", outside).issues[0]?.file).toBe(outside);
  });
});

describe("loadManifest", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-manifest-"));
  });
  afterEach(async () => {
    await cleanup();
  });

  const SMALL = `project: shop
services:
  orders:
    owner: commerce
    path: services/orders
    start: node server.js
`;

  it("reads keelson.yaml from a folder, or the file given", async () => {
    await mkdir(join(dir, "services", "orders"), { recursive: true });
    await writeFile(join(dir, "keelson.yaml"), SMALL);
    await writeFile(join(dir, "staging.yaml"), SMALL.replace("shop", "shop-staging"));

    const fromDir = await loadManifest(dir);
    expect(fromDir.file).toBe(join(dir, "keelson.yaml"));
    expect(fromDir.dir).toBe(dir);
    expect(fromDir.manifest.project).toBe("shop");
    expect(fromDir.hash).toBe(createHash("sha256").update(SMALL).digest("hex"));

    const fromFile = await loadManifest(join(dir, "staging.yaml"));
    expect(fromFile.file).toBe(join(dir, "staging.yaml"));
    expect(fromFile.manifest.project).toBe("shop-staging");
  });

  it("throws KEELSON_ERR_MANIFEST_NOT_FOUND naming the path", async () => {
    const err = (await loadManifest(dir).catch((e: unknown) => e)) as KeelsonError;
    expect(err.code).toBe("KEELSON_ERR_MANIFEST_NOT_FOUND");
    expect(err.message).toBe(`no manifest at ${join(dir, "keelson.yaml")}; run \`keelson init\` to create one`);
    expect(err.details).toEqual({ path: join(dir, "keelson.yaml") });

    const missing = join(dir, "nope", "keelson.yaml");
    const err2 = (await loadManifest(missing).catch((e: unknown) => e)) as KeelsonError;
    expect(err2.code).toBe("KEELSON_ERR_MANIFEST_NOT_FOUND");
    expect(err2.message).toContain(missing);
  });

  it("checks that service folders exist beside the manifest", async () => {
    await mkdir(join(dir, "services", "orders"), { recursive: true });
    await writeFile(join(dir, "services", "payments"), "not a folder");
    await writeFile(
      join(dir, "keelson.yaml"),
      `project: shop
services:
  orders:
    owner: commerce
    path: services/order
    start: node server.js
  payments:
    owner: commerce
    path: services/payments
    start: node server.js
`,
    );
    const err = (await loadManifest(dir).catch((e: unknown) => e)) as KeelsonError;
    expect(err.code).toBe("KEELSON_ERR_MANIFEST_INVALID");
    const { issues } = err.details as { issues: ManifestIssue[] };
    expect(issues.map((i) => [i.line, i.column, i.path, i.message, i.hint])).toEqual([
      [5, 11, "services.orders.path", 'folder "services/order" does not exist', "did you mean `services/orders`?"],
      [9, 11, "services.payments.path", '"services/payments" is a file, expected a folder', undefined],
    ]);

    // The same text passes when paths are not checked (e.g. before the folders are created).
    const text = await import("node:fs/promises").then((fs) => fs.readFile(join(dir, "keelson.yaml"), "utf8"));
    expect(parseManifest(text, join(dir, "keelson.yaml"), { checkPaths: false }).manifest.services.orders?.path).toBe("services/order");
  });
});

describe("flags in the manifest", () => {
  const FLAGS = `project: shop
services: {}
flags:
  new-checkout:
    state: ENABLED
    variants: { on: true, off: "no" }
    defaultVariant: of
    targeting:
      if:
        - { sometimes: [1] }
        - on
        - off
  a:
    state: ENABLED
    variants: { x: 1 }
    defaultVariant: x
    prerequisites: [{ flag: b, variant: y }]
  b:
    state: ENABLED
    variants: { y: 1 }
    prerequisites: [{ flag: a, variant: x }]
`;

  it("reports every flag problem with its full path at its place, like other manifest errors", () => {
    const { message, issues } = invalid(FLAGS);
    expect(issues.map((i) => [i.line, i.column, i.path, i.message])).toEqual([
      [6, 32, "flags.new-checkout.variants.off", 'variant "off" is a string but "on" is a boolean; all variants of a flag have one type'],
      [7, 21, "flags.new-checkout.defaultVariant", '"of" is not a variant (variants: on, off)'],
      [10, 24, "flags.new-checkout.targeting.if[0].sometimes", 'unknown operator "sometimes"'],
      [17, 20, "flags.a.prerequisites", "prerequisite cycle: a → b → a"],
      [19, 5, "flags.b.defaultVariant", "missing required field, expected non-empty string"],
    ]);
    expect(message.split("\n")[1]).toBe('keelson.yaml:7:21 flags.new-checkout.defaultVariant: "of" is not a variant (variants: on, off)');
  });

  it("accepts valid flags and keeps them as desired state", () => {
    const text = `project: shop
services: {}
flags:
  new-checkout:
    state: ENABLED
    variants: { on: true, off: false }
    defaultVariant: off
    targeting: { if: [{ $ref: staff }, on, off] }
flagEvaluators:
  staff: { ends_with: [{ var: email }, "@shop.test"] }
`;
    const { manifest } = parseManifest(text, "keelson.yaml", { checkPaths: false });
    expect(manifest.flags?.["new-checkout"]?.targeting).toEqual({ if: [{ $ref: "staff" }, "on", "off"] });
    expect(Object.isFrozen(manifest.flags?.["new-checkout"]?.variants)).toBe(true);
  });
});

describe("docs/manifest.md", () => {
  it("has an example that is a valid manifest", async () => {
    const { readFile } = await import("node:fs/promises");
    const docs = await readFile(new URL("../../../../docs/manifest.md", import.meta.url), "utf8");
    const example = /## Example\n\n```yaml\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(example).toBeDefined();
    const { manifest } = parseManifest(example ?? "", "keelson.yaml", { checkPaths: false });
    expect(Object.keys(manifest.services)).toEqual(["orders", "payments"]);
    expect(manifest.services.payments?.deploy?.steps).toHaveLength(5);
  });

  it("has a flags example that is valid", async () => {
    const { readFile } = await import("node:fs/promises");
    const docs = await readFile(new URL("../../../../docs/manifest.md", import.meta.url), "utf8");
    const example = /## Flags[^\n]*\n[\s\S]*?```yaml\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(example).toBeDefined();
    const { manifest } = parseManifest(`project: shop\nservices: {}\n${example ?? ""}`, "keelson.yaml", { checkPaths: false });
    expect(Object.keys(manifest.flags ?? {})).toEqual(["new-checkout", "checkout-banner"]);
    expect(Object.keys(manifest.flagEvaluators ?? {})).toEqual(["staff"]);
  });
});
