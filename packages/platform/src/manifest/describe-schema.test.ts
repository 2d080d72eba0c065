import { describe, expect, it } from "vitest";
import { z } from "zod";
import { describeExpected, knownKeys, recordKeySchema, recordValueSchema, schemaAt } from "./describe-schema.js";
import { Duration, ManifestSchema } from "./schema.js";

describe("describeExpected", () => {
  it("describes numbers with their bounds", () => {
    expect(describeExpected(z.number().int().min(1).max(65535))).toBe("integer 1-65535");
    expect(describeExpected(z.number().int().nonnegative())).toBe("integer >= 0");
    expect(describeExpected(z.number().positive().max(100))).toBe("number > 0 and <= 100");
    expect(describeExpected(z.number().gt(0).lt(100))).toBe("number > 0 and < 100");
    expect(describeExpected(z.number())).toBe("number");
  });

  it("describes strings with their checks", () => {
    expect(describeExpected(z.string())).toBe("string");
    expect(describeExpected(z.string().min(1))).toBe("non-empty string");
    expect(describeExpected(z.string().startsWith("/"))).toBe('string starting with "/"');
    expect(describeExpected(z.string().regex(/^a+$/))).toBe("string matching /^a+$/");
  });

  it("describes enums, literals, booleans, collections and unions", () => {
    expect(describeExpected(z.enum(["a", "b"]))).toBe('one of "a", "b"');
    expect(describeExpected(z.literal(1))).toBe("1");
    expect(describeExpected(z.boolean())).toBe("true or false");
    expect(describeExpected(z.array(z.string()))).toBe("list");
    expect(describeExpected(z.object({}))).toBe("mapping");
    expect(describeExpected(z.union([z.string(), z.number()]))).toBe("string or number");
  });

  it("looks through optional, default and pipes, and prefers registered wording", () => {
    expect(describeExpected(z.number().int().min(0).max(100).default(1).optional())).toBe("integer 0-100");
    expect(describeExpected(z.string().transform(Number))).toBe("string");
    expect(describeExpected(Duration.prefault(500).describe("x"))).toBe('duration like "500ms", "10s", "2m", "1h" or "30d" (or a number of milliseconds)');
  });
});

describe("schemaAt", () => {
  it("finds the schema at a path through records, lists, unions and defaults", () => {
    const port = schemaAt(ManifestSchema, ["services", "orders", "port"]);
    expect(port && describeExpected(port)).toBe("integer 1-65535");
    const probePath = schemaAt(ManifestSchema, ["services", "orders", "readiness", "path"]);
    expect(probePath && describeExpected(probePath)).toBe('path starting with "/"');
    const pause = schemaAt(ManifestSchema, ["services", "orders", "deploy", "steps", 3, "pause"]);
    expect(pause && describeExpected(pause)).toBe('duration like "500ms", "10s", "2m", "1h" or "30d" (or a number of milliseconds) or "manual"');
    const adminPort = schemaAt(ManifestSchema, ["gateway", "adminPort"]);
    expect(adminPort && describeExpected(adminPort)).toBe("integer 1-65535");
  });

  it("returns undefined where the schema has no such place", () => {
    expect(schemaAt(ManifestSchema, ["services", "orders", "image"])).toBeUndefined();
    expect(schemaAt(ManifestSchema, ["project", "x"])).toBeUndefined();
    expect(schemaAt(ManifestSchema, ["services", "orders", "calls", "first"])).toBeUndefined();
  });
});

describe("knownKeys and records", () => {
  it("lists the keys of mappings and of unions of mappings", () => {
    expect(knownKeys(ManifestSchema)).toEqual(["version", "project", "controlPlane", "gateway", "runtime", "teams", "telemetry", "notifications", "security", "pipelines", "pipelineFiles", "services", "flags", "flagEvaluators"]);
    expect(knownKeys(schemaAt(ManifestSchema, ["services", "x", "routes", 0]))).toEqual(["path", "host", "stripPrefix", "rateLimit", "maxBodySize", "fallback", "flag", "auth"]);
    expect(knownKeys(schemaAt(ManifestSchema, ["services", "x", "deploy", "steps", 0]))).toEqual(["setWeight", "pause", "analysis", "match"]);
    expect(knownKeys(schemaAt(ManifestSchema, ["project"]))).toEqual([]);
  });

  it("gives the key and value schemas of records", () => {
    const services = schemaAt(ManifestSchema, ["services"]);
    const key = recordKeySchema(services);
    expect(key && describeExpected(key)).toBe('service name (lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters)');
    expect(knownKeys(recordValueSchema(services))).toContain("readiness");
    expect(recordKeySchema(schemaAt(ManifestSchema, ["project"]))).toBeUndefined();
  });
});
