import { describe, expect, it } from "vitest";
import { z } from "zod";
import { checkAgainstSchema } from "./check-against-schema.js";
import { ManifestSchema } from "./schema.js";

const service = { owner: "commerce", path: "services/orders", start: "node server.js" };

describe("checkAgainstSchema", () => {
  it("returns the parsed value with defaults when valid", () => {
    const check = checkAgainstSchema(z.strictObject({ a: z.number().default(3) }), {});
    expect(check).toEqual({ ok: true, value: { a: 3 } });
  });

  it("says what was expected and found, with the path", () => {
    const check = checkAgainstSchema(ManifestSchema, { project: "shop", services: { orders: { ...service, port: "80a" } } });
    expect(check).toEqual({
      ok: false,
      issues: [
        {
          path: ["services", "orders", "port"],
          message: 'expected integer 1-65535, got "80a"',
          expected: "integer 1-65535",
          found: '"80a"',
        },
      ],
    });
  });

  it("reports a missing field at its own path and says it is missing", () => {
    const check = checkAgainstSchema(ManifestSchema, { project: "shop", services: { orders: { owner: "commerce", path: "p" } } });
    expect(check.ok ? [] : check.issues).toEqual([
      { path: ["services", "orders", "start"], message: "missing required field, expected non-empty string", expected: "non-empty string" },
    ]);
  });

  it("tells an empty value from a missing one", () => {
    const check = checkAgainstSchema(ManifestSchema, { project: "shop", services: { orders: { ...service, start: null } } });
    expect(check.ok ? [] : check.issues.map((i) => i.message)).toEqual(["expected non-empty string, got null"]);
  });

  it("points unknown keys at the key and suggests the closest known one", () => {
    const check = checkAgainstSchema(ManifestSchema, { project: "shop", services: { orders: { ...service, livenes: "/live", image: "x" } } });
    expect(check.ok ? [] : check.issues).toEqual([
      { path: ["services", "orders", "livenes"], at: "key", message: "unknown key", hint: "did you mean `liveness`?" },
      {
        path: ["services", "orders", "image"],
        at: "key",
        message: "unknown key",
        hint: "allowed keys: owner, description, lifecycle, links, tags, openapi, path, build, test, start, port, replicas, readiness, liveness, routes, calls, env, stopTimeout, startTimeout, pipeline, deploy, autoscale, resources, resilience, slos, secrets, tls",
      },
    ]);
  });

  it("follows the union option whose type matched into its fields", () => {
    const check = checkAgainstSchema(ManifestSchema, {
      project: "shop",
      services: { orders: { ...service, readiness: { path: "/ready", interval: "fast", failureThreshold: 0 } } },
    });
    expect(check.ok ? [] : check.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["services.orders.readiness.interval", 'expected duration like "500ms", "10s", "2m", "1h" or "30d" (or a number of milliseconds), got "fast"'],
      ["services.orders.readiness.failureThreshold", "expected integer 1-100, got 0"],
    ]);
  });

  it("checks the body of an entry whose name is invalid", () => {
    const check = checkAgainstSchema(ManifestSchema, { project: "shop", services: { "bad name": { owner: "commerce", path: "p", start: "s", port: 0 } } });
    expect(check.ok ? [] : check.issues.map((i) => [i.path.join("."), i.at, i.message])).toEqual([
      ["services.bad name", "key", 'expected service name (lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters), got "bad name"'],
      ["services.bad name.port", undefined, "expected integer 1-65535, got 0"],
    ]);
  });

  it("keeps messages of refinements", () => {
    const check = checkAgainstSchema(ManifestSchema, { project: "shop", services: { orders: { ...service, autoscale: { min: 5, max: 1 } } } });
    expect(check.ok ? [] : check.issues).toEqual([{ path: ["services", "orders", "autoscale", "min"], message: "must not exceed autoscale.max", found: "5" }]);
  });
});
