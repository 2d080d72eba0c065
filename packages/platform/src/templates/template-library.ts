// Where templates are found: the built-in ones shipped in @keelson/platform's templates/ folder,
// the user's own added with `keelson templates add` (a folder per template in the user's
// config folder), or any folder named on the command line.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, lstat, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join, resolve, sep } from "node:path";
import { promisify } from "node:util";
import { KeelsonError } from "@keelson/protocol";
import { didYouMean } from "../manifest/index.js";
import { PLATFORM_PACKAGE_DIR } from "./provided-packages.js";
import { loadTemplate, SOURCE_NOTE_FILE, type ServiceTemplate, type TemplateOrigin } from "./service-template.js";

const run = promisify(execFile);

/** The built-in templates' folder. */
export const BUILTIN_TEMPLATES_DIR = join(PLATFORM_PACKAGE_DIR, "templates");

const TEMPLATE_NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TEMPLATE_NAME_RULE = 'lowercase letters, digits and "-", starting with a letter';

/**
 * Where `keelson templates add` keeps templates: $KEELSON_TEMPLATES_DIR, else
 * $XDG_CONFIG_HOME/keelson/templates, else ~/.config/keelson/templates.
 */
export function userTemplatesDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KEELSON_TEMPLATES_DIR) return resolve(env.KEELSON_TEMPLATES_DIR);
  const config = env.XDG_CONFIG_HOME ? resolve(env.XDG_CONFIG_HOME) : join(homedir(), ".config");
  return join(config, "keelson", "templates");
}

export interface LibraryOptions {
  /** Folder of the user's templates (default userTemplatesDir()). */
  userDir?: string;
  /** Folder of the built-in templates (tests point it elsewhere). */
  builtinDir?: string;
}

/** Where an added template came from, kept beside it. */
export interface TemplateSourceNote {
  source: string;
  kind: "folder" | "git";
  ref?: string;
  commit?: string;
  addedAt: string;
}

export interface TemplateListing {
  name: string;
  origin: TemplateOrigin;
  dir: string;
  description?: string;
  source?: TemplateSourceNote;
  /** The first problem of a template that does not load. */
  problem?: string;
}

async function folders(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && TEMPLATE_NAME.test(e.name))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

async function sourceNote(dir: string): Promise<TemplateSourceNote | undefined> {
  try {
    if (!(await lstat(join(dir, SOURCE_NOTE_FILE))).isFile()) return undefined;
    return JSON.parse(await readFile(join(dir, SOURCE_NOTE_FILE), "utf8")) as TemplateSourceNote;
  } catch {
    return undefined;
  }
}

/** Built-in and user templates, each checked (a broken one is listed with its problem). */
export async function listTemplates(options: LibraryOptions = {}): Promise<TemplateListing[]> {
  const out: TemplateListing[] = [];
  const sets: Array<[TemplateOrigin, string]> = [
    ["built-in", options.builtinDir ?? BUILTIN_TEMPLATES_DIR],
    ["user", options.userDir ?? userTemplatesDir()],
  ];
  for (const [origin, base] of sets) {
    for (const name of await folders(base)) {
      const dir = join(base, name);
      const listing: TemplateListing = { name, origin, dir };
      const note = origin === "user" ? await sourceNote(dir) : undefined;
      if (note) listing.source = note;
      try {
        listing.description = (await loadTemplate(dir, { name, origin })).definition.description;
      } catch (err) {
        listing.problem = (err as Error).message.split("\n").slice(0, 2).join(" ");
      }
      out.push(listing);
    }
  }
  return out;
}

/** Whether `path` is a folder itself, not a symbolic link to one (the listing shows only those). */
async function isRealFolder(path: string): Promise<boolean> {
  return lstat(path).then((s) => s.isDirectory(), () => false);
}

/** Whether the argument names a folder rather than a template ("./x", "../x", "/x", "x/y"). */
function looksLikePath(text: string): boolean {
  return text.startsWith(".") || text.includes("/") || text.includes("\\");
}

/**
 * Loads a template by name (built-in first, then the user's) or from a folder path. Throws
 * KEELSON_ERR_NOT_FOUND naming the templates there are, and KEELSON_ERR_TEMPLATE_INVALID.
 *
 * @example
 * const template = await findTemplate("http-ts");
 */
export async function findTemplate(nameOrPath: string, options: LibraryOptions = {}): Promise<ServiceTemplate> {
  if (looksLikePath(nameOrPath)) {
    const dir = resolve(nameOrPath);
    if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no template folder at ${dir}`);
    return loadTemplate(dir, { name: basename(dir), origin: "folder" });
  }
  const builtin = join(options.builtinDir ?? BUILTIN_TEMPLATES_DIR, nameOrPath);
  if (TEMPLATE_NAME.test(nameOrPath) && (await isRealFolder(builtin))) return loadTemplate(builtin, { name: nameOrPath, origin: "built-in" });
  const user = join(options.userDir ?? userTemplatesDir(), nameOrPath);
  if (TEMPLATE_NAME.test(nameOrPath) && (await isRealFolder(user))) return loadTemplate(user, { name: nameOrPath, origin: "user" });
  const names = [...(await folders(options.builtinDir ?? BUILTIN_TEMPLATES_DIR)), ...(await folders(options.userDir ?? userTemplatesDir()))];
  const close = didYouMean(nameOrPath, names);
  throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no template "${nameOrPath}"${close ? `; did you mean \`${close}\`?` : ""}; templates: ${names.join(", ")} (\`keelson templates list\`; a folder works too: ./path/to/template)`, {
    details: { template: nameOrPath, templates: names },
  });
}

/** Whether a source is a git repository address rather than a local folder. */
export function isGitSource(source: string): boolean {
  return /^(https?|ssh|git|file):\/\//.test(source) || /^[\w.-]+@[\w.-]+:/.test(source);
}

export interface AddTemplateOptions extends LibraryOptions {
  /** The template's name (default: its template.yaml's `name`, else the folder's or repository's name). */
  name?: string;
  /** A branch or tag to clone. */
  ref?: string;
  /** The template's folder inside the source (a repository holding several templates). */
  subdir?: string;
  /** Replace a user template of the same name. */
  force?: boolean;
  onProgress?: (message: string) => void;
}

export interface AddedTemplate {
  name: string;
  dir: string;
  template: ServiceTemplate;
  note: TemplateSourceNote;
  replaced: boolean;
}

/**
 * Adds a template from a folder or a git repository to the user's templates: copied (or
 * cloned) next to them, checked as `keelson new` would, then renamed into place. Nothing is
 * left behind when any step fails.
 *
 * @example
 * await addTemplate("https://git.example.com/platform/templates.git", { subdir: "go-api", name: "go-api" });
 */
export async function addTemplate(source: string, options: AddTemplateOptions = {}): Promise<AddedTemplate> {
  const userDir = options.userDir ?? userTemplatesDir();
  await mkdir(userDir, { recursive: true });
  const staging = join(userDir, `.adding-${randomBytes(4).toString("hex")}`);
  const trash = `${staging}-old`;
  try {
    const git = isGitSource(source) || (!existsSync(source) && /\.git$/.test(source));
    let note: TemplateSourceNote;
    if (git) {
      options.onProgress?.(`cloning ${source}${options.ref ? ` (${options.ref})` : ""}…`);
      await cloneInto(source, options.ref, join(staging, "clone"));
      const commit = (await run("git", ["-C", join(staging, "clone"), "rev-parse", "HEAD"])).stdout.trim();
      note = { source, kind: "git", ...(options.ref ? { ref: options.ref } : {}), commit, addedAt: new Date().toISOString() };
    } else {
      // The folder a link names is copied, never the link (cp would copy a link as a link).
      const dir = resolve(source);
      if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) {
        throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no folder or git repository at ${source} (a git URL starts with https://, ssh://, git://, file:// or user@host:)`);
      }
      note = { source: dir, kind: "folder", addedAt: new Date().toISOString() };
      await cp(await realpath(dir), join(staging, "clone"), { recursive: true, verbatimSymlinks: true, filter: (from) => !/[/\\](\.git|node_modules)$/.test(from) });
    }
    const clone = join(staging, "clone");
    let root = clone;
    if (options.subdir !== undefined) root = await subfolder(clone, options.subdir, source);
    const fallbackName = basename(options.subdir ?? source.replace(/[/\\]+$/, "")).replace(/\.git$/, "");
    // Checked under a provisional name first; the definition may name itself.
    const probe = await loadTemplate(root, { name: options.name ?? fallbackName, origin: "user" });
    const name = options.name ?? probe.definition.name ?? fallbackName;
    if (!TEMPLATE_NAME.test(name)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `template name "${name}" is not valid: ${TEMPLATE_NAME_RULE}; pass --name`);
    if (existsSync(join(options.builtinDir ?? BUILTIN_TEMPLATES_DIR, name))) {
      throw new KeelsonError("KEELSON_ERR_CONFLICT", `"${name}" is a built-in template; add it under another name with --name`);
    }
    const dest = join(userDir, name);
    const replaced = existsSync(dest);
    if (replaced && !options.force) throw new KeelsonError("KEELSON_ERR_CONFLICT", `a template "${name}" was already added (${dest}); --force replaces it`);
    // Only now, and only the clone's own: a .git reached through a link could be anyone's.
    await rm(join(clone, ".git"), { recursive: true, force: true });
    await rm(join(root, SOURCE_NOTE_FILE), { force: true }); // a copy of an added template has one; never written through
    await writeFile(join(root, SOURCE_NOTE_FILE), `${JSON.stringify(note, null, 2)}\n`, { flag: "wx" });
    if (replaced) await rename(dest, trash);
    try {
      await rename(root, dest);
    } catch (err) {
      if (replaced) await rename(trash, dest).catch(() => undefined);
      throw err;
    }
    await rm(trash, { recursive: true, force: true });
    const template = await loadTemplate(dest, { name, origin: "user" });
    return { name, dir: dest, template, note, replaced };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The template's folder inside a clone: a real folder under it, never a symbolic link (which
 * could name any folder on the machine, and would be moved in as a link).
 */
async function subfolder(clone: string, subdir: string, source: string): Promise<string> {
  const root = resolve(clone, subdir);
  const info = await lstat(root).catch(() => undefined);
  if (info === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no folder ${subdir} in ${source}`, { details: { source, subdir } });
  if (info.isSymbolicLink()) {
    throw new KeelsonError("KEELSON_ERR_TEMPLATE_INVALID", `--subdir ${subdir} is a symbolic link in ${source}; a template's folder must be a real folder of the source`, { details: { source, subdir } });
  }
  const [real, top] = await Promise.all([realpath(root), realpath(clone)]);
  if (real !== top && !real.startsWith(top + sep)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `--subdir ${subdir} leads outside ${source} (through ".." or a symbolic link); name a folder inside it`, { details: { source, subdir } });
  }
  if (!info.isDirectory()) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no folder ${subdir} in ${source}`, { details: { source, subdir } });
  return real;
}

async function cloneInto(source: string, ref: string | undefined, dest: string): Promise<void> {
  const args = ["clone", "--quiet", "--depth", "1", ...(ref ? ["--branch", ref] : []), "--", source, dest];
  try {
    await run("git", args, { env: { ...process.env, GIT_TERMINAL_PROMPT: "0" }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
    throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `git clone ${source}${ref ? ` --branch ${ref}` : ""} failed: ${stderr.split("\n").slice(-3).join(" ") || (err as Error).message}`, { details: { source } });
  }
}

/** Removes a user template. Throws KEELSON_ERR_NOT_FOUND when there is none by that name. */
export async function removeTemplate(name: string, options: LibraryOptions = {}): Promise<string> {
  const dir = join(options.userDir ?? userTemplatesDir(), name);
  if (!TEMPLATE_NAME.test(name) || !existsSync(dir)) {
    const builtin = TEMPLATE_NAME.test(name) && existsSync(join(options.builtinDir ?? BUILTIN_TEMPLATES_DIR, name));
    throw new KeelsonError("KEELSON_ERR_NOT_FOUND", builtin ? `"${name}" is a built-in template; only added templates can be removed` : `no added template "${name}" in ${options.userDir ?? userTemplatesDir()}`);
  }
  await rm(dir, { recursive: true, force: true });
  return dir;
}
