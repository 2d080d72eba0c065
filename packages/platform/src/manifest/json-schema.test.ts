import { describe, expect, it } from "vitest";
import { manifestJsonSchema } from "./json-schema.js";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking generated JSON

/** Every `properties` entry in the schema, with its dotted place. */
function allProperties(node: unknown, at = ""): [string, Json][] {
  if (Array.isArray(node)) return node.flatMap((n, i) => allProperties(n, `${at}[${i}]`));
  if (typeof node !== "object" || node === null) return [];
  const obj = node as Json;
  const own: [string, Json][] = obj.properties ? Object.entries(obj.properties as Json).map(([k, v]) => [`${at}.${k}`, v as Json]) : [];
  return [...own, ...Object.entries(obj).flatMap(([k, v]) => allProperties(v, k === "properties" ? at : `${at}/${k}`))];
}

describe("manifestJsonSchema", () => {
  const schema = manifestJsonSchema() as Json;
  const service = schema.properties.services.additionalProperties as Json;

  it("is a titled draft 2020-12 object schema", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.title).toBe("keelson.yaml");
    expect(schema.description).toMatch(/Keelson manifest/);
    expect(schema.type).toBe("object");
    expect(Object.keys(schema.properties)).toEqual(["version", "project", "controlPlane", "gateway", "runtime", "teams", "telemetry", "notifications", "security", "pipelines", "pipelineFiles", "services", "flags", "flagEvaluators"]);
  });

  it("rejects unknown keys wherever the zod schema is strict", () => {
    expect(schema.additionalProperties).toBe(false);
    expect(service.additionalProperties).toBe(false);
    expect(schema.properties.gateway.additionalProperties).toBe(false);
    expect(service.properties.deploy.additionalProperties).toBe(false);
  });

  it("describes the input side: defaulted fields are optional and show their default", () => {
    expect(schema.required).toEqual(["project", "services"]);
    expect(service.required).toEqual(["owner", "path", "start"]);
    expect(service.properties.replicas).toMatchObject({ type: "integer", minimum: 0, maximum: 100, default: 1 });
    expect(service.properties.stopTimeout.default).toBe(10_000);
    expect(service.properties.routes.default).toEqual([]);
    expect(schema.properties.gateway.default).toEqual({ host: "127.0.0.1", port: 8080, adminPort: 8081 });
    // A duration is written as a number or a string with a unit, not as the number it becomes.
    expect(service.properties.stopTimeout.anyOf.map((o: Json) => o.type)).toEqual(["integer", "string"]);
    expect(service.properties.readiness.anyOf.map((o: Json) => o.type)).toEqual(["string", "object"]);
  });

  it("carries enums, patterns and a description for every field", () => {
    expect(schema.properties.runtime.enum).toEqual(["process", "docker", "kubernetes"]);
    expect(schema.properties.services.propertyNames.pattern).toBe("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$");
    const undocumented = allProperties(schema)
      .filter(([, v]) => typeof v.description !== "string" || v.description === "")
      .map(([k]) => k);
    expect(undocumented).toEqual([]);
  });

  it("describes flags in flagd's format, targeting as free-form JSON", () => {
    const flag = schema.properties.flags.additionalProperties as Json;
    expect(flag.additionalProperties).toBe(false);
    expect(flag.required).toEqual(["state", "variants", "defaultVariant"]);
    expect(flag.properties.state.enum).toEqual(["ENABLED", "DISABLED"]);
    expect(flag.properties.type.enum).toEqual(["release", "experiment", "operational", "kill-switch", "permission"]);
    expect(flag.properties.targeting.type).toBeUndefined();
    expect(flag.properties.targeting.description).toMatch(/JsonLogic/);
    expect(schema.properties.flags.propertyNames.pattern).toBe("^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$");
    expect(schema.properties.flagEvaluators.description).toMatch(/\$evaluators/);
  });

  it("uses only standard format names", () => {
    expect(JSON.stringify(schema)).not.toContain('"format":"starts_with"');
    expect(service.properties.path.type).toBe("string");
  });

  it("is plain JSON", () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });
});

describe("docs/manifest.md", () => {
  it("mentions every field of the schema", async () => {
    const { readFile } = await import("node:fs/promises");
    const docs = await readFile(new URL("../../../../docs/manifest.md", import.meta.url), "utf8");
    const fields = [...new Set(allProperties(manifestJsonSchema()).map(([at]) => at.split(".").pop() ?? ""))];
    expect(fields.length).toBeGreaterThan(60);
    expect(fields.filter((f) => !docs.includes(`\`${f}\``) && !docs.includes(`.${f}\``))).toEqual([]);
  });
});
