// Which stages a service's pipeline runs: the manifest's `pipeline.stages` when given, else
// derived from the service's folder (install with its own lockfile, build and test from
// `build`/`test` or package.json scripts).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ServiceSpec } from "../manifest/index.js";
import { findLockfile } from "./workspace.js";

export interface ResolvedStage {
  name: string;
  run: string;
  timeoutMs: number;
  /** Where the stage came from, for people reading the run: "manifest", "build field", "package.json". */
  origin: string;
}

const DEFAULT_STAGE_TIMEOUT = 600_000;

const INSTALL: Record<string, string> = {
  "package-lock.json": "npm ci --no-audit --no-fund",
  "npm-shrinkwrap.json": "npm ci --no-audit --no-fund",
  "pnpm-lock.yaml": "pnpm install --frozen-lockfile",
  "yarn.lock": "yarn install --frozen-lockfile",
};

export async function resolveStages(spec: ServiceSpec, serviceDir: string): Promise<ResolvedStage[]> {
  const stageTimeout = spec.pipeline?.stageTimeout ?? DEFAULT_STAGE_TIMEOUT;
  if (spec.pipeline?.stages !== undefined) {
    return spec.pipeline.stages.map((s) => ({ name: s.name, run: s.run, timeoutMs: s.timeout ?? stageTimeout, origin: "manifest" }));
  }
  const scripts = await packageScripts(serviceDir);
  const stages: ResolvedStage[] = [];
  const lockfile = await findLockfile(serviceDir);
  if (lockfile !== undefined) stages.push({ name: "install", run: INSTALL[lockfile] as string, timeoutMs: stageTimeout, origin: lockfile });
  if (spec.build !== undefined) stages.push({ name: "build", run: spec.build, timeoutMs: stageTimeout, origin: "build field" });
  else if (scripts.build !== undefined) stages.push({ name: "build", run: "npm run build", timeoutMs: stageTimeout, origin: "package.json" });
  if (spec.test !== undefined) stages.push({ name: "test", run: spec.test, timeoutMs: stageTimeout, origin: "test field" });
  else if (scripts.test !== undefined && !/no test specified/.test(scripts.test)) stages.push({ name: "test", run: "npm test", timeoutMs: stageTimeout, origin: "package.json" });
  return stages;
}

async function packageScripts(dir: string): Promise<Record<string, string>> {
  try {
    const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { scripts?: Record<string, unknown> };
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(pkg.scripts ?? {})) if (typeof v === "string") out[k] = v;
    return out;
  } catch {
    return {};
  }
}
