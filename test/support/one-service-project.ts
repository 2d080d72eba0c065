// A project of one service, "api", for tests that run the real binary: keelson.yaml on free
// loopback ports and services/api/server.mjs. The tests of several control planes, of the docker
// runtime and of the one-control-plane rule share it.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "./index.js";

/** A node:http server: `/ready` answers ok, anything else `{ pid }` plus what `extra` adds (JS expressions by key). */
export function apiServerSource(extra: Record<string, string> = {}): string {
  const fields = Object.entries(extra)
    .map(([key, expression]) => `, ${JSON.stringify(key)}: ${expression}`)
    .join("");
  return `
import { createServer } from "node:http";
import { existsSync } from "node:fs";
const server = createServer((req, res) => {
  if (req.url === "/ready") { res.end("ok"); return; }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ pid: process.pid${fields} }));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;
}

export interface OneServiceProject {
  controlPlanePort: number;
  gatewayPort: number;
  adminPort: number;
  meshPort: number;
}

/**
 * Writes the project into `dir`: service `api` (owner core) with `replicas`, readiness `/ready`,
 * the route `/api` (prefix stripped) and a pipeline of `node -e 0`. `top` adds manifest lines at
 * the top level, `service` lines in the service (given unindented).
 */
export async function writeOneServiceProject(
  dir: string,
  options: { project: string; replicas?: number; top?: string[]; service?: string[]; server?: string },
): Promise<OneServiceProject> {
  const [controlPlanePort, gatewayPort, adminPort, meshPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  await writeFile(
    join(dir, "keelson.yaml"),
    [
      "version: 1",
      `project: ${options.project}`,
      ...(options.top ?? []),
      `controlPlane: { host: 127.0.0.1, port: ${controlPlanePort} }`,
      `gateway: { host: 127.0.0.1, port: ${gatewayPort}, adminPort: ${adminPort}, meshPort: ${meshPort} }`,
      "services:",
      "  api:",
      "    owner: core",
      "    path: services/api",
      "    start: node server.mjs",
      `    replicas: ${options.replicas ?? 1}`,
      "    readiness: /ready",
      "    routes: [{ path: /api, stripPrefix: true }]",
      '    pipeline: { stages: [{ name: test, run: "node -e 0" }] }',
      ...(options.service ?? []).map((line) => `    ${line}`),
      "",
    ].join("\n"),
  );
  await mkdir(join(dir, "services", "api"), { recursive: true });
  await writeFile(join(dir, "services", "api", "server.mjs"), options.server ?? apiServerSource());
  await writeFile(join(dir, "services", "api", "package.json"), JSON.stringify({ name: "api", version: "1.0.0", private: true, type: "module" }));
  return { controlPlanePort, gatewayPort, adminPort, meshPort };
}
