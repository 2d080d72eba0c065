// A small git repository with three dependency-free services for the delivery e2e test:
// alpha, beta and gamma under services/<name>/, each with a `build` and a `test` script, and
// shared/config.json that only gamma includes in its pipeline.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { git } from "#test-support";

export const SERVICES = ["alpha", "beta", "gamma"] as const;
export type ServiceName = (typeof SERVICES)[number];

/** Stages everything and commits; returns the new HEAD's full sha. */
export async function commitAll(dir: string, message: string): Promise<string> {
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "-q", "-m", message]);
  return git(dir, ["rev-parse", "HEAD"]);
}

/** A service's server: `/ready` answers 200, anything else JSON naming its version and release. */
export function serverSource(service: string, version: string): string {
  return `// ${service}: a dependency-free HTTP server for the delivery e2e test.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";

const VERSION = ${JSON.stringify(version)};

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}
// Written by the pipeline's build stage; present only when this runs from a built artifact.
const built = readJson("dist/info.json");
// Only in the workspace of a service that includes it (gamma).
const shared = readJson("../../shared/config.json");

const server = createServer((req, res) => {
  if (req.url === "/ready") {
    res.end("ok");
    return;
  }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ service: ${JSON.stringify(service)}, version: VERSION, release: process.env.KEELSON_RELEASE ?? null, pid: process.pid, built, shared, path: req.url }));
});
server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log(\`${service} \${VERSION} listening on \${process.env.PORT}\`));
process.on("SIGTERM", () => process.exit(0));
`;
}

const BUILD = `// Build stage: records what was built in dist/info.json.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
const source = readFileSync("server.mjs", "utf8");
const version = /const VERSION = "([^"]*)"/.exec(source)?.[1] ?? null;
mkdirSync("dist", { recursive: true });
writeFileSync("dist/info.json", JSON.stringify({ version, commit: process.env.KEELSON_COMMIT ?? null, run: process.env.KEELSON_PIPELINE_RUN ?? null }));
console.log("built", version);
`;

const TEST = `// Test stage: fails while a FAIL_TEST file is present, sleeps 8 s while SLOW_TEST is.
import { existsSync, readFileSync } from "node:fs";
const info = JSON.parse(readFileSync("dist/info.json", "utf8"));
console.log("checking build output of", info.version);
if (existsSync("SLOW_TEST")) {
  console.log("slow test: sleeping 8 s");
  await new Promise((r) => setTimeout(r, 8000));
}
if (existsSync("FAIL_TEST")) {
  console.log("1 test failed:");
  console.log("AssertionError: FAIL_TEST marker present in " + info.version);
  process.exit(1);
}
console.log("all tests passed");
`;

function packageJson(service: string): string {
  return `${JSON.stringify({ name: `delivery-${service}`, version: "1.0.0", private: true, type: "module", scripts: { build: "node build.mjs", test: "node test.mjs" } }, null, 2)}\n`;
}

export function manifest(ports: { controlPlane: number; gateway: number; admin: number; mesh?: number }): string {
  const lines = [
    "version: 1",
    "project: delivery",
    `controlPlane: { host: 127.0.0.1, port: ${ports.controlPlane} }`,
    `gateway: { host: 127.0.0.1, port: ${ports.gateway}, adminPort: ${ports.admin}${ports.mesh === undefined ? "" : `, meshPort: ${ports.mesh}`} }`,
    "services:",
  ];
  for (const s of SERVICES) {
    lines.push(
      `  ${s}:`,
      "    owner: platform",
      `    path: services/${s}`,
      "    start: node server.mjs",
      "    replicas: 2",
      "    readiness: /ready",
      `    routes: [{ path: /${s}, stripPrefix: true }]`,
      "    deploy: { drain: 100ms }",
    );
    if (s === "gamma") lines.push("    pipeline: { include: [shared/config.json] }");
  }
  return `${lines.join("\n")}\n`;
}

/** Writes the project into `dir`, makes it a git repository and commits it; returns HEAD. */
export async function writeDeliveryRepo(dir: string, ports: { controlPlane: number; gateway: number; admin: number; mesh?: number }): Promise<string> {
  await writeFile(join(dir, "keelson.yaml"), manifest(ports));
  await writeFile(join(dir, ".gitignore"), "dist/\nnode_modules/\n.keelson/\n");
  await mkdir(join(dir, "shared"), { recursive: true });
  await writeFile(join(dir, "shared", "config.json"), `${JSON.stringify({ greeting: "hello-1" })}\n`);
  for (const s of SERVICES) {
    const d = join(dir, "services", s);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, "server.mjs"), serverSource(s, `${s}-v1`));
    await writeFile(join(d, "build.mjs"), BUILD);
    await writeFile(join(d, "test.mjs"), TEST);
    await writeFile(join(d, "package.json"), packageJson(s));
  }
  await git(dir, ["init", "-q"]);
  return commitAll(dir, "initial: alpha, beta, gamma");
}
