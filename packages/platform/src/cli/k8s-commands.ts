// `keelson k8s render`: writes the project as Kubernetes YAML (a file per component and a
// kustomization.yaml) for kubectl or GitOps tools. `keelson k8s apply`: applies the same objects
// with server-side apply and follows the rollouts. Parsing and output only; kubernetes/ renders.
// kubernetes/ and the Kubernetes client (about a thousand modules) load only when a k8s command
// runs: every other command starts without them.
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, relative, resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import type { KubeConfig } from "@kubernetes/client-node";
import { KeelsonError } from "@keelson/protocol";
import type * as Kubernetes from "../kubernetes/index.js";
import type { KubernetesApplyProgress, KubernetesRender } from "../kubernetes/index.js";
import { loadManifest, parseDuration, type LoadedManifest } from "../manifest/index.js";
import { color, ms } from "./output.js";
import { print } from "./progress.js";

interface RenderOptions {
  namespace?: string;
  imagePrefix?: string;
  tag: string;
  image: Record<string, string>;
  release: Record<string, string[]>;
  keelsonImage?: string;
  storeSecret: string;
  gatewayServiceType: "ClusterIP" | "NodePort" | "LoadBalancer";
}

type KubernetesModule = typeof Kubernetes;
const loadKubernetes = (): Promise<KubernetesModule> => import("../kubernetes/index.js");

const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** `service=value` pairs of a repeatable option, collected into a record. */
function pair(what: string) {
  return (text: string, previous: Record<string, string> = {}): Record<string, string> => {
    const m = /^([a-z][a-z0-9-]*)=(.+)$/.exec(text);
    if (!m) throw new InvalidArgumentError(`expected service=${what}, got "${text}"`);
    return { ...previous, [m[1] as string]: m[2] as string };
  };
}

function releaseList(text: string, previous: Record<string, string[]> = {}): Record<string, string[]> {
  const [service, ids] = Object.entries(pair("release[,release]")(text))[0] as [string, string];
  return { ...previous, [service]: ids.split(",").filter((x) => x !== "") };
}

function namespaceName(text: string): string {
  if (!NAME.test(text)) throw new InvalidArgumentError(`expected a namespace (lowercase letters, digits and "-", at most 63 characters), got "${text}"`);
  return text;
}

function duration(text: string): number {
  try {
    return parseDuration(text);
  } catch {
    throw new InvalidArgumentError(`expected a duration like 90s or 10m, got "${text}"`);
  }
}

function addRenderOptions(cmd: Command): Command {
  return cmd
    .argument("[dir]", "project folder", ".")
    .addOption(new Option("--namespace <ns>", "namespace of every object (default: the project name)").argParser(namespaceName))
    .option("--image-prefix <prefix>", "registry and path of the images: <prefix>/<service>:<tag> (default: the project name)")
    .option("--tag <tag>", "image tag of every service and of keelson (use an immutable tag or digest in production)", "latest")
    .addOption(new Option("--image <service=ref>", "the image of one service (repeatable); overrides --image-prefix and --tag").argParser(pair("image")).default({}, "none"))
    .addOption(new Option("--release <service=id[,id]>", "release ids to run for a service, e.g. stable then canary (repeatable; default: a hash of its spec and image)").argParser(releaseList).default({}, "none"))
    .option("--keelson-image <ref>", "image of the gateway and control plane, whose entrypoint is keelson (default: <prefix>/keelson:<tag>)")
    .option("--store-secret <name>", "Secret holding the PostgreSQL store URL under key url", "keelson-store")
    .addOption(new Option("--gateway-service-type <type>", "also expose the gateway's public port with a Service of this type").choices(["ClusterIP", "NodePort", "LoadBalancer"]).default("ClusterIP"));
}

function renderProject(k8s: KubernetesModule, loaded: LoadedManifest, opts: RenderOptions): KubernetesRender {
  const project = loaded.manifest.project;
  const prefix = (opts.imagePrefix ?? project).replace(/\/+$/, "");
  for (const name of [...Object.keys(opts.image), ...Object.keys(opts.release)]) {
    if (loaded.manifest.services[name] === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `--image/--release name service "${name}", which ${loaded.file} does not declare`);
  }
  const render = k8s.renderKubernetes(loaded.manifest, {
    manifestText: loaded.text,
    ...(opts.namespace === undefined ? {} : { namespace: opts.namespace }),
    images: (service) => opts.image[service] ?? `${prefix}/${service}:${opts.tag}`,
    releases: opts.release,
    controlPlane: { image: opts.keelsonImage ?? `${prefix}/keelson:${opts.tag}`, storeSecret: opts.storeSecret },
    gateway: { serviceType: opts.gatewayServiceType },
  });
  k8s.validateKubernetesObjects(render.objects);
  for (const w of render.warnings) print(color.yellow(`  ! ${w}`));
  return render;
}

/** The Secrets to create before applying, as kubectl commands. */
function secretsNote(k8s: KubernetesModule, render: KubernetesRender): string {
  const lines = k8s.referencedSecrets(render.objects).map(
    (s) => `    kubectl -n ${s.namespace} create secret generic ${s.name} ${(s.keys.length > 0 ? s.keys : ["<key>"]).map((k) => `--from-literal=${k}=...`).join(" ")}`,
  );
  return lines.length === 0 ? "" : `${color.bold("Secrets")} the pods read (no value is ever rendered); create them before applying:\n${lines.join("\n")}`;
}

/** Writes the files and removes files an earlier render wrote that are no longer part of it. */
async function writeFiles(k8s: KubernetesModule, out: string, render: KubernetesRender, source: string): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const files = k8s.kubernetesFiles(render.objects, { source });
  const keep = new Set(files.map((f) => f.path));
  for (const name of await readdir(out)) {
    if (!name.endsWith(".yaml") || keep.has(name)) continue;
    const text = await readFile(join(out, name), "utf8").catch(() => "");
    if (text.startsWith(k8s.GENERATED_HEADER)) await rm(join(out, name));
  }
  for (const f of files) await writeFile(join(out, f.path), f.text);
  return files.map((f) => f.path);
}

/** The cluster from --kubeconfig, $KUBECONFIG, ~/.kube/config or the pod's service account; an error naming them when there is none. */
async function kubeConfigFrom(opts: { kubeconfig?: string; context?: string }): Promise<KubeConfig> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  const defaultFile = join(homedir(), ".kube", "config");
  try {
    if (opts.kubeconfig !== undefined) kc.loadFromFile(resolve(opts.kubeconfig));
    else if ((process.env.KUBECONFIG ?? "") !== "" || existsSync(defaultFile) || (process.env.KUBERNETES_SERVICE_HOST ?? "") !== "") kc.loadFromDefault();
    else throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `no Kubernetes cluster configured: set KUBECONFIG, pass --kubeconfig, or create ${defaultFile} (e.g. with your provider's CLI)`);
  } catch (err) {
    if (err instanceof KeelsonError) throw err;
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `cannot read the kubeconfig: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (opts.context !== undefined) {
    if (kc.getContextObject(opts.context) === null) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `--context ${opts.context}: no such context (known: ${kc.getContexts().map((c) => c.name).join(", ") || "none"})`);
    kc.setCurrentContext(opts.context);
  }
  return kc;
}

function describeApply(p: KubernetesApplyProgress): string {
  if (p.type === "applied") return `  ${color.green("✓")} ${p.object} ${color.dim(p.dryRun ? "checked (server dry run)" : "applied")}`;
  const mark = p.status.state === "complete" ? color.green("✓") : p.status.state === "failed" ? color.red("✗") : color.cyan("⇄");
  return `  ${mark} ${p.status.message} ${color.dim(`(${p.status.available}/${p.status.desired} available)`)}`;
}

export function addK8sCommands(program: Command): void {
  const k8s = program.command("k8s").description("run the project on Kubernetes: render it as YAML, or apply it to a cluster");

  addRenderOptions(
    k8s
      .command("render")
      .description("write the project as Kubernetes YAML: a file per service, the gateway and the control plane, plus kustomization.yaml (kubectl apply -k, Argo CD)")
      .requiredOption("--out <folder>", "folder to write the files into"),
  ).action(async (dirArg: string, opts: RenderOptions & { out: string }) => {
    const loaded = await loadManifest(resolve(dirArg));
    const k8s = await loadKubernetes();
    const render = renderProject(k8s, loaded, opts);
    const out = resolve(opts.out);
    const source = relative(out, loaded.file) || loaded.file;
    const written = await writeFiles(k8s, out, render, source);
    print(`${color.green("✓")} ${render.objects.length} objects in namespace ${render.namespace} written to ${out}: ${written.join(", ")}`);
    const note = secretsNote(k8s, render);
    if (note !== "") print(note);
    const shown = relative(process.cwd(), out);
    print(color.dim(`apply with: kubectl apply -k ${shown === "" ? "." : shown.startsWith("..") ? out : shown}   (or keelson k8s apply)`));
  });

  addRenderOptions(
    k8s
      .command("apply")
      .description("validate, then apply the project to the cluster with server-side apply and follow the rollouts")
      .option("--kubeconfig <file>", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
      .option("--context <name>", "kubeconfig context to use (default: the current one)")
      .addOption(new Option("--dry-run <mode>", "server: the API server checks everything and persists nothing; client: validate only").choices(["server", "client"]))
      .addOption(new Option("--timeout <duration>", "longest wait for the rollouts").argParser(duration).default(600_000, "10m")),
  ).action(async (dirArg: string, opts: RenderOptions & { kubeconfig?: string; context?: string; dryRun?: "server" | "client"; timeout: number }) => {
    const loaded = await loadManifest(resolve(dirArg));
    const k8s = await loadKubernetes();
    const render = renderProject(k8s, loaded, opts);
    if (opts.dryRun === "client") {
      print(`${color.green("✓")} ${render.objects.length} objects valid for namespace ${render.namespace}; nothing sent (--dry-run=client)`);
      return;
    }
    const kubeConfig = await kubeConfigFrom(opts);
    const started = Date.now();
    print(`${color.bold("applying")} ${render.objects.length} objects to ${kubeConfig.getCurrentCluster()?.server ?? "?"} (context ${kubeConfig.getCurrentContext()}, namespace ${render.namespace})${opts.dryRun === "server" ? " as a server dry run" : ""}`);
    const result = await k8s.applyKubernetes(render.objects, {
      kubeConfig,
      dryRun: opts.dryRun === "server",
      timeoutMs: opts.timeout,
      onProgress: (p) => print(describeApply(p)),
    });
    print(
      opts.dryRun === "server"
        ? `${color.green("✓")} the API server accepts all ${result.applied.length} objects; nothing was changed`
        : `${color.green("✓")} ${result.applied.length} objects applied, ${result.rollouts.length} Deployments rolled out (${ms(Date.now() - started)})`,
    );
  });
}
