// Checks what the manifest's runtime needs on this machine: the Docker Engine answering for
// `runtime: docker`; a kubeconfig (and kubectl, for people) for `runtime: kubernetes`.
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import type { Manifest } from "../manifest/index.js";
import { connectEngine } from "../runtime/index.js";
import { fail, pass, warn, type CheckResult } from "./check-result.js";

export interface CheckRuntimeToolsInput {
  runtime: Manifest["runtime"];
  /** DOCKER_HOST, KUBECONFIG and PATH are read from it; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where ~/.kube/config is looked for; default the user's home. */
  home?: string;
  timeoutMs?: number;
}

async function exists(file: string, mode = constants.F_OK): Promise<boolean> {
  return access(file, mode).then(
    () => true,
    () => false,
  );
}

async function onPath(program: string, path: string): Promise<string | undefined> {
  for (const dir of path.split(delimiter).filter(Boolean)) if (await exists(join(dir, program), constants.X_OK)) return join(dir, program);
  return undefined;
}

async function checkDocker(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CheckResult[]> {
  const host = env.DOCKER_HOST;
  if (host !== undefined && host !== "" && !host.startsWith("unix://")) {
    return [fail("runtime", `DOCKER_HOST=${host} is not a unix socket; the docker runtime talks to a local engine only`, "unset DOCKER_HOST, or set it to unix:///path/to/docker.sock")];
  }
  const socket = host !== undefined && host.startsWith("unix://") ? host.slice("unix://".length) : "/var/run/docker.sock";
  try {
    const docker = connectEngine(socket);
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
    return [pass("runtime", `runtime docker: the Docker Engine at ${socket} answers`)];
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    return [fail("runtime", `runtime docker: the Docker Engine at ${socket} does not answer (${reason})`, "start Docker (and let this user use its socket), or set DOCKER_HOST=unix:///path/to/docker.sock")];
  }
}

async function checkKubernetes(env: NodeJS.ProcessEnv, home: string): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const configs = env.KUBECONFIG !== undefined && env.KUBECONFIG !== "" ? env.KUBECONFIG.split(delimiter).filter(Boolean) : [join(home, ".kube", "config")];
  const found: string[] = [];
  for (const file of configs) if (await exists(file, constants.R_OK)) found.push(file);
  results.push(
    found.length > 0
      ? pass("runtime", `runtime kubernetes: kubeconfig ${found.join(", ")}`)
      : fail("runtime", `runtime kubernetes: no readable kubeconfig at ${configs.join(", ")}`, "point KUBECONFIG at your cluster's kubeconfig (`keelson k8s apply` needs it; `keelson k8s render` does not)"),
  );
  const kubectl = await onPath("kubectl", env.PATH ?? "");
  results.push(
    kubectl !== undefined
      ? pass("runtime", `runtime kubernetes: kubectl at ${kubectl}`)
      : warn("runtime", "runtime kubernetes: kubectl is not on PATH (Keelson does not need it, but looking at the cluster by hand does)", "install kubectl, e.g. from https://kubernetes.io/docs/tasks/tools/"),
  );
  return results;
}

/** What the runtime needs; nothing to check (no line) for the default process runtime. */
export async function checkRuntimeTools(input: CheckRuntimeToolsInput): Promise<CheckResult[]> {
  const env = input.env ?? process.env;
  switch (input.runtime) {
    case "process":
      return [];
    case "docker":
      return checkDocker(env, input.timeoutMs ?? 5000);
    case "kubernetes":
      return checkKubernetes(env, input.home ?? homedir());
  }
}
