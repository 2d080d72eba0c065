// Shared pipeline templates: collected from the manifest's `pipelines` and the files listed in
// `pipelineFiles`, checked against the services that use them, and resolved at load so that
// everything downstream sees each service's concrete stages (see docs/adr/0022-pipeline-templates.md).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { checkAgainstSchema } from "./check-against-schema.js";
import { didYouMean } from "./did-you-mean.js";
import { formatIssuePath, type ManifestIssue, type PathIssue, type PathSegment } from "./manifest-issue.js";
import { PipelineFileSchema, isName, type Manifest, type ManifestWritten, type PipelineSpecOut, type PipelineTemplateOut, type ServiceSpec, type ServiceSpecWritten } from "./schema.js";
import { parseYamlSource, type SourcePosition } from "./yaml-source.js";

/** One defined template and where it is written. */
export interface PipelineTemplateEntry {
  name: string;
  /** The file it is defined in, as shown in messages, with its place: `ci/pipelines.yaml:3:3`. */
  where: string;
  /** The template, or undefined when its definition is invalid (the schema reports why). */
  template: PipelineTemplateOut | undefined;
}

/** Every template the manifest can use, and what reading them found. */
export interface PipelineTemplateSet {
  templates: ReadonlyMap<string, PipelineTemplateEntry>;
  /** Problems placed in the manifest itself (a pipelineFiles entry that is missing, a name defined twice). */
  manifestIssues: PathIssue[];
  /** Problems inside the shared files, placed in them. */
  fileIssues: ManifestIssue[];
  /** The shared files read, absolute, with their text (part of the manifest's hash). */
  files: Array<{ path: string; text: string }>;
  /** A shared file could not be read or parsed, so a template it may hold is unknown. */
  incomplete: boolean;
}

export interface CollectTemplatesOptions {
  /** Folder of the manifest; pipelineFiles are relative to it. */
  dir: string;
  /** The manifest as shown in messages. */
  manifestFile: string;
  /** Where a node of the manifest is, for naming the place of a template defined there; without it, the path names it. */
  locate?: (path: readonly PathSegment[], at?: "key" | "value") => SourcePosition;
  /** How a file is shown in messages (relative to the working directory when inside it). Default: as is. */
  show?: (absolutePath: string) => string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The valid templates of a raw `pipelines` mapping; invalid ones map to undefined (reported by the schema). */
function templatesOf(raw: unknown): Array<[string, PipelineTemplateOut | undefined]> {
  if (!isRecord(raw)) return [];
  const entry = PipelineFileSchema.shape.pipelines.valueType;
  return Object.entries(raw)
    .filter(([key]) => isName(key))
    .map(([key, value]) => {
      const parsed = entry.safeParse(value);
      return [key, parsed.success ? parsed.data : undefined];
    });
}

/**
 * Reads the templates the manifest `data` (raw, as read from YAML) defines and those of its
 * `pipelineFiles`, reporting unreadable files, YAML and schema errors in them (with their own
 * file and line) and names defined twice.
 */
export function collectPipelineTemplates(data: unknown, options: CollectTemplatesOptions): PipelineTemplateSet {
  const root = isRecord(data) ? data : {};
  const templates = new Map<string, PipelineTemplateEntry>();
  const manifestIssues: PathIssue[] = [];
  const fileIssues: ManifestIssue[] = [];
  const files: Array<{ path: string; text: string }> = [];
  let incomplete = false;

  const list = Array.isArray(root.pipelineFiles) ? root.pipelineFiles : [];
  const seen = new Map<string, number>();
  list.forEach((entry, i) => {
    if (typeof entry !== "string" || entry === "") return; // the schema reports it
    const at: PathSegment[] = ["pipelineFiles", i];
    const abs = resolve(options.dir, entry);
    const first = seen.get(abs);
    if (first !== undefined) {
      manifestIssues.push({ path: at, message: `"${entry}" is listed twice (also pipelineFiles[${first}])`, found: JSON.stringify(entry) });
      return;
    }
    seen.set(abs, i);
    let text: string;
    try {
      text = readFileSync(abs, "utf8");
    } catch (err) {
      incomplete = true;
      const code = (err as NodeJS.ErrnoException).code;
      const message = code === "ENOENT" || code === "ENOTDIR" ? `"${entry}" does not exist` : code === "EISDIR" ? `"${entry}" is a folder, expected a file of pipeline templates` : `cannot read "${entry}": ${code ?? String(err)}`;
      manifestIssues.push({ path: at, message, found: JSON.stringify(entry), hint: `looked for ${abs}` });
      return;
    }
    files.push({ path: abs, text });
    const shown = options.show?.(abs) ?? abs;
    const source = parseYamlSource(text);
    const issues: Array<Omit<ManifestIssue, "file">> = [...source.issues];
    if (source.fatal) {
      incomplete = true;
    } else if (source.empty) {
      issues.push({ line: 1, column: 1, path: "", message: "the file is empty; a pipeline file needs a pipelines mapping", expected: "mapping" });
    } else {
      const check = checkAgainstSchema(PipelineFileSchema, source.data);
      if (!check.ok) for (const { path, at: where, ...rest } of check.issues) issues.push({ ...source.locate(path, where), path: formatIssuePath(path), ...rest });
      const raw = isRecord(source.data) ? source.data.pipelines : undefined;
      for (const [name, template] of templatesOf(raw)) {
        const place = source.locate(["pipelines", name], "key");
        const other = templates.get(name);
        if (other !== undefined) {
          issues.push({ ...place, path: formatIssuePath(["pipelines", name]), message: `pipeline template "${name}" is also defined at ${other.where}; give one of them another name` });
          continue;
        }
        templates.set(name, { name, where: `${shown}:${place.line}:${place.column}`, template });
      }
    }
    fileIssues.push(...issues.map((issue) => ({ file: shown, ...issue })).sort((a, b) => a.line - b.line || a.column - b.column));
  });

  // The manifest's own templates.
  for (const [name, template] of templatesOf(root.pipelines)) {
    const other = templates.get(name);
    if (other !== undefined) {
      manifestIssues.push({ path: ["pipelines", name], at: "key", message: `pipeline template "${name}" is also defined at ${other.where}; give one of them another name` });
      continue;
    }
    const place = options.locate?.(["pipelines", name], "key");
    const where = place === undefined ? `${options.manifestFile} ${formatIssuePath(["pipelines", name])}` : `${options.manifestFile}:${place.line}:${place.column}`;
    templates.set(name, { name, where, template });
  }
  return { templates, manifestIssues, fileIssues, files, incomplete };
}

/**
 * The rules between services and templates, on raw manifest data: a template that is not
 * defined, overrides of stages the template lacks, stages written in the form the other
 * kind of pipeline takes, and `build`/`test` beside a template.
 */
export function checkPipelineTemplateRules(services: Record<string, unknown>, set: PipelineTemplateSet): PathIssue[] {
  const issues: PathIssue[] = [];
  const names = [...set.templates.keys()].sort();
  for (const [service, raw] of Object.entries(services)) {
    if (!isRecord(raw)) continue;
    const pipeline = raw.pipeline;
    const at = (...rest: PathSegment[]): PathSegment[] => ["services", service, "pipeline", ...rest];
    const written = typeof pipeline === "string" ? { name: pipeline, path: at() } : isRecord(pipeline) && typeof pipeline.template === "string" ? { name: pipeline.template, path: at("template") } : undefined;
    const stages = isRecord(pipeline) ? pipeline.stages : undefined;
    if (written === undefined) {
      if (isRecord(stages)) {
        issues.push({
          path: at("stages"),
          message: "stages as a mapping changes stages of a template, and this pipeline names none",
          hint: "add template: <name>, or list the stages ([{ name, run }])",
        });
      }
      continue;
    }
    // A malformed name is reported by the schema; a second message about it would only repeat it.
    if (!isName(written.name)) continue;
    const entry = set.templates.get(written.name);
    for (const key of ["build", "test"] as const) {
      if (raw[key] === undefined) continue;
      const stage = entry?.template?.stages.some((s) => s.name === key) === true ? key : "<stage>";
      issues.push({
        path: ["services", service, key],
        message: `${key} and pipeline template "${written.name}" both say what to run; with a template, change its stage for this service instead`,
        hint: `pipeline: { template: ${written.name}, stages: { ${stage}: { run: ... } } }`,
      });
    }
    if (entry === undefined) {
      // A shared file that could not be read may define it; that file's problem is reported already.
      if (set.incomplete) continue;
      const close = didYouMean(written.name, names);
      const defined = names.length > 0 ? `defined templates: ${names.join(", ")}` : "no pipeline templates are defined; add them under pipelines or in a file listed in pipelineFiles";
      issues.push({
        path: written.path,
        message: `service "${service}" uses pipeline template "${written.name}", which is not defined`,
        found: JSON.stringify(written.name),
        hint: close === undefined ? defined : `did you mean \`${close}\`? ${defined}`,
      });
      continue;
    }
    if (Array.isArray(stages)) {
      issues.push({
        path: at("stages"),
        message: `with template "${written.name}", stages changes single stages by name, as a mapping`,
        hint: `e.g. stages: { test: { run: npm run test:ci } }; to list every stage yourself, remove template`,
      });
      continue;
    }
    const template = entry.template;
    if (!isRecord(stages) || template === undefined) continue;
    const stageNames = template.stages.map((s) => s.name);
    for (const key of Object.keys(stages)) {
      if (stageNames.includes(key)) continue;
      const close = didYouMean(key, stageNames);
      issues.push({
        path: at("stages", key),
        at: "key",
        message: `service "${service}" overrides stage "${key}", which pipeline template "${written.name}" (${entry.where}) does not have`,
        hint: `${close === undefined ? "" : `did you mean \`${close}\`? `}its stages: ${stageNames.join(", ")}`,
      });
    }
  }
  return issues;
}

/**
 * The manifest with every service's pipeline resolved: a template's stages, with the
 * service's overrides applied, become the service's stages; `template` keeps the name.
 * Called on a manifest that passed the rules, so every template it names is defined.
 */
export function resolvePipelines(written: ManifestWritten, set: PipelineTemplateSet): Manifest {
  const templates: Record<string, PipelineTemplateOut> = {};
  for (const [name, entry] of set.templates) if (entry.template !== undefined) templates[name] = entry.template;
  const services: Record<string, ServiceSpec> = {};
  for (const [name, spec] of Object.entries(written.services)) services[name] = resolveService(spec, templates);
  const pipelines = Object.keys(templates).length > 0 ? templates : written.pipelines;
  return { ...written, ...(pipelines === undefined ? {} : { pipelines }), services };
}

function resolveService(spec: ServiceSpecWritten, templates: Readonly<Record<string, PipelineTemplateOut>>): ServiceSpec {
  const { pipeline, ...rest } = spec;
  if (pipeline === undefined) return rest;
  const { template: name, stages, ...settings } = pipeline;
  let resolved: PipelineSpecOut;
  if (name === undefined) {
    resolved = { ...settings, ...(Array.isArray(stages) ? { stages } : {}) };
  } else {
    const overrides = stages !== undefined && !Array.isArray(stages) ? stages : {};
    const template = Object.hasOwn(templates, name) ? templates[name] : undefined;
    resolved = {
      template: name,
      stages: (template?.stages ?? []).map((stage) => {
        const o = Object.hasOwn(overrides, stage.name) ? overrides[stage.name] : undefined;
        if (o === undefined) return stage;
        return { ...stage, ...(o.run === undefined ? {} : { run: o.run }), ...(o.timeout === undefined ? {} : { timeout: o.timeout }) };
      }),
      ...settings,
    };
  }
  return { ...rest, pipeline: resolved };
}
