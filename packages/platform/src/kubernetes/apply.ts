// Applies rendered objects to a cluster with server-side apply (@kubernetes/client-node 1.x), after
// validating all of them and checking the Secrets they need exist, then follows the Deployments'
// rollouts until each is complete, failed or out of time.
import { KeelsonError } from "@keelson/protocol";
import { KubernetesObjectApi, PatchStrategy, dumpYaml, loadYaml, type KubeConfig } from "@kubernetes/client-node";
import { parse } from "yaml";
import { canonicalJson } from "../store/index.js";
import { objectRef, type KubernetesObject } from "./kubernetes-object.js";
import { deploymentRolloutStatus, type DeploymentView, type RolloutStatus } from "./rollout-status.js";
import { validateKubernetesObjects } from "./validate.js";

/** A Secret the objects read (env, envFrom or a volume) and who reads it. */
export interface SecretReference {
  namespace: string;
  name: string;
  /** Keys read one by one (secretKeyRef); empty when only the whole Secret is used. */
  keys: string[];
  usedBy: string[];
}

export type KubernetesApplyProgress =
  | { type: "applied"; object: string; dryRun: boolean }
  | { type: "rollout"; object: string; status: RolloutStatus };

export interface ApplyKubernetesOptions {
  kubeConfig: KubeConfig;
  /** Who owns the applied fields (server-side apply's field manager). Default "keelson". */
  fieldManager?: string;
  /** Ask the API server to check everything and persist nothing (`--dry-run=server`). */
  dryRun?: boolean;
  /** Longest wait for all rollouts. Default 10 minutes. */
  timeoutMs?: number;
  /** Time between looks at the Deployments. Default 2 s. */
  pollIntervalMs?: number;
  onProgress?: (p: KubernetesApplyProgress) => void;
  signal?: AbortSignal;
  /** Clock for the timeout (tests inject one). */
  now?: () => number;
}

export interface ApplyKubernetesResult {
  applied: string[];
  rollouts: Array<{ object: string; status: RolloutStatus }>;
}

/**
 * Validates every object, checks that the Secrets they read exist with the keys they read, applies
 * them in order with server-side apply, then waits for every Deployment's rollout.
 * Invalid objects: KEELSON_ERR_INVALID_INPUT, nothing applied. A missing Secret:
 * KEELSON_ERR_NOT_FOUND, nothing applied. The API server refusing an object: KEELSON_ERR_RUNTIME
 * naming it (objects before it stay applied). A rollout that failed or ran out of time:
 * KEELSON_ERR_ROLLOUT_FAILED.
 *
 * @example
 * const kubeConfig = new KubeConfig();
 * kubeConfig.loadFromDefault();
 * await applyKubernetes(render.objects, { kubeConfig, onProgress: console.log });
 */
export async function applyKubernetes(objects: readonly KubernetesObject[], options: ApplyKubernetesOptions): Promise<ApplyKubernetesResult> {
  validateKubernetesObjects(objects);
  const typed = objects.map(clientModelOf);
  const api = KubernetesObjectApi.makeApiClient(options.kubeConfig);
  const fieldManager = options.fieldManager ?? "keelson";
  const dryRun = options.dryRun === true;

  await checkSecrets(api, referencedSecrets(objects));

  const applied: string[] = [];
  for (const [i, o] of objects.entries()) {
    options.signal?.throwIfAborted();
    const ref = objectRef(o);
    try {
      // force: Keelson owns every field it renders, as a controller does (kubectl's
      // --force-conflicts); fields it leaves out, such as an autoscaled replica count, stay with
      // their owners.
      await api.patch(typed[i] as KubernetesObject, undefined, dryRun ? "All" : undefined, fieldManager, true, PatchStrategy.ServerSideApply);
    } catch (err) {
      throw new KeelsonError("KEELSON_ERR_RUNTIME", `the Kubernetes API refused ${ref}: ${apiMessage(err)}${applied.length > 0 ? ` (${applied.length} objects before it were applied)` : ""}`, {
        details: { object: ref, applied },
        cause: err,
      });
    }
    applied.push(ref);
    options.onProgress?.({ type: "applied", object: ref, dryRun });
  }
  if (dryRun) return { applied, rollouts: [] };

  const deployments = objects.filter((o) => o.kind === "Deployment");
  const rollouts = await waitForRollouts(api, deployments, options);
  return { applied, rollouts };
}

/**
 * The object as the client's typed model. The client serializes a request body from its models'
 * property names (`_from` for a NetworkPolicy rule's `from`), so plain data would lose such fields,
 * and any field its models lack is dropped. Converting first, and checking that converting back
 * gives the same object, makes a field the client cannot send an error before anything is applied.
 */
function clientModelOf(o: KubernetesObject): KubernetesObject {
  const typed = loadYaml<KubernetesObject>(JSON.stringify(o));
  const back = parse(dumpYaml(typed)) as unknown;
  if (canonicalJson(back) !== canonicalJson(o)) {
    const path = firstDifference(o, back, "") ?? "";
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${objectRef(o)}: ${path}: the Kubernetes client (@kubernetes/client-node) cannot send this field; nothing was applied`, {
      details: { object: objectRef(o), path },
    });
  }
  return typed;
}

/** Where two JSON values first differ, as a field path ("spec.ingress[0].from"), or undefined. */
function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) return canonicalJson(a ?? null) === canonicalJson(b ?? null) ? undefined : path;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of [...keys].sort()) {
    const sub = Array.isArray(a) ? `${path}[${k}]` : path === "" ? k : `${path}.${k}`;
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], sub);
    if (d !== undefined) return d;
  }
  return undefined;
}

/** The Secrets the objects read, by namespace and name, with the keys read and who reads them. */
export function referencedSecrets(objects: readonly KubernetesObject[]): SecretReference[] {
  const refs = new Map<string, SecretReference>();
  const use = (namespace: string, name: string, key: string | undefined, by: string) => {
    const id = `${namespace}/${name}`;
    const ref = refs.get(id) ?? { namespace, name, keys: [], usedBy: [] };
    if (key !== undefined && !ref.keys.includes(key)) ref.keys.push(key);
    if (!ref.usedBy.includes(by)) ref.usedBy.push(by);
    refs.set(id, ref);
  };
  for (const o of objects) {
    if (o.kind !== "Deployment") continue;
    const ns = o.metadata.namespace ?? "default";
    const pod = (o.spec as { template?: { spec?: PodSpecView } } | undefined)?.template?.spec;
    for (const c of pod?.containers ?? []) {
      for (const e of c.env ?? []) {
        const s = e.valueFrom?.secretKeyRef;
        if (s !== undefined && s.optional !== true) use(ns, s.name, s.key, objectRef(o));
      }
      for (const e of c.envFrom ?? []) {
        if (e.secretRef !== undefined && e.secretRef.optional !== true) use(ns, e.secretRef.name, undefined, objectRef(o));
      }
    }
    for (const v of pod?.volumes ?? []) {
      if (v.secret !== undefined && v.secret.optional !== true) use(ns, v.secret.secretName, undefined, objectRef(o));
    }
  }
  return [...refs.values()].sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1)).map((r) => ({ ...r, keys: [...r.keys].sort() }));
}

interface PodSpecView {
  containers?: Array<{
    env?: Array<{ valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }>;
    envFrom?: Array<{ secretRef?: { name: string; optional?: boolean } }>;
  }>;
  volumes?: Array<{ secret?: { secretName: string; optional?: boolean } }>;
}

/** Pods whose Secret is missing never start; say so before applying anything, with the fix. */
async function checkSecrets(api: KubernetesObjectApi, refs: SecretReference[]): Promise<void> {
  const problems: string[] = [];
  for (const ref of refs) {
    let data: Record<string, unknown> | undefined;
    try {
      const secret = await api.read<KubernetesObject & { data?: Record<string, unknown> }>({ apiVersion: "v1", kind: "Secret", metadata: { name: ref.name, namespace: ref.namespace } });
      data = secret.data ?? {};
    } catch (err) {
      if (statusOf(err) !== 404) throw new KeelsonError("KEELSON_ERR_RUNTIME", `cannot read Secret ${ref.namespace}/${ref.name}: ${apiMessage(err)}`, { cause: err });
    }
    const users = ref.usedBy.join(", ");
    if (data === undefined) {
      const keys = ref.keys.length > 0 ? ref.keys : ["<key>"];
      problems.push(`Secret ${ref.namespace}/${ref.name} does not exist (read by ${users}); create it: kubectl -n ${ref.namespace} create secret generic ${ref.name} ${keys.map((k) => `--from-literal=${k}=...`).join(" ")}`);
      continue;
    }
    const missing = ref.keys.filter((k) => !(k in (data as Record<string, unknown>)));
    if (missing.length > 0) problems.push(`Secret ${ref.namespace}/${ref.name} has no key ${missing.join(", ")} (read by ${users})`);
  }
  if (problems.length > 0) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `nothing was applied:\n${problems.join("\n")}`, { details: { secrets: refs } });
}

async function waitForRollouts(api: KubernetesObjectApi, deployments: KubernetesObject[], options: ApplyKubernetesOptions): Promise<Array<{ object: string; status: RolloutStatus }>> {
  const now = options.now ?? Date.now;
  const deadline = now() + (options.timeoutMs ?? 600_000);
  const interval = options.pollIntervalMs ?? 2000;
  const last = new Map<string, RolloutStatus>();
  let pending = [...deployments];
  for (;;) {
    const still: KubernetesObject[] = [];
    for (const d of pending) {
      const ref = objectRef(d);
      let current: DeploymentView;
      try {
        current = await api.read<KubernetesObject & DeploymentView>({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: d.metadata.name, namespace: d.metadata.namespace ?? "default" } });
      } catch (err) {
        throw new KeelsonError("KEELSON_ERR_RUNTIME", `cannot read ${ref} to follow its rollout: ${apiMessage(err)}`, { cause: err });
      }
      const status = deploymentRolloutStatus(current);
      if (last.get(ref)?.message !== status.message) options.onProgress?.({ type: "rollout", object: ref, status });
      last.set(ref, status);
      if (status.state === "failed") throw new KeelsonError("KEELSON_ERR_ROLLOUT_FAILED", `${ref}: ${status.message}`, { details: { object: ref, status } });
      if (status.state === "progressing") still.push(d);
    }
    pending = still;
    if (pending.length === 0) break;
    if (now() >= deadline) {
      const waiting = pending.map((d) => `${objectRef(d)}: ${last.get(objectRef(d))?.message ?? "no status yet"}`);
      throw new KeelsonError("KEELSON_ERR_ROLLOUT_FAILED", `rollouts did not finish in ${Math.round((options.timeoutMs ?? 600_000) / 1000)} s:\n${waiting.join("\n")}`, { details: { waiting } });
    }
    await sleep(interval, options.signal);
  }
  return deployments.map((d) => ({ object: objectRef(d), status: last.get(objectRef(d)) as RolloutStatus }));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The HTTP status of a client error (ApiException carries it as `code`). */
function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

/** The API server's own words (a Status object's message), else the client's. */
function apiMessage(err: unknown): string {
  let body = (err as { body?: unknown } | undefined)?.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      // not JSON: the text itself is the best we have
    }
  }
  const message = typeof body === "object" && body !== null ? (body as { message?: unknown }).message : typeof body === "string" && body !== "" ? body : undefined;
  const status = statusOf(err);
  if (typeof message === "string") return status === undefined ? message : `${message} (HTTP ${status})`;
  return err instanceof Error ? err.message.split("\n")[0] ?? String(err) : String(err);
}
