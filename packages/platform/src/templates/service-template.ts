// A service template on disk: its definition (template.yaml or template.json) and its files,
// read and checked as a whole before anything is written, then rendered for one service.
import { lstat, readdir, readFile } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { didYouMean, formatManifestIssue, type ManifestIssue } from "../manifest/index.js";
import { renderPlaceholders, scanPlaceholders, type TemplateValue } from "./placeholders.js";
import { BUILTIN_VARIABLES, parseTemplateDefinition, type TemplateDefinition } from "./template-definition.js";

/** Where a template comes from: shipped with Keelson, added with `keelson templates add`, or a folder named on the command line. */
export type TemplateOrigin = "built-in" | "user" | "folder";

export interface TemplateFile {
  /** Path in the template ("/"-separated), placeholders unreplaced. */
  path: string;
  /** Executable bits are kept. */
  mode: number;
  content: Buffer;
  /** False for binary files and files matching `verbatim`: copied as they are. */
  substitute: boolean;
}

export interface ServiceTemplate {
  name: string;
  origin: TemplateOrigin;
  dir: string;
  /** Absolute path of template.yaml (or template.json). */
  definitionFile: string;
  definition: TemplateDefinition;
  files: TemplateFile[];
}

/** A rendered file, ready to be written under the service's folder. */
export interface RenderedFile {
  path: string;
  mode: number;
  content: Buffer;
}

export const DEFINITION_FILES = ["template.yaml", "template.yml", "template.json"] as const;
/** Where `keelson templates add` notes a template's source; not part of the template. */
export const SOURCE_NOTE_FILE = ".keelson-source.json";
/** Folders never part of a template. */
const SKIPPED_DIRS = new Set([".git", "node_modules"]);
const MAX_FILES = 1000;
const MAX_BYTES = 20 * 1024 * 1024;
/** npm leaves .gitignore files out of packages, so templates ship them as `gitignore`. */
const RENAMED: Record<string, string> = { gitignore: ".gitignore" };
const SYMLINK_REFUSED = "a template may not hold symbolic links; copy the file in instead";

/** A path as shown in messages: relative to the working directory when inside it. */
export function shownPath(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}

/** A glob (`*`, `**`, `?`) as a regular expression over "/"-separated paths. */
export function globRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*" && glob[i + 1] === "*") {
      const slash = glob[i + 2] === "/";
      out += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

function isBinary(content: Buffer): boolean {
  if (content.subarray(0, 8000).includes(0)) return true;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(content);
    return false;
  } catch {
    return true;
  }
}

function templateError(name: string, issues: ManifestIssue[]): KeelsonError {
  return new KeelsonError("KEELSON_ERR_TEMPLATE_INVALID", `template "${name}" is not valid:\n${issues.map(formatManifestIssue).join("\n")}`, { details: { template: name, issues } });
}

/**
 * Reads a template folder and checks all of it: the definition, and the placeholders in every
 * file's name and text. Throws KEELSON_ERR_TEMPLATE_INVALID listing every problem with its
 * file, line and column.
 *
 * @example
 * const template = await loadTemplate("/path/to/templates/http-ts", { name: "http-ts", origin: "built-in" });
 */
export async function loadTemplate(dir: string, options: { name: string; origin: TemplateOrigin }): Promise<ServiceTemplate> {
  const { name, origin } = options;
  let definitionFile: string | undefined;
  for (const f of DEFINITION_FILES) {
    const info = await lstat(join(dir, f)).catch(() => undefined);
    if (info?.isSymbolicLink()) throw templateError(name, [{ file: shownPath(join(dir, f)), line: 1, column: 1, path: "", message: SYMLINK_REFUSED }]);
    if (info?.isFile()) {
      definitionFile = join(dir, f);
      break;
    }
  }
  if (definitionFile === undefined) {
    throw new KeelsonError("KEELSON_ERR_TEMPLATE_INVALID", `template "${name}" has no template.yaml (looked in ${dir})`, { details: { template: name, dir } });
  }
  const text = await readFile(definitionFile, "utf8");
  const parsed = parseTemplateDefinition(text, shownPath(definitionFile));
  const issues = [...parsed.issues];

  const files: TemplateFile[] = [];
  let bytes = 0;
  const verbatim = (parsed.definition?.verbatim ?? []).map(globRegExp);
  const known = new Set<string>([...Object.keys(BUILTIN_VARIABLES), ...(parsed.definition?.variables.map((v) => v.name) ?? [])]);
  const suggest = (w: string) => didYouMean(w, known);
  const walk = async (folder: string): Promise<void> => {
    for (const entry of (await readdir(folder, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const abs = join(folder, entry.name);
      const rel = relative(dir, abs).split(sep).join("/");
      const shown = shownPath(abs);
      // Before anything is skipped: a link among the skipped names (the source note) would be written through.
      if (entry.isSymbolicLink()) {
        issues.push({ file: shown, line: 1, column: 1, path: "", message: SYMLINK_REFUSED });
        continue;
      }
      if (folder === dir && ((DEFINITION_FILES as readonly string[]).includes(entry.name) || entry.name === SOURCE_NOTE_FILE)) continue;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) await walk(abs);
        continue;
      }
      if (!entry.isFile()) continue;
      for (const issue of scanPlaceholders(rel, known, suggest).issues) {
        issues.push({ file: shown, line: 1, column: 1, path: "", message: `in the file's name: ${issue.message}`, ...(issue.hint ? { hint: issue.hint } : {}) });
      }
      const info = await lstat(abs);
      bytes += info.size;
      if (files.length >= MAX_FILES || bytes > MAX_BYTES) {
        throw new KeelsonError("KEELSON_ERR_TEMPLATE_INVALID", `template "${name}" is too large: at most ${MAX_FILES} files and ${MAX_BYTES / 1024 / 1024} MB (in ${dir})`, { details: { template: name, dir } });
      }
      const content = await readFile(abs);
      const substitute = !isBinary(content) && !verbatim.some((g) => g.test(rel));
      if (substitute) {
        for (const issue of scanPlaceholders(content.toString("utf8"), known, suggest).issues) {
          issues.push({ file: shown, line: issue.line, column: issue.column, path: "", message: issue.message, ...(issue.hint ? { hint: issue.hint } : {}) });
        }
      }
      files.push({ path: rel, mode: info.mode & 0o777, content, substitute });
    }
  };
  await walk(dir);
  if (issues.length > 0 || parsed.definition === undefined) throw templateError(name, issues);
  return { name, origin, dir, definitionFile, definition: parsed.definition, files };
}

/**
 * The files of a template for one service: placeholders replaced in names and texts,
 * `gitignore` written as `.gitignore`. Throws KEELSON_ERR_INVALID_INPUT when a value makes a
 * file name invalid (a "/" in it, say) or two files land on one path.
 */
export function renderTemplateFiles(template: ServiceTemplate, values: Readonly<Record<string, TemplateValue>>): RenderedFile[] {
  const out: RenderedFile[] = [];
  const seen = new Set<string>();
  for (const file of template.files) {
    const segments = file.path.split("/").map((segment) => {
      const rendered = renderPlaceholders(segment, values);
      if (rendered === "" || rendered === "." || rendered === ".." || /[/\\\0]/.test(rendered)) {
        throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `template "${template.name}": the file name ${file.path} becomes "${rendered}", which is not a valid file name; choose other values`);
      }
      return rendered;
    });
    const last = segments.length - 1;
    const base = segments[last] as string;
    segments[last] = Object.hasOwn(RENAMED, base) ? (RENAMED[base] as string) : base;
    const path = segments.join("/");
    if (seen.has(path)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `template "${template.name}": two files become ${path}; choose other values`);
    seen.add(path);
    const content = file.substitute ? Buffer.from(renderPlaceholders(file.content.toString("utf8"), values), "utf8") : file.content;
    out.push({ path, mode: file.mode, content });
  }
  return out;
}
