// The JSON Schema of keelson.yaml for editors (`keelson schema`), generated from the same zod
// schema that validates the manifest, so the two cannot drift apart.
import { z } from "zod";
import { ManifestSchema } from "./schema.js";

// JSON Schema 2020-12 formats; zod also writes its own names ("starts_with") that editors would flag.
const STANDARD_FORMATS = new Set([
  "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname", "ipv4", "ipv6",
  "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template", "json-pointer", "relative-json-pointer", "regex",
]);

function dropNonStandardFormats(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) dropNonStandardFormats(item);
    return;
  }
  if (typeof node !== "object" || node === null) return;
  const obj = node as Record<string, unknown>;
  // Only where "format" is a keyword (a string), not a property named "format" in "properties".
  if (typeof obj.format === "string" && !STANDARD_FORMATS.has(obj.format)) delete obj.format;
  for (const value of Object.values(obj)) dropNonStandardFormats(value);
}

/**
 * The JSON Schema (draft 2020-12) of keelson.yaml as written: the input side of the schema,
 * so fields with defaults are optional and show their default.
 *
 * @example
 * writeFileSync("keelson.schema.json", JSON.stringify(manifestJsonSchema(), null, 2));
 */
export function manifestJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(ManifestSchema, { io: "input", target: "draft-2020-12" }) as Record<string, unknown>;
  dropNonStandardFormats(generated);
  const { $schema, ...rest } = generated;
  return {
    $schema,
    title: "keelson.yaml",
    description: "The Keelson manifest: a project's services, how they are built, run, routed, deployed and scaled. Reference: docs/manifest.md.",
    ...rest,
  };
}
