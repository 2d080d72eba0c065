import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { checkManifestRules } from "./manifest-rules.js";

const base = { owner: "commerce", path: "services/x", start: "node server.js" };
const rules = (data: unknown) => checkManifestRules(data, { dir: "/nowhere", checkPaths: false });
const lines = (data: unknown) => rules(data).map((i) => `${i.path.join(".")}: ${i.message}${i.hint === undefined ? "" : `; ${i.hint}`}`);

describe("checkManifestRules", () => {
  it("finds nothing wrong in a consistent manifest", () => {
    expect(
      rules({
        project: "shop",
        teams: { commerce: {} },
        services: {
          orders: { ...base, port: 9000, replicas: 2, routes: ["/orders"], calls: ["payments"] },
          payments: { ...base, port: 9002, routes: ["/payments", { path: "/orders", host: "admin.test" }] },
        },
      }),
    ).toEqual([]);
  });

  it("lets a service serve TLS only with mTLS on (security.mtls, or a container runtime)", () => {
    const services = { orders: { ...base, tls: true }, web: { ...base, tls: false } };
    expect(lines({ services })).toEqual(["services.orders.tls: tls: true needs mTLS, which gives replicas their certificates: set security.mtls: true"]);
    expect(lines({ services, security: { mtls: false }, runtime: "docker" })).toHaveLength(1);
    expect(lines({ services, security: { mtls: true } })).toEqual([]);
    expect(lines({ services, runtime: "docker" })).toEqual([]);
  });

  it("reserves the names of Keelson's own identities", () => {
    const services = { "keelson-gateway": { ...base }, "keelson-controlplane": { ...base }, keelson: { ...base } };
    expect(lines({ services })).toEqual([
      'services.keelson-gateway: "keelson-gateway" is reserved for Keelson\'s own identity; choose another service name',
      'services.keelson-controlplane: "keelson-controlplane" is reserved for Keelson\'s own identity; choose another service name',
    ]);
  });

  it("checks pipelines and deploy strategies against each other", () => {
    expect(
      lines({
        services: {
          a: { ...base, build: "npm run build", pipeline: { stages: [{ name: "test", run: "npm test" }, { name: "test", run: "npm test" }] } },
          b: { ...base, port: 9100, deploy: { strategy: "blueGreen" } },
          c: { ...base, deploy: { strategy: "canary" } },
          d: { ...base, deploy: { maxSurge: 0, maxUnavailable: 0, steps: [{ setWeight: 10 }] } },
          ok: { ...base, deploy: { strategy: "canary", steps: [{ setWeight: 10 }, { pause: "manual" }] }, pipeline: { stages: [{ name: "build", run: "make" }] } },
        },
      }),
    ).toEqual([
      "services.a.build: build and pipeline.stages both say what to run; with stages, put the build command in a stage",
      'services.a.pipeline.stages.1.name: stage "test" is listed twice',
      "services.b.deploy.strategy: blueGreen runs the old and the new release side by side, which needs ports Keelson picks; remove services.b.port",
      "services.c.deploy.steps: a canary rollout needs steps, e.g. [{ setWeight: 10 }, { pause: 1m }, { setWeight: 50 }]",
      "services.d.deploy.maxUnavailable: maxSurge and maxUnavailable are both 0, so a rolling update could never replace a replica",
      "services.d.deploy.steps: steps are for strategy canary; strategy is rolling",
    ]);
  });

  it("checks canary steps: increasing weights within maxWeight, analyses at a weight that gives the baseline traffic, PromQL with a Prometheus", () => {
    const analysis = { analysis: { metrics: [{ name: "queue", query: "sum(queue_depth)", max: 10 }] } };
    const noWeight =
      "no step before this analysis sets a weight above 0, so its baseline (which gets the canary's weighted share; match steps send requests to the canary only) would get no requests and the analysis could never pass; put a setWeight of 1-99 before it, e.g. { setWeight: 10 }";
    expect(
      lines({
        services: {
          a: { ...base, deploy: { strategy: "canary", maxWeight: 40, steps: [{ setWeight: 20 }, { setWeight: 20 }, { setWeight: 10 }, { setWeight: 50 }] } },
          b: { ...base, deploy: { strategy: "canary", steps: [{ analysis: {} }, { setWeight: 0 }, { analysis: {} }, { match: { headers: { "x-beta": "1" } } }, analysis] } },
          c: { ...base, deploy: { strategy: "rolling", analysis: {}, affinity: { header: "x-user" } } },
          e: { ...base, deploy: { strategy: "canary", steps: [{ setWeight: 100 }, { analysis: {} }] } },
          ok: { ...base, deploy: { strategy: "canary", maxWeight: 50, analysis: { duration: "2m" }, steps: [{ match: { cookies: { canary: "always" } } }, { setWeight: 10 }, { analysis: {} }, { setWeight: 50 }, { analysis: {} }] } },
        },
      }),
    ).toEqual([
      "services.a.deploy.steps.1.setWeight: weights must increase: 20 comes after 20 (steps[0])",
      "services.a.deploy.steps.2.setWeight: weights must increase: 10 comes after 20 (steps[1])",
      "services.a.deploy.steps.3.setWeight: 50 is above maxWeight 40",
      `services.b.deploy.steps.0.analysis: ${noWeight}`,
      `services.b.deploy.steps.2.analysis: ${noWeight}`,
      `services.b.deploy.steps.4.analysis: ${noWeight}`,
      "services.b.deploy.steps.4.analysis.metrics.0.query: a PromQL metric needs a Prometheus server: set telemetry.prometheus.url",
      "services.c.deploy.analysis: analysis is for strategy canary; strategy is rolling",
      "services.c.deploy.affinity: affinity is for strategy canary; strategy is rolling",
      "services.e.deploy.steps.1.analysis: this analysis follows setWeight 100 (steps[0]), which leaves its baseline no share of traffic (it gets min(weight, 100 - weight)), so the analysis could never pass; analyse at a weight of 1-99",
    ]);
    // With a Prometheus, the PromQL metric is fine.
    expect(lines({ telemetry: { prometheus: { url: "http://127.0.0.1:9090" } }, services: { b: { ...base, deploy: { strategy: "canary", steps: [{ setWeight: 5 }, analysis] } } } })).toEqual([]);
  });

  it("reports pipeline.include paths that do not exist", () => {
    const found = checkManifestRules({ services: { a: { ...base, path: ".", pipeline: { include: ["nope.json", "."] } } } }, { dir: "/tmp", checkPaths: true });
    expect(found.map((i) => `${i.path.join(".")}: ${i.message}`)).toEqual(['services.a.pipeline.include.0: "nope.json" does not exist']);
  });

  it("reports a route claimed by two services, ignoring a trailing slash and host case", () => {
    expect(
      lines({
        services: {
          a: { ...base, routes: ["/api", { path: "/shop", host: "Shop.test" }] },
          b: { ...base, routes: ["/api/", { path: "/shop", host: "shop.TEST" }, "/b"] },
          c: { ...base, routes: ["/b", "/c", "/c"] },
        },
      }),
    ).toEqual([
      'services.b.routes.0: route "/api/" is already claimed by services.a.routes[0]',
      'services.b.routes.1: route "/shop" on host shop.test is already claimed by services.a.routes[1]',
      'services.c.routes.0: route "/b" is already claimed by services.b.routes[2]',
      'services.c.routes.2: route "/c" is listed twice (also routes[1])',
    ]);
  });

  it("still checks the valid routes of a service with a bad one", () => {
    expect(lines({ services: { a: { ...base, routes: ["/x"] }, b: { ...base, routes: [42, "/x"] } } })).toEqual([
      'services.b.routes.1: route "/x" is already claimed by services.a.routes[0]',
    ]);
  });

  it("reports calls to unknown services and to itself", () => {
    expect(lines({ services: { orders: { ...base, calls: ["orders", "payment", "zzz"] }, payments: base } })).toEqual([
      'services.orders.calls.0: service "orders" lists itself; calls names the other services it calls',
      'services.orders.calls.1: no service named "payment"; did you mean `payments`?',
      'services.orders.calls.2: no service named "zzz"; services: payments',
    ]);
  });

  it("counts a badly written service as existing for calls", () => {
    expect(lines({ services: { orders: { ...base, calls: ["payments"] }, payments: { port: "x" } } })).toEqual([]);
  });

  it("checks owners only when teams are declared", () => {
    expect(lines({ services: { orders: { ...base, owner: "anyone" } } })).toEqual([]);
    expect(lines({ teams: { commerce: {}, platform: {} }, services: { a: { ...base, owner: "platfrom" }, b: { ...base, owner: "ops" } } })).toEqual([
      'services.a.owner: team "platfrom" is not declared in teams; did you mean `platform`?',
      'services.b.owner: team "ops" is not declared in teams; declared teams: commerce, platform',
    ]);
    expect(lines({ teams: {}, services: { a: base } })).toEqual(['services.a.owner: team "commerce" is not declared in teams; teams is empty']);
  });

  it("reports overlapping port ranges between services, counting replicas and autoscale", () => {
    expect(
      lines({
        services: {
          a: { ...base, port: 9000, replicas: 3 },
          b: { ...base, port: 9002 },
          c: { ...base, port: 9010, replicas: 1, autoscale: { min: 1, max: 5 } },
          d: { ...base, port: 9014, replicas: 2 },
          e: { ...base, port: 9020, replicas: 0 },
          f: { ...base, port: 9020 },
        },
      }),
    ).toEqual([
      "services.b.port: port 9002 is also used by services.a (ports 9000-9002)",
      "services.d.port: ports 9014-9015 (2 replicas) overlap services.c (ports 9010-9014)",
      "services.f.port: port 9020 is also used by services.e (port 9020)",
    ]);
  });

  it("reports service ports that hit the control plane or gateway, defaults included", () => {
    expect(
      lines({
        controlPlane: { port: 7000 },
        services: { a: { ...base, port: 7000 }, b: { ...base, port: 8079, replicas: 3 }, c: { ...base, port: 9000 } },
      }),
    ).toEqual([
      "services.a.port: port 7000 is also controlPlane.port",
      "services.b.port: ports 8079-8081 (3 replicas) include gateway.port 8080 (default), gateway.adminPort 8081 (default)",
    ]);
  });

  it("reports control plane and gateway ports that collide, blaming the one written", () => {
    expect(lines({ gateway: { adminPort: 7070 }, services: {} })).toEqual(["gateway.adminPort: port 7070 is also controlPlane.port (default)"]);
    expect(lines({ controlPlane: { port: 9000 }, gateway: { port: 9000 }, services: {} })).toEqual(["gateway.port: port 9000 is also controlPlane.port"]);
  });

  it("reports a port range that runs past 65535", () => {
    expect(lines({ services: { a: { ...base, port: 65534, replicas: 3 } } })).toEqual(["services.a.port: ports 65534-65536 (3 replicas) go past 65535"]);
  });

  it("tolerates data of any shape", () => {
    expect(rules(undefined)).toEqual([]);
    expect(rules([])).toEqual([]);
    expect(rules({ services: [1, 2], teams: "x" })).toEqual([]);
    expect(rules({ services: { a: null, b: { calls: "x", routes: {} } } })).toEqual([]);
  });
});

describe("checkManifestRules with checkPaths", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-rules-"));
    await mkdir(join(dir, "services", "orders"), { recursive: true });
    await mkdir(join(dir, "services", "payments"), { recursive: true });
    await writeFile(join(dir, "services", "readme.md"), "a file");
  });
  afterAll(async () => {
    await cleanup();
  });

  const services = {
    orders: { ...base, path: "services/orders" },
    payments: { ...base, path: "./services/payments/" },
    shipping: { ...base, path: "services/paymets" },
    readme: { ...base, path: "services/readme.md" },
    gone: { ...base, path: "elsewhere/gone" },
  };

  it("reports service folders that are missing or are files", () => {
    const issues = checkManifestRules({ services }, { dir, checkPaths: true });
    expect(issues).toEqual([
      {
        path: ["services", "shipping", "path"],
        message: 'folder "services/paymets" does not exist',
        expected: "folder beside the manifest",
        found: '"services/paymets"',
        hint: "did you mean `services/payments`?",
      },
      {
        path: ["services", "readme", "path"],
        message: '"services/readme.md" is a file, expected a folder',
        expected: "folder beside the manifest",
        found: '"services/readme.md"',
      },
      {
        path: ["services", "gone", "path"],
        message: 'folder "elsewhere/gone" does not exist',
        expected: "folder beside the manifest",
        found: '"elsewhere/gone"',
        hint: `looked for ${join(dir, "elsewhere", "gone")}`,
      },
    ]);
  });

  it("does not touch the disk when checkPaths is off", () => {
    expect(checkManifestRules({ services }, { dir, checkPaths: false })).toEqual([]);
  });
});

describe("flag rules", () => {
  const flag = (extra: Record<string, unknown> = {}) => ({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", ...extra });

  it("accepts flags that compile, with shared evaluators and prerequisites", () => {
    expect(
      lines({
        flags: {
          base: flag(),
          "new-checkout": flag({ targeting: { if: [{ $ref: "staff" }, "on", "off"] }, prerequisites: [{ flag: "base", variant: "on" }], safeVariant: "off" }),
        },
        flagEvaluators: { staff: { ends_with: [{ var: "email" }, "@shop.test"] } },
      }),
    ).toEqual([]);
  });

  it("reports what the flag service would refuse, each at its full path", () => {
    expect(
      lines({
        flags: {
          mixed: flag({ variants: { on: true, off: "no" } }),
          "new-checkout": flag({ defaultVariant: "of" }),
          targeted: flag({ targeting: { if: [{ sometimes: [1] }, "on", "off"] } }),
          a: flag({ prerequisites: [{ flag: "b", variant: "on" }] }),
          b: flag({ prerequisites: [{ flag: "a", variant: "on" }] }),
          shared: flag({ targeting: { $ref: "nobody" } }),
        },
        flagEvaluators: { loop: { $ref: "loop" } },
      }),
    ).toEqual([
      'flags.mixed.variants.off: variant "off" is a string but "on" is a boolean; all variants of a flag have one type',
      'flags.new-checkout.defaultVariant: "of" is not a variant (variants: on, off)',
      'flags.targeted.targeting.if.0.sometimes: unknown operator "sometimes"',
      'flags.shared.targeting.$ref: $ref "nobody" names no entry of flagEvaluators',
      "flagEvaluators.loop: $ref cycle: loop → loop",
      "flags.a.prerequisites: prerequisite cycle: a → b → a",
    ]);
  });

  it("leaves badly shaped flags to the schema, and still checks the others", () => {
    expect(
      lines({
        flags: { shapeless: { state: "on", variants: { x: 1 } }, "bad key!": flag({ defaultVariant: "nope" }), ok: flag({ defaultVariant: "maybe" }) },
        flagEvaluators: "not a mapping",
      }),
    ).toEqual(['flags.ok.defaultVariant: "maybe" is not a variant (variants: on, off)']);
    expect(lines({ flags: ["a list"] })).toEqual([]);
  });
});

describe("route flag rules", () => {
  const experiment = { state: "ENABLED", variants: { control: false, treatment: true }, defaultVariant: "control" };
  const routeFlag = (variants: Record<string, unknown>, key = "checkout-experiment", path = "/checkout") => ({
    path,
    flag: { key, context: { targetingKey: { header: "x-user-id" } }, variants },
  });

  it("accepts variants that name declared services and versions, and flags not declared in the manifest", () => {
    expect(
      lines({
        flags: { "checkout-experiment": experiment },
        services: {
          checkout: { ...base, routes: [routeFlag({ control: { version: "stable" }, treatment: { service: "checkout-v2" } })] },
          "checkout-v2": { ...base },
          live: { ...base, routes: [routeFlag({ anything: { version: "canary" } }, "managed-live", "/live")] },
        },
      }),
    ).toEqual([]);
  });

  it("reports a variant's unknown service at its field, with a suggestion", () => {
    expect(
      lines({
        services: {
          checkout: { ...base, routes: ["/", routeFlag({ treatment: { service: "checkout-v3" }, control: { service: "orders" } })] },
          "checkout-v2": { ...base },
        },
      }),
    ).toEqual([
      'services.checkout.routes.1.flag.variants.treatment.service: no service named "checkout-v3"; did you mean `checkout-v2`?',
      'services.checkout.routes.1.flag.variants.control.service: no service named "orders"; services: checkout, checkout-v2',
    ]);
  });

  it("reports a variant the declared flag does not have", () => {
    expect(
      lines({
        flags: { "checkout-experiment": experiment },
        services: { checkout: { ...base, routes: [routeFlag({ treatmnet: { version: "canary" }, control: { version: "stable" } })] } },
      }),
    ).toEqual(['services.checkout.routes.0.flag.variants.treatmnet: flag "checkout-experiment" has no variant "treatmnet"; did you mean `treatment`?']);
  });

  it("leaves badly shaped route flags to the schema", () => {
    expect(lines({ services: { checkout: { ...base, routes: [routeFlag({ treatment: {} }), routeFlag({ treatment: "canary" })] } } })).toEqual([]);
  });
});

describe("flag owners", () => {
  const flag = (owner?: unknown) => ({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", ...(owner === undefined ? {} : { owner }) });
  const teams = { commerce: { members: ["chidi"] }, platform: {} };

  it("must name a declared team, a team member or a service when the manifest has teams", () => {
    const data = { teams, services: { orders: base }, flags: { "new-checkout": flag("comerce"), "dark-mode": flag("growth"), team: flag("platform"), member: flag("chidi"), service: flag("orders"), none: flag() } };
    expect(lines(data)).toEqual([
      'flags.new-checkout.owner: "comerce" is not a team declared in teams, a member of one, or a service; did you mean `commerce`?',
      'flags.dark-mode.owner: "growth" is not a team declared in teams, a member of one, or a service; declared teams: commerce, platform',
    ]);
    expect(rules(data)[0]).toMatchObject({ path: ["flags", "new-checkout", "owner"], found: '"comerce"' });
    expect(lines({ teams: {}, flags: { x: flag("commerce") } })).toEqual(['flags.x.owner: "commerce" is not a team declared in teams, a member of one, or a service; teams is empty']);
  });

  it("are free text without teams, and a badly typed owner is left to the schema", () => {
    expect(lines({ flags: { x: flag("anyone") } })).toEqual([]);
    expect(lines({ teams, flags: { x: flag(42), y: "not a flag" } })).toEqual([]);
  });
});
