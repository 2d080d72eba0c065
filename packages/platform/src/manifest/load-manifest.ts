// Reads keelson.yaml: YAML with places kept, the zod schema, then the cross-field rules, and
// reports every problem in one KEELSON_ERR_MANIFEST_INVALID error that names each place.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { checkAgainstSchema } from "./check-against-schema.js";
import { checkManifestRules } from "./manifest-rules.js";
import { formatIssuePath, formatManifestIssue, type ManifestIssue } from "./manifest-issue.js";
import { collectPipelineTemplates, resolvePipelines, type PipelineTemplateSet } from "./pipeline-templates.js";
import { ManifestSchema, type Manifest } from "./schema.js";
import { parseYamlSource, type PlacedIssue } from "./yaml-source.js";

/** The name of the manifest file in a project folder. */
export const MANIFEST_FILE = "keelson.yaml";

/** A validated manifest and where it came from. */
export interface LoadedManifest {
  /** Validated, defaults applied, deeply frozen. */
  manifest: Manifest;
  /** Absolute path of the file. */
  file: string;
  /** Absolute path of the folder holding the file; service paths are relative to it. */
  dir: string;
  /** The text as read. */
  text: string;
  /**
   * sha256 of `text` (and of the shared pipeline files, when there are any), hex: tells
   * whether the manifest changed since it was last applied.
   */
  hash: string;
  /** Absolute paths of the shared files read besides the manifest (`pipelineFiles`), in order. */
  sharedFiles: string[];
}

export interface ParseManifestOptions {
  /** Check that every service `path` is an existing folder beside the manifest. Default true. */
  checkPaths?: boolean;
}

/**
 * Validates manifest text. `file` places the manifest (service paths resolve against its
 * folder) and names it in messages. Throws one KEELSON_ERR_MANIFEST_INVALID listing every
 * problem; `details.issues` holds them as ManifestIssue objects.
 *
 * @example
 * const { manifest } = parseManifest(text, "keelson.yaml", { checkPaths: false });
 */
export function parseManifest(text: string, file: string, options: ParseManifestOptions = {}): LoadedManifest {
  const abs = resolve(file);
  const dir = dirname(abs);
  const shown = shownName(file);
  const source = parseYamlSource(text);
  const placed: PlacedIssue[] = [...source.issues];
  let manifest: Manifest | undefined;
  let templates: PipelineTemplateSet | undefined;

  // When the YAML itself is broken the document's shape is a guess, and schema errors on
  // that guess would only bury the real problem.
  if (!source.fatal) {
    if (source.empty) {
      placed.push({ line: 1, column: 1, path: "", message: "the file is empty; a manifest needs at least project and services", expected: "mapping" });
    } else {
      templates = collectPipelineTemplates(source.data, { dir, manifestFile: shown, locate: source.locate, show: shownName });
      const check = checkAgainstSchema(ManifestSchema, source.data);
      const byPath = [
        ...(check.ok ? [] : check.issues),
        ...templates.manifestIssues,
        ...checkManifestRules(source.data, { dir, checkPaths: options.checkPaths ?? true, pipelineTemplates: templates }),
      ];
      for (const { path, at, ...rest } of byPath) placed.push({ ...source.locate(path, at), path: formatIssuePath(path), ...rest });
      if (check.ok) manifest = resolvePipelines(check.value, templates);
    }
  }

  const elsewhere = templates?.fileIssues ?? [];
  if (placed.length > 0 || elsewhere.length > 0 || manifest === undefined) {
    const issues: ManifestIssue[] = [
      ...placed
        .map((i) => ({ file: shown, ...i }))
        // Stable sort: issues at one place keep the order they were found in.
        .sort((a, b) => a.line - b.line || a.column - b.column),
      // Then the shared files' own problems, file by file, each already in line order.
      ...elsewhere,
    ];
    throw new KeelsonError("KEELSON_ERR_MANIFEST_INVALID", issues.map(formatManifestIssue).join("\n"), { details: { issues } });
  }
  const files = templates?.files ?? [];
  const hash = createHash("sha256").update(text);
  // A shared file is part of what the manifest says: editing it changes the hash too.
  for (const f of files) hash.update(`\0${f.path}\0${f.text}`);
  return { manifest: deepFreeze(manifest), file: abs, dir, text, hash: hash.digest("hex"), sharedFiles: files.map((f) => f.path) };
}

/**
 * Reads and validates a manifest. `pathOrDir` is the file, or a folder holding keelson.yaml.
 * Throws KEELSON_ERR_MANIFEST_NOT_FOUND naming the path when there is no such file, and
 * KEELSON_ERR_MANIFEST_INVALID as parseManifest does.
 *
 * @example
 * const loaded = await loadManifest(process.cwd());
 */
export async function loadManifest(pathOrDir: string, options: ParseManifestOptions = {}): Promise<LoadedManifest> {
  let file = resolve(pathOrDir);
  try {
    if ((await stat(file)).isDirectory()) file = join(file, MANIFEST_FILE);
  } catch (err) {
    if (!isNotFound(err)) throw unreadable(file, err);
  }
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (isNotFound(err)) {
      throw new KeelsonError("KEELSON_ERR_MANIFEST_NOT_FOUND", `no manifest at ${file}; run \`keelson init\` to create one`, { details: { path: file } });
    }
    throw unreadable(file, err);
  }
  return parseManifest(text, file, { checkPaths: options.checkPaths ?? true });
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

function unreadable(file: string, err: unknown): KeelsonError {
  const reason = (err as NodeJS.ErrnoException | undefined)?.code ?? String(err);
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", `cannot read manifest ${file}: ${reason}`, { details: { path: file }, cause: err });
}

/** The file as shown in messages: relative to the working directory when inside it, else as given. */
function shownName(file: string): string {
  if (!isAbsolute(file)) return file;
  const rel = relative(process.cwd(), file);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}

/** Freezes the parsed manifest so no part of Keelson can change the desired state behind the others' backs. */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
