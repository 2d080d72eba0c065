// Checks that the programs each service's pipeline stages start can be found before a run
// fails on them: on PATH (stages run with the control plane's environment), as a file of the
// service, and that `npm run <script>` names a script the service's package.json has.
import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { resolveStages, type ResolvedStage } from "../delivery/index.js";
import type { LoadedManifest, ServiceSpec } from "../manifest/index.js";
import { fail, pass, warn, type CheckResult } from "./check-result.js";
import { simpleCommands, type SimpleCommand } from "./shell-words.js";

export interface CheckPipelineCommandsInput {
  loaded: LoadedManifest;
  /** The PATH stages will run with; default this process's (the control plane inherits it from `keelson up`). */
  path?: string;
}

type Located = { kind: "path" | "file"; at: string } | { kind: "local-bin"; at: string } | { kind: "not-executable"; at: string } | { kind: "missing" };

async function isExecutableFile(file: string): Promise<boolean | "not-executable"> {
  try {
    if (!(await stat(file)).isFile()) return false;
  } catch {
    return false;
  }
  return access(file, constants.X_OK).then(
    () => true,
    () => "not-executable",
  );
}

/** The node_modules/.bin folders a package in `dir` sees: its own and every parent's (workspaces hoist them). */
function localBinDirs(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    out.push(join(d, "node_modules", ".bin"));
    if (dirname(d) === d) return out;
  }
}

async function locate(program: string, serviceDir: string, path: string): Promise<Located> {
  if (program.includes("/")) {
    const file = resolve(serviceDir, program);
    const ok = await isExecutableFile(file);
    return ok === true ? { kind: "file", at: file } : ok === "not-executable" ? { kind: "not-executable", at: file } : { kind: "missing" };
  }
  for (const dir of path.split(delimiter).filter(Boolean)) {
    if ((await isExecutableFile(join(dir, program))) === true) return { kind: "path", at: join(dir, program) };
  }
  for (const dir of localBinDirs(serviceDir)) {
    if ((await isExecutableFile(join(dir, program))) === true) return { kind: "local-bin", at: join(dir, program) };
  }
  return { kind: "missing" };
}

/** The npm script a command runs (`npm run build`, `npm test`, `pnpm run lint`), if any. */
function scriptOf(cmd: SimpleCommand): string | undefined {
  if (cmd.program !== "npm" && cmd.program !== "pnpm" && cmd.program !== "yarn") return undefined;
  const [verb, script] = cmd.args.filter((a) => !a.startsWith("-"));
  if ((verb === "run" || verb === "run-script") && script !== undefined) return script;
  if (verb === "test" || verb === "t" || verb === "start" || verb === "stop" || verb === "restart") return verb === "t" ? "test" : verb;
  return undefined;
}

async function scriptsOf(serviceDir: string): Promise<Record<string, unknown> | undefined> {
  try {
    const pkg = JSON.parse(await readFile(join(serviceDir, "package.json"), "utf8")) as { scripts?: Record<string, unknown> };
    return pkg.scripts ?? {};
  } catch {
    return undefined;
  }
}

/** Every problem with one service's stages, and the programs found. */
async function checkService(name: string, spec: ServiceSpec, serviceDir: string, path: string): Promise<{ problems: CheckResult[]; programs: Set<string>; stages: ResolvedStage[] }> {
  const problems: CheckResult[] = [];
  const programs = new Set<string>();
  const stages = await resolveStages(spec, serviceDir);
  const template = spec.pipeline?.template === undefined ? "" : ` (template "${spec.pipeline.template}")`;
  for (const stage of stages) {
    const where = `${name}, stage "${stage.name}"${template}`;
    for (const cmd of simpleCommands(stage.run)) {
      const found = await locate(cmd.program, serviceDir, path);
      switch (found.kind) {
        case "missing":
          problems.push(
            cmd.program.includes("/")
              ? fail("pipeline-commands", `${where}: ${cmd.program} does not exist in ${serviceDir}`, `add the file, or change the stage's run: ${JSON.stringify(stage.run)}`)
              : fail("pipeline-commands", `${where}: \`${cmd.program}\` is not on PATH or in node_modules/.bin`, `install ${cmd.program}, or add it to the service's devDependencies and run it through an npm script or npx`),
          );
          continue;
        case "not-executable":
          problems.push(fail("pipeline-commands", `${where}: ${found.at} is not executable`, `chmod +x ${relative(process.cwd(), found.at) || found.at}`));
          continue;
        case "local-bin":
          problems.push(
            warn(
              "pipeline-commands",
              `${where}: \`${cmd.program}\` is only in ${found.at}, and stages run with the control plane's PATH, which does not include it`,
              `run it as \`npx ${cmd.program}\` or from an npm script`,
            ),
          );
          continue;
        case "path":
        case "file":
          programs.add(cmd.program);
      }
      const script = scriptOf(cmd);
      if (script !== undefined) {
        const scripts = await scriptsOf(serviceDir);
        if (scripts !== undefined && typeof scripts[script] !== "string") {
          problems.push(fail("pipeline-commands", `${where}: \`${stage.run}\` runs the script "${script}", which ${join(serviceDir, "package.json")} does not have`, `add a "${script}" script to that package.json, or change the stage's run`));
        }
      }
      if (cmd.program === "npx") {
        const bin = cmd.args.find((a) => !a.startsWith("-"));
        if (bin !== undefined && !bin.includes("@") && (await locate(bin, serviceDir, path)).kind === "missing") {
          problems.push(warn("pipeline-commands", `${where}: npx finds no \`${bin}\` installed, so it would download it on every run`, `add the package that provides ${bin} to the service's devDependencies`));
        }
      }
    }
  }
  return { problems, programs, stages };
}

/**
 * A line per service: pass naming the programs found, or a fail (warn) per program missing
 * (found only where stages do not look) and per npm script that is not there.
 */
export async function checkPipelineCommands(input: CheckPipelineCommandsInput): Promise<CheckResult[]> {
  const { loaded } = input;
  const path = input.path ?? process.env.PATH ?? "";
  const results: CheckResult[] = [];
  for (const name of Object.keys(loaded.manifest.services).sort()) {
    const spec = loaded.manifest.services[name] as ServiceSpec;
    const { problems, programs, stages } = await checkService(name, spec, resolve(loaded.dir, spec.path), path);
    if (problems.length > 0) results.push(...problems);
    else if (stages.length === 0) results.push(pass("pipeline-commands", `${name}: no pipeline stages (released as its sources are)`));
    else results.push(pass("pipeline-commands", `${name}: ${[...programs].join(", ") || "nothing"} found for ${stages.map((s) => s.name).join(", ")}`));
  }
  return results;
}
