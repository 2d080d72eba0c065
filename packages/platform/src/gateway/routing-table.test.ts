// Tests for building the routing table and for the compiled route matcher's precedence rules.
import { describe, expect, it } from "vitest";
import type { RoutingTable } from "@keelson/protocol";
import { DEFAULT_SERVICE_POLICY, KeelsonError } from "@keelson/protocol";
import { buildRoutingTable, compileRoutes, forwardPath, normalizeHost } from "./routing-table.js";

const at = "2026-01-01T00:00:00.000Z";

function routes(list: Array<Partial<RoutingTable["routes"][number]> & { service: string; pathPrefix: string }>): Pick<RoutingTable, "routes"> {
  return { routes: list.map((r) => ({ stripPrefix: false, ...r })) };
}

describe("buildRoutingTable", () => {
  it("sorts routes in match order, services by name and endpoints by replica id", () => {
    const table = buildRoutingTable({
      project: "shop",
      version: 7,
      generatedAt: at,
      services: [
        { name: "web", routes: [{ path: "/", stripPrefix: false }] },
        { name: "api", routes: [{ path: "/api/", stripPrefix: true }, { path: "/", host: "API.Example.com:443", stripPrefix: false }] },
      ],
      endpoints: [
        { service: "web", replicaId: "web-2", url: "http://127.0.0.1:2", release: "r1" },
        { service: "web", replicaId: "web-1", url: "http://127.0.0.1:1", release: "r1" },
        { service: "jobs", replicaId: "jobs-1", url: "http://127.0.0.1:3", release: "r9" },
      ],
    });
    expect(table).toEqual({
      version: 7,
      project: "shop",
      generatedAt: at,
      routes: [
        { service: "api", pathPrefix: "/", host: "api.example.com", stripPrefix: false },
        { service: "api", pathPrefix: "/api", stripPrefix: true },
        { service: "web", pathPrefix: "/", stripPrefix: false },
      ],
      services: [
        { name: "api", endpoints: [] },
        { name: "jobs", endpoints: [{ replicaId: "jobs-1", url: "http://127.0.0.1:3", release: "r9" }] },
        {
          name: "web",
          endpoints: [
            { replicaId: "web-1", url: "http://127.0.0.1:1", release: "r1" },
            { replicaId: "web-2", url: "http://127.0.0.1:2", release: "r1" },
          ],
        },
      ],
    });
  });

  it("gives the same table for the same input in any order", () => {
    const input = {
      project: "p",
      version: 1,
      generatedAt: at,
      services: [
        { name: "b", routes: [{ path: "/b", stripPrefix: false }] },
        { name: "a", routes: [{ path: "/a", stripPrefix: false }, { path: "/a/deeper", stripPrefix: true }] },
      ],
      endpoints: [
        { service: "a", replicaId: "a-2", url: "http://127.0.0.1:2", release: "x" },
        { service: "a", replicaId: "a-1", url: "http://127.0.0.1:1", release: "x" },
      ],
    };
    const reversed = { ...input, services: [...input.services].reverse(), endpoints: [...input.endpoints].reverse() };
    expect(JSON.stringify(buildRoutingTable(reversed))).toBe(JSON.stringify(buildRoutingTable(input)));
  });

  it("rejects two services claiming the same host and path, naming both", () => {
    const build = () =>
      buildRoutingTable({
        project: "p",
        version: 1,
        services: [
          { name: "a", routes: [{ path: "/x", stripPrefix: false }] },
          { name: "b", routes: [{ path: "/x/", stripPrefix: false }] },
        ],
        endpoints: [],
      });
    expect(build).toThrow(KeelsonError);
    expect(build).toThrow(/"a" and "b"/);
  });

  it("passes each service's policy and split and each route's limits and fallback through", () => {
    const policy = { ...DEFAULT_SERVICE_POLICY, loadBalancer: "round-robin" as const, timeoutMs: 5_000 };
    const split = { sticky: true, weights: [{ release: "r1", weight: 90, label: "stable" }, { release: "r2", weight: 10, label: "canary" }] };
    const fallback = { status: 200, contentType: "application/json", body: "[]" };
    const table = buildRoutingTable({
      project: "shop",
      version: 1,
      generatedAt: at,
      services: [
        { name: "web", policy, split, routes: [{ path: "/", stripPrefix: false, rateLimit: { rps: 50, burst: 100 }, maxBodyBytes: 1_024, fallback }] },
        { name: "plain", routes: [{ path: "/plain", stripPrefix: false }] },
      ],
      endpoints: [{ service: "web", replicaId: "web-1", url: "http://127.0.0.1:1", release: "r1" }],
    });
    expect(table.routes).toEqual([
      { service: "plain", pathPrefix: "/plain", stripPrefix: false },
      { service: "web", pathPrefix: "/", stripPrefix: false, rateLimit: { rps: 50, burst: 100 }, maxBodyBytes: 1_024, fallback },
    ]);
    expect(table.services).toEqual([
      { name: "plain", endpoints: [] },
      { name: "web", endpoints: [{ replicaId: "web-1", url: "http://127.0.0.1:1", release: "r1" }], policy, split },
    ]);
  });

  it("carries the flags routes name, with their prerequisites and the set's revision, and nothing else of the set", () => {
    const flag = (extra: object = {}) => ({ state: "ENABLED" as const, variants: { a: true, b: false }, defaultVariant: "a", ...extra });
    const set = {
      flags: { experiment: flag({ prerequisites: [{ flag: "gate", variant: "a" }] }), gate: flag(), unrelated: flag() },
      $evaluators: { staff: { "==": [1, 1] } },
    };
    const routeFlag = { key: "experiment", context: { targetingKey: { header: "x-user-id" } }, variants: { b: { service: "plain" } } };
    const build = (withFlag: boolean) =>
      buildRoutingTable({
        project: "shop",
        version: 1,
        generatedAt: at,
        services: [
          { name: "web", routes: [{ path: "/", stripPrefix: false, ...(withFlag ? { flag: routeFlag } : {}) }] },
          { name: "plain", routes: [] },
        ],
        endpoints: [],
        flags: { revision: 4, set },
      });
    const table = build(true);
    expect(table.routes).toEqual([{ service: "web", pathPrefix: "/", stripPrefix: false, flag: routeFlag }]);
    expect(table.flags).toEqual({ revision: 4, set: { flags: { experiment: set.flags.experiment, gate: set.flags.gate }, $evaluators: set.$evaluators } });
    expect(Object.keys(table.flags!.set.flags)).toEqual(["experiment", "gate"]);
    // No route names a flag: no flags on the table at all.
    expect(build(false).flags).toBeUndefined();
  });

  it("rejects a policy or split the schema does not allow, naming the field", () => {
    const build = () =>
      buildRoutingTable({
        project: "p",
        version: 1,
        services: [{ name: "a", routes: [], policy: { ...DEFAULT_SERVICE_POLICY, timeoutMs: -1 } }],
        endpoints: [],
      });
    expect(build).toThrow(/services\.0\.policy\.timeoutMs/);
  });

  it("rejects a path without a leading slash and an endpoint that is not a URL", () => {
    expect(() => buildRoutingTable({ project: "p", version: 1, services: [{ name: "a", routes: [{ path: "api", stripPrefix: false }] }], endpoints: [] })).toThrow(
      /services\.a\.routes\.path/,
    );
    expect(() =>
      buildRoutingTable({ project: "p", version: 1, services: [], endpoints: [{ service: "a", replicaId: "a-1", url: "not a url", release: "r" }] }),
    ).toThrow(/a-1 of "a": not a URL/);
  });
});

describe("compileRoutes", () => {
  const matcher = compileRoutes(
    routes([
      { service: "root", pathPrefix: "/" },
      { service: "api", pathPrefix: "/api" },
      { service: "api-v2", pathPrefix: "/api/v2" },
      { service: "trailing", pathPrefix: "/files/" },
      { service: "host-root", pathPrefix: "/", host: "Shop.Example.com" },
      { service: "host-admin", pathPrefix: "/admin", host: "shop.example.com" },
    ]),
  );
  const svc = (host: string | undefined, path: string) => matcher.match(host, path)?.service;

  it("matches prefixes on segment boundaries only", () => {
    expect(svc(undefined, "/api")).toBe("api");
    expect(svc(undefined, "/api/x")).toBe("api");
    expect(svc(undefined, "/api?q=1")).toBe("api");
    expect(svc(undefined, "/apix")).toBe("root");
    expect(svc(undefined, "/api/v2")).toBe("api-v2");
    expect(svc(undefined, "/api/v2/orders")).toBe("api-v2");
    expect(svc(undefined, "/api/v20")).toBe("api");
    expect(svc(undefined, "/files")).toBe("trailing");
    expect(svc(undefined, "/files/a.txt")).toBe("trailing");
  });

  it("lets / match everything", () => {
    expect(svc(undefined, "/")).toBe("root");
    expect(svc(undefined, "/anything/at/all")).toBe("root");
    expect(svc("other.example.com", "/x")).toBe("root");
  });

  it("prefers an exact host (port ignored, any case) over any-host routes", () => {
    expect(svc("shop.example.com", "/api/x")).toBe("host-root");
    expect(svc("SHOP.example.COM:8080", "/admin/users")).toBe("host-admin");
    expect(svc("shop.example.com.", "/admin")).toBe("host-admin");
    expect(svc("shop.example.com", "/administrator")).toBe("host-root");
    expect(svc("shop.example.org", "/api/x")).toBe("api");
  });

  it("falls back to any-host routes when the host's own routes do not match", () => {
    const m = compileRoutes(routes([{ service: "only-admin", pathPrefix: "/admin", host: "a.test" }, { service: "fallback", pathPrefix: "/" }]));
    expect(m.match("a.test", "/admin")?.service).toBe("only-admin");
    expect(m.match("a.test", "/shop")?.service).toBe("fallback");
  });

  it("finds nothing when no route fits", () => {
    const m = compileRoutes(routes([{ service: "api", pathPrefix: "/api" }]));
    expect(m.match(undefined, "/web")).toBeUndefined();
    expect(m.match("x", "/ap")).toBeUndefined();
  });
});

describe("forwardPath", () => {
  const route = { service: "api", host: undefined, prefix: "/api", stripPrefix: true, index: 0 };
  it("strips the prefix and keeps the query", () => {
    expect(forwardPath(route, "/api/users?x=1")).toBe("/users?x=1");
    expect(forwardPath(route, "/api")).toBe("/");
    expect(forwardPath(route, "/api?x=1")).toBe("/?x=1");
  });
  it("leaves the path alone without stripPrefix or for the root route", () => {
    expect(forwardPath({ ...route, stripPrefix: false }, "/api/users")).toBe("/api/users");
    expect(forwardPath({ ...route, prefix: "/" }, "/api/users")).toBe("/api/users");
  });
});

describe("normalizeHost", () => {
  it("drops the port, a trailing dot and case, and keeps IPv6 literals whole", () => {
    expect(normalizeHost("Example.COM:8080")).toBe("example.com");
    expect(normalizeHost("example.com.")).toBe("example.com");
    expect(normalizeHost("[::1]:8080")).toBe("[::1]");
    expect(normalizeHost("[::1]")).toBe("[::1]");
  });
});
