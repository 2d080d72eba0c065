// `keelson new`: a service folder from a template and its entry in keelson.yaml, all or
// nothing. Everything is checked and rendered in memory first; then the folder is written
// beside its final place and keelson.yaml's new text beside it, and both are renamed in.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { Pair, Scalar, type YAMLMap, isScalar } from "yaml";
import { KeelsonError } from "@keelson/protocol";
import { didYouMean, loadManifest, parseManifest, parseYamlSource, type ManifestIssue } from "../manifest/index.js";
import { stageFile, type StagedFile } from "./atomic-file.js";
import { renderPlaceholders, type TemplateValue } from "./placeholders.js";
import { planPackages, writePackageLinks, type PackageLink } from "./provided-packages.js";
import { addServiceEntry } from "./service-entry.js";
import { renderTemplateFiles, shownPath, type TemplateOrigin } from "./service-template.js";
import { renderManifestEntry } from "./template-definition.js";
import { findTemplate, type LibraryOptions } from "./template-library.js";
import { resolveVariables, type Asker } from "./template-variables.js";

/** The manifest's rule for service (and team) names: a DNS label. */
export const SERVICE_NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SERVICE_NAME_RULE = 'lowercase letters, digits and "-", starting with a letter, not ending with "-", at most 63 characters';
/** Catalog fields lead a service entry; `path` follows them, as in the manifest's examples. */
const CATALOG_KEYS = new Set(["description", "lifecycle", "tags", "links", "openapi"]);

export interface CreateServiceOptions extends LibraryOptions {
  /** The project folder (holding keelson.yaml) or the manifest file. */
  project: string;
  /** A template's name, or a folder path. */
  template: string;
  service: string;
  /** A team declared in keelson.yaml (default: its only team). */
  owner?: string;
  /** The service's folder, relative to keelson.yaml (default services/<service>). */
  path?: string;
  /**
   * A pipeline template of the manifest (`pipelines:` or a `pipelineFiles` file) the service
   * uses instead of the template's own `build` and `test` (`pipeline: <name>`).
   */
  pipeline?: string;
  /** Variable values (`--set name=value`). */
  set?: Readonly<Record<string, string>>;
  /** Asks for variables not set; only when someone can answer (a terminal). */
  ask?: Asker;
  /** Picks the owner among several teams when none is given (a prompt). */
  chooseOwner?: (teams: string[]) => Promise<string>;
  onProgress?: (message: string) => void;
  /** Where packages the project lacks are looked up (default: Keelson's installation). */
  keelsonDirs?: string[];
  /** The rename that puts the folder and keelson.yaml in place (tests make it fail). */
  rename?: (from: string, to: string) => Promise<void>;
}

export interface CreatedService {
  service: string;
  template: { name: string; origin: TemplateOrigin; dir: string };
  owner: string;
  /** The folder relative to keelson.yaml ("/"-separated). */
  path: string;
  dir: string;
  manifest: string;
  /** Files written, relative to the service's folder. */
  files: string[];
  /** Packages linked from Keelson into the service's node_modules. */
  links: PackageLink[];
  /** Required packages the project already has. */
  fromProject: string[];
  variables: Record<string, TemplateValue>;
  /** What the catalog will show once the manifest is applied. */
  catalog: { owner: string; description?: string; lifecycle?: string; tags?: string[]; links?: Record<string, string> };
  /** The service's routes through the gateway, as URLs. */
  urls: string[];
  /** The template's own next steps. */
  next: string[];
}

/**
 * Creates a service from a template. Throws before writing anything on every bad input:
 * KEELSON_ERR_INVALID_INPUT (name, owner, path, variables), KEELSON_ERR_CONFLICT (the service
 * or its folder exists), KEELSON_ERR_NOT_FOUND (template, packages), KEELSON_ERR_TEMPLATE_INVALID,
 * KEELSON_ERR_MANIFEST_INVALID (keelson.yaml, or the entry the template would add). A failure
 * while writing removes what was written; keelson.yaml is replaced by a rename, never rewritten.
 *
 * @example
 * const created = await createService({ project: ".", template: "http-ts", service: "hello", owner: "web" });
 */
export async function createService(options: CreateServiceOptions): Promise<CreatedService> {
  const { service } = options;
  const progress = options.onProgress ?? (() => {});
  if (!SERVICE_NAME.test(service)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `service name "${service}" is not valid: ${SERVICE_NAME_RULE}`, { details: { service } });
  }
  const loaded = await loadManifest(options.project);
  const manifest = loaded.manifest;
  if (Object.hasOwn(manifest.services, service)) {
    const at = parseYamlSource(loaded.text).locate(["services", service], "key");
    throw new KeelsonError("KEELSON_ERR_CONFLICT", `service "${service}" already exists (${shownPath(loaded.file)}:${at.line}:${at.column}); choose another name`, { details: { service } });
  }
  const template = await findTemplate(options.template, options);
  progress(`template ${template.name} (${template.origin}): ${template.files.length} files`);
  const owner = await chooseOwner(Object.keys(manifest.teams ?? {}), options);
  if (options.pipeline !== undefined) checkPipelineTemplate(options.pipeline, Object.keys(manifest.pipelines ?? {}));

  const written = options.path ?? `services/${service}`;
  const dir = resolve(loaded.dir, written);
  const path = relative(loaded.dir, dir).split(sep).join("/");
  if (path === "" || path.startsWith("..") || isAbsolute(path)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `--path ${written}: the service's folder must be inside the project (${loaded.dir})`);
  }
  const targetExists = await stat(dir).then((s) => s, () => undefined);
  if (targetExists && (!targetExists.isDirectory() || (await readdir(dir)).length > 0)) {
    throw new KeelsonError("KEELSON_ERR_CONFLICT", `${shownPath(dir)} already exists and is not an empty folder; choose another --path or service name`, { details: { path } });
  }

  const gateway = `http://${manifest.gateway.host.includes(":") ? `[${manifest.gateway.host}]` : manifest.gateway.host}:${manifest.gateway.port}`;
  const values = await resolveVariables(template, {
    builtins: { name: service, owner, project: manifest.project, path, gateway },
    given: options.set ?? {},
    ...(options.ask ? { ask: options.ask } : {}),
  });
  const render = (text: string) => renderPlaceholders(text, values);
  const files = renderTemplateFiles(template, values);
  let entry = withOwnerAndPath(renderManifestEntry(template.definition, values, render), owner, path);
  if (options.pipeline !== undefined) entry = withPipelineTemplate(entry, options.pipeline);
  const nextText = addServiceEntry({ text: loaded.text, service, entry });
  checkNewManifest(nextText, loaded.file, service, template.name);
  const entryData = parseManifest(nextText, loaded.file, { checkPaths: false }).manifest.services[service];

  const packages = planPackages(template.definition.requires, dir, options.keelsonDirs);
  if (packages.missing.length > 0) {
    throw new KeelsonError(
      "KEELSON_ERR_NOT_FOUND",
      `template "${template.name}" needs ${packages.missing.join(", ")}, which neither the project nor this Keelson has; install ${packages.missing.length === 1 ? "it" : "them"} in the project (npm install --save-dev ${packages.missing.join(" ")}) and run keelson new again`,
      { details: { missing: packages.missing } },
    );
  }

  await writeAll({ dir, files, links: packages.links, manifestFile: loaded.file, manifestText: loaded.text, nextText, ...(options.rename ? { rename: options.rename } : {}) });
  progress(`wrote ${path} and added services.${service} to ${basename(loaded.file)}`);

  const catalog: CreatedService["catalog"] = { owner };
  if (entryData?.description !== undefined) catalog.description = entryData.description;
  if (entryData?.lifecycle !== undefined) catalog.lifecycle = entryData.lifecycle;
  if (entryData?.tags !== undefined) catalog.tags = [...entryData.tags];
  if (entryData?.links !== undefined) catalog.links = { ...entryData.links };
  return {
    service,
    template: { name: template.name, origin: template.origin, dir: template.dir },
    owner,
    path,
    dir,
    manifest: loaded.file,
    files: files.map((f) => f.path),
    links: packages.links,
    fromProject: packages.fromProject.map((p) => p.name),
    variables: values,
    catalog,
    urls: (entryData?.routes ?? []).map((r) => `${gateway}${r.path === "/" ? "/" : r.path}`),
    next: template.definition.next.map(render),
  };
}

async function chooseOwner(teams: string[], options: CreateServiceOptions): Promise<string> {
  const given = options.owner;
  if (given !== undefined) {
    if (!SERVICE_NAME.test(given)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `--owner "${given}" is not a valid team name: ${SERVICE_NAME_RULE}`);
    if (teams.length > 0 && !teams.includes(given)) {
      const close = didYouMean(given, teams);
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `--owner "${given}" is not a team of keelson.yaml${close ? `; did you mean \`${close}\`?` : ""}; teams: ${teams.join(", ")}`, { details: { owner: given, teams } });
    }
    return given;
  }
  if (teams.length === 1) return teams[0] as string;
  if (teams.length > 1 && options.chooseOwner) {
    const chosen = await options.chooseOwner(teams);
    if (!teams.includes(chosen)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `"${chosen}" is not a team of keelson.yaml; teams: ${teams.join(", ")}`);
    return chosen;
  }
  throw new KeelsonError(
    "KEELSON_ERR_INVALID_INPUT",
    teams.length > 0 ? `--owner is needed: which team owns the service? teams: ${teams.join(", ")}` : "--owner is needed: keelson.yaml declares no teams, so name the team that owns the service",
    { details: { teams } },
  );
}

function checkPipelineTemplate(name: string, defined: string[]): void {
  if (defined.includes(name)) return;
  const close = didYouMean(name, defined);
  throw new KeelsonError(
    "KEELSON_ERR_INVALID_INPUT",
    `--pipeline "${name}" is not a pipeline template of keelson.yaml${close ? `; did you mean \`${close}\`?` : ""}; ${defined.length > 0 ? `templates: ${defined.join(", ")}` : "it defines none (pipelines: or pipelineFiles:)"}`,
    { details: { pipeline: name, templates: defined } },
  );
}

/** The entry with `pipeline: <name>` where the template's `build` (or `test`, or `pipeline`) was, and neither of those. */
function withPipelineTemplate(entry: YAMLMap, name: string): YAMLMap {
  const replaced = new Set(["build", "test", "pipeline"]);
  const at = entry.items.findIndex((p) => isScalar(p.key) && replaced.has(String(p.key.value)));
  entry.items = entry.items.filter((p) => !(isScalar(p.key) && replaced.has(String(p.key.value))));
  entry.items.splice(at < 0 ? entry.items.length : at, 0, new Pair(new Scalar("pipeline"), new Scalar(name)));
  return entry;
}

/** The entry with `owner` first and `path` after the catalog fields. */
function withOwnerAndPath(entry: YAMLMap, owner: string, path: string): YAMLMap {
  entry.items = entry.items.filter((p) => !(isScalar(p.key) && (p.key.value === "owner" || p.key.value === "path")));
  let at = 0;
  while (at < entry.items.length && isScalar(entry.items[at]?.key) && CATALOG_KEYS.has(String((entry.items[at]?.key as Scalar).value))) at++;
  entry.items.splice(at, 0, new Pair(new Scalar("path"), new Scalar(path)));
  entry.items.unshift(new Pair(new Scalar("owner"), new Scalar(owner)));
  return entry;
}

/** The manifest with the new entry must be valid; its problems are the template's or the values'. */
function checkNewManifest(text: string, file: string, service: string, template: string): void {
  try {
    parseManifest(text, file, { checkPaths: false });
  } catch (err) {
    if (!(err instanceof KeelsonError) || err.code !== "KEELSON_ERR_MANIFEST_INVALID") throw err;
    const issues = ((err.details as { issues?: ManifestIssue[] } | undefined)?.issues ?? []).filter((i) => i.path === `services.${service}` || i.path.startsWith(`services.${service}.`) || i.path.startsWith(`services.${service}[`));
    const shown = issues.length > 0 ? issues : ((err.details as { issues?: ManifestIssue[] } | undefined)?.issues ?? []);
    throw new KeelsonError(
      "KEELSON_ERR_MANIFEST_INVALID",
      `the entry template "${template}" would add to keelson.yaml is not valid; nothing was written:\n${shown.map((i) => `  ${i.path === "" ? "" : `${i.path}: `}${i.message}${i.hint ? `; ${i.hint}` : ""}`).join("\n")}`,
      { details: { template, issues: shown } },
    );
  }
}

interface WriteAllInput {
  dir: string;
  files: ReadonlyArray<{ path: string; mode: number; content: Buffer }>;
  links: readonly PackageLink[];
  manifestFile: string;
  manifestText: string;
  nextText: string;
  rename?: (from: string, to: string) => Promise<void>;
}

/** Writes the folder beside its place and the manifest beside itself, then renames both in; undoes all on failure. */
async function writeAll(input: WriteAllInput): Promise<void> {
  const doRename = input.rename ?? rename;
  const parent = dirname(input.dir);
  let createdParent: string | undefined;
  for (let d = parent; !existsSync(d); d = dirname(d)) createdParent = d;
  const staging = join(parent, `.${basename(input.dir)}.keelson-new-${randomBytes(4).toString("hex")}`);
  let staged: StagedFile | undefined;
  let placed = false;
  let removedEmpty = false;
  try {
    await mkdir(staging, { recursive: true });
    for (const file of input.files) {
      const to = join(staging, ...file.path.split("/"));
      await mkdir(dirname(to), { recursive: true });
      await writeFile(to, file.content, { mode: file.mode });
      await chmod(to, file.mode);
    }
    await writePackageLinks(staging, input.links);
    staged = await stageFile(input.manifestFile, input.nextText, { expect: input.manifestText, rename: doRename });
    if (existsSync(input.dir)) {
      await rmdir(input.dir); // checked empty before; a rename does not replace a folder everywhere
      removedEmpty = true;
    }
    await doRename(staging, input.dir);
    placed = true;
    await staged.commit();
  } catch (err) {
    await staged?.discard();
    if (placed) await rm(input.dir, { recursive: true, force: true });
    if (removedEmpty) await mkdir(input.dir).catch(() => undefined);
    await rm(staging, { recursive: true, force: true });
    if (createdParent !== undefined) await rm(createdParent, { recursive: true, force: true });
    throw err;
  }
}
