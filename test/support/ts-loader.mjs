// Lets a child process that a test starts (a cluster worker, a spawned script) run our TypeScript
// sources as they are: `node --import <this file>`. vitest transforms only its own process, and
// Node 20 cannot strip types, so children would otherwise need a build. Types are erased with the
// project's own TypeScript (no type check: `tsc -b` and vitest do that).
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { register } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";

// Hooks run on a loader thread that imports this same file: register only from the real process.
if (isMainThread) register(import.meta.url);

/** URL to pass as `--import` to a child process. */
export const TS_LOADER_URL = import.meta.url;

let ts;
// Every child transpiles the same files, and loading TypeScript alone takes a second: output is
// kept by content hash, so only the first child after a change pays for it.
const CACHE = join(tmpdir(), "keelson-ts-loader-cache");

/** Our sources import siblings as `./x.js` (NodeNext); from a `.ts` parent that means `./x.ts`. */
export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (parent !== undefined && parent.endsWith(".ts") && specifier.endsWith(".js") && (specifier.startsWith("./") || specifier.startsWith("../"))) {
    const candidate = new URL(`${specifier.slice(0, -3)}.ts`, parent);
    if (existsSync(candidate)) return { url: candidate.href, format: "module", shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return next(url, context);
  const file = fileURLToPath(url);
  const source = await readFile(file, "utf8");
  const cached = join(CACHE, `${createHash("sha256").update("es2022-v1\0").update(file).update("\0").update(source).digest("hex")}.js`);
  try {
    return { format: "module", source: await readFile(cached, "utf8"), shortCircuit: true };
  } catch {
    // Not transpiled yet.
  }
  ts ??= (await import("typescript")).default;
  const out = ts.transpileModule(source, {
    fileName: file,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      inlineSourceMap: true,
      inlineSources: true,
    },
  });
  await mkdir(CACHE, { recursive: true });
  const tmp = `${cached}.${process.pid}.tmp`;
  await writeFile(tmp, out.outputText);
  await rename(tmp, cached);
  return { format: "module", source: out.outputText, shortCircuit: true };
}
