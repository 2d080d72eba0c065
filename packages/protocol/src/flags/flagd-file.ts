// flagd flag files ↔ Keelson flag sets. Export writes a file flagd accepts, carrying Keelson's
// extensions in flag metadata as `keelson.<field>`; import reads them back, so a round trip is lossless.
import { KeelsonError } from "../errors.js";
import { checkFlagSet, formatIssues, KEELSON_METADATA_PREFIX } from "./check-flag-set.js";
import type { FlagDefinition, FlagIssue, FlagSet } from "./flag-set.js";

export const FLAGD_SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json";

/** Keelson fields flagd does not know; kept in metadata on export. */
const EXTENSION_FIELDS = ["type", "owner", "description", "prerequisites", "safeVariant"] as const;
type ExtensionField = (typeof EXTENSION_FIELDS)[number];
const FLAGD_FIELDS = ["state", "variants", "defaultVariant", "targeting", "metadata"] as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isExtensionField(name: string): name is ExtensionField {
  return (EXTENSION_FIELDS as readonly string[]).includes(name);
}

type Path = FlagIssue["path"];

/**
 * Reads a flagd flag file (flags as a map, or as an array with `key` as flagd also accepts).
 * Fields flagd defines are kept, Keelson's extensions are read from the fields or from
 * `keelson.*` metadata, anything else is dropped. Issues name places in the file.
 * flagd's "code default" mode (defaultVariant null or absent) is not supported: Keelson needs a default.
 */
export function importFlagd(json: string): { ok: true; set: FlagSet } | { ok: false; issues: FlagIssue[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    return { ok: false, issues: [{ path: [], message: `not valid JSON: ${e instanceof Error ? e.message : String(e)}` }] };
  }
  if (!isObject(doc)) return { ok: false, issues: [{ path: [], message: 'a flagd file is a JSON object with "flags"' }] };

  const issues: FlagIssue[] = [];
  // Where each flag sits in the file, and which fields came from metadata, to map issue paths back.
  const fileKey = new Map<string, string | number>();
  const fromMetadata = new Map<string, Set<string>>();
  const entries: Array<[string, unknown]> = [];
  if (Array.isArray(doc.flags)) {
    doc.flags.forEach((item, i) => {
      const key = isObject(item) ? item.key : undefined;
      if (typeof key !== "string" || key === "") issues.push({ path: ["flags", i, "key"], message: "a flag in the array form needs a non-empty string key" });
      else if (fileKey.has(key)) issues.push({ path: ["flags", i, "key"], message: `duplicate flag key "${key}"` });
      else {
        fileKey.set(key, i);
        entries.push([key, item]);
      }
    });
  } else if (isObject(doc.flags)) {
    for (const [key, flag] of Object.entries(doc.flags)) entries.push([key, flag]);
  } else {
    return { ok: false, issues: [{ path: ["flags"], message: "flags is an object of flags (or an array of flags with keys)" }] };
  }

  const flags: Record<string, unknown> = {};
  for (const [key, raw] of entries) {
    const at = (...rest: Path): Path => ["flags", fileKey.get(key) ?? key, ...rest];
    if (key === "__proto__") {
      issues.push({ path: at(), message: '"__proto__" is not allowed as a flag key' });
      continue;
    }
    if (!isObject(raw)) {
      flags[key] = raw; // checkFlagSet explains
      continue;
    }
    if (raw.defaultVariant === null || raw.defaultVariant === undefined) {
      issues.push({ path: at("defaultVariant"), message: "Keelson needs a defaultVariant; flagd's code-default mode (null or absent) is not supported" });
    }
    const def: Record<string, unknown> = {};
    for (const field of FLAGD_FIELDS) if (raw[field] !== undefined && field !== "metadata") def[field] = raw[field];
    for (const field of EXTENSION_FIELDS) if (raw[field] !== undefined) def[field] = raw[field];
    if (raw.metadata !== undefined) {
      if (!isObject(raw.metadata)) def.metadata = raw.metadata;
      else {
        const metadata: Record<string, unknown> = {};
        const derived = new Set<string>();
        for (const [name, value] of Object.entries(raw.metadata)) {
          if (name === "__proto__") {
            issues.push({ path: at("metadata", name), message: '"__proto__" is not allowed as a key' });
            continue;
          }
          if (!name.startsWith(KEELSON_METADATA_PREFIX)) {
            metadata[name] = value;
            continue;
          }
          const field = name.slice(KEELSON_METADATA_PREFIX.length);
          if (!isExtensionField(field)) {
            issues.push({ path: at("metadata", name), message: `unknown Keelson field; known: ${EXTENSION_FIELDS.map((f) => KEELSON_METADATA_PREFIX + f).join(", ")}` });
            continue;
          }
          if (def[field] !== undefined) continue; // the explicit field wins
          if (field !== "prerequisites") def[field] = value;
          else if (typeof value !== "string") def[field] = value;
          else {
            try {
              def[field] = JSON.parse(value) as unknown;
            } catch {
              issues.push({ path: at("metadata", name), message: "keelson.prerequisites holds JSON: an array of {flag, variant}" });
              continue;
            }
          }
          derived.add(field);
        }
        if (Object.keys(metadata).length > 0) def.metadata = metadata;
        fromMetadata.set(key, derived);
      }
    }
    flags[key] = def;
  }

  const candidate: Record<string, unknown> = { flags };
  if (doc.$evaluators !== undefined) candidate.$evaluators = doc.$evaluators;
  if (doc.metadata !== undefined) candidate.metadata = doc.metadata;
  const checked = checkFlagSet(candidate);
  if (checked.ok && issues.length === 0) return checked;
  const mapped = checked.ok ? [] : checked.issues.map((i) => ({ ...i, path: toFilePath(i.path, fileKey, fromMetadata) }));
  return { ok: false, issues: [...issues, ...mapped] };
}

function toFilePath(path: Path, fileKey: ReadonlyMap<string, string | number>, fromMetadata: ReadonlyMap<string, ReadonlySet<string>>): Path {
  if (path[0] !== "flags" || typeof path[1] !== "string") return path;
  const key = path[1];
  const [, , field, ...rest] = path;
  const head: Path = ["flags", fileKey.get(key) ?? key];
  if (typeof field === "string" && fromMetadata.get(key)?.has(field)) return [...head, "metadata", KEELSON_METADATA_PREFIX + field];
  return field === undefined ? head : [...head, field, ...rest];
}

function exportFlag(def: FlagDefinition): Record<string, unknown> {
  const out: Record<string, unknown> = { state: def.state, variants: def.variants, defaultVariant: def.defaultVariant };
  if (def.targeting !== undefined && def.targeting !== null) out.targeting = def.targeting;
  const metadata: Record<string, string | number | boolean> = { ...def.metadata };
  for (const field of EXTENSION_FIELDS) {
    const value = def[field];
    if (value === undefined) continue;
    metadata[KEELSON_METADATA_PREFIX + field] = typeof value === "string" ? value : JSON.stringify(value);
  }
  if (Object.keys(metadata).length > 0) out.metadata = metadata;
  return out;
}

/**
 * Writes a flag set as a flagd flag file (2-space JSON). Keelson's extensions go into each flag's
 * metadata as `keelson.type`, `keelson.owner`, `keelson.description`, `keelson.safeVariant` and
 * `keelson.prerequisites` (JSON text); flagd serves the flags without acting on them.
 * Throws KeelsonError KEELSON_ERR_INVALID_INPUT if the set is invalid.
 */
export function exportFlagd(set: FlagSet): string {
  const checked = checkFlagSet(set);
  if (!checked.ok) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `invalid flag set: ${formatIssues(checked.issues)}`, { details: { issues: checked.issues } });
  const valid = checked.set;
  const file: Record<string, unknown> = { $schema: FLAGD_SCHEMA_URL };
  if (valid.metadata !== undefined) file.metadata = valid.metadata;
  file.flags = Object.fromEntries(Object.entries(valid.flags).map(([key, def]) => [key, exportFlag(def)]));
  if (valid.$evaluators !== undefined) file.$evaluators = valid.$evaluators;
  return `${JSON.stringify(file, null, 2)}\n`;
}
