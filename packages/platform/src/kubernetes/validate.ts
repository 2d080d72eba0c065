// Checks rendered objects against the Kubernetes OpenAPI schema (kubernetes-models) and the
// naming rules the schema leaves to the API server, so a bad object is refused before any is applied.
import { KeelsonError } from "@keelson/protocol";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { objectRef, type KubernetesObject } from "./kubernetes-object.js";

/** One problem with one object: which object, which field, what is wrong. */
export interface KubernetesIssue {
  object: string;
  path: string;
  message: string;
}

interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

type Model = new (data: never) => { validate(): void };
const MODELS: Record<string, Model> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * Every problem of every object: schema errors with their field path, names Kubernetes would
 * refuse, unknown kinds and objects given twice. Empty when all are valid.
 */
export function kubernetesIssues(objects: readonly KubernetesObject[]): KubernetesIssue[] {
  const issues: KubernetesIssue[] = [];
  const seen = new Set<string>();
  for (const o of objects) {
    const ref = objectRef(o);
    const add = (path: string, message: string) => issues.push({ object: ref, path, message });
    const model = MODELS[`${o.apiVersion}/${o.kind}`];
    if (model === undefined) {
      add("kind", `${o.apiVersion} ${o.kind} is not a kind Keelson renders (known: ${Object.keys(MODELS).join(", ")})`);
      continue;
    }
    if (seen.has(ref)) add("metadata.name", "the same object is given twice");
    seen.add(ref);
    try {
      new model(o as never).validate();
    } catch (err) {
      const errors = (err as { errors?: SchemaError[] }).errors;
      if (errors === undefined) throw err;
      for (const [path, message] of describeSchemaErrors(errors, o)) add(path, message);
    }
    checkNames(o, add);
  }
  return issues;
}

/**
 * Throws KEELSON_ERR_INVALID_INPUT listing every problem, each line naming the object and field:
 * `Deployment shop/orders-r-3f9a1c2b7d4e: spec.replicas: must be integer, got "2"`.
 */
export function validateKubernetesObjects(objects: readonly KubernetesObject[]): void {
  const issues = kubernetesIssues(objects);
  if (issues.length === 0) return;
  const lines = issues.map((i) => `${i.object}: ${i.path}: ${i.message}`);
  throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${issues.length === 1 ? "a Kubernetes object is" : `${issues.length} problems in Kubernetes objects`} invalid; nothing was applied:\n${lines.join("\n")}`, { details: { issues } });
}

/** ajv's errors, one message per field: "must be integer, got "2"" at "spec.replicas". */
function describeSchemaErrors(errors: SchemaError[], object: unknown): Array<[string, string]> {
  const byPath = new Map<string, string[]>();
  for (const e of errors) {
    // A missing property is reported at its parent; name the property itself.
    const missing = e.keyword === "required" ? String(e.params.missingProperty) : undefined;
    const path = fieldPath(e.instancePath) + (missing === undefined ? "" : `${e.instancePath === "" ? "" : "."}${missing}`);
    // oneOf/anyOf only say that the alternatives listed beside them all failed.
    if (e.keyword === "oneOf" || e.keyword === "anyOf") continue;
    const message = missing !== undefined ? "is required" : (e.message ?? e.keyword);
    const list = byPath.get(path) ?? [];
    if (!list.includes(message)) list.push(message);
    byPath.set(path, list);
  }
  return [...byPath].map(([path, messages]) => {
    const value = valueAt(object, path);
    return [path, `${messages.join(" or ")}${value === undefined ? "" : `, got ${JSON.stringify(value)}`}`];
  });
}

/** "/spec/template/spec/containers/0/ports/0/containerPort" → "spec.template.spec.containers[0].ports[0].containerPort". */
function fieldPath(instancePath: string): string {
  return instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc === "" ? part : `${acc}.${part}`), "");
}

function valueAt(object: unknown, path: string): unknown {
  let v = object;
  for (const part of path.match(/[^.[\]]+/g) ?? []) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return typeof v === "object" ? undefined : v;
}

/** What the API server checks of names and labels and the OpenAPI schema does not say. */
function checkNames(o: KubernetesObject, add: (path: string, message: string) => void): void {
  const name = o.metadata?.name;
  if (typeof name !== "string" || name === "") {
    add("metadata.name", "is required");
  } else if (o.kind === "Service" || o.kind === "Namespace") {
    // Service names become DNS labels (and environment variable prefixes); namespaces are labels too.
    const rule = o.kind === "Service" ? DNS_1035_LABEL : DNS_LABEL;
    if (!rule.test(name) || name.length > 63) add("metadata.name", `must be lowercase letters, digits and "-"${o.kind === "Service" ? ", starting with a letter" : ""}, at most 63 characters, got ${JSON.stringify(name)}`);
  } else if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
    add("metadata.name", `must be lowercase letters, digits, "-" and ".", at most 253 characters, got ${JSON.stringify(name)}`);
  }
  const ns = o.metadata?.namespace;
  if (ns !== undefined && (!DNS_LABEL.test(ns) || ns.length > 63)) add("metadata.namespace", `must be lowercase letters, digits and "-", at most 63 characters, got ${JSON.stringify(ns)}`);
  for (const [where, labels] of labelSets(o)) {
    for (const [key, value] of Object.entries(labels)) {
      const slash = key.lastIndexOf("/");
      const prefix = slash === -1 ? undefined : key.slice(0, slash);
      const keyName = slash === -1 ? key : key.slice(slash + 1);
      if ((prefix !== undefined && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253)) || !LABEL_NAME.test(keyName) || keyName.length > 63) {
        add(`${where}["${key}"]`, "is not a valid label key");
      }
      if (typeof value !== "string" || !LABEL_VALUE.test(value) || value.length > 63) add(`${where}["${key}"]`, `must be at most 63 letters, digits, "-", "_" or ".", got ${JSON.stringify(value)}`);
    }
  }
}

/** The label maps of an object: its own, a pod template's and selectors' matchLabels. */
function labelSets(o: KubernetesObject): Array<[string, Record<string, unknown>]> {
  const sets: Array<[string, Record<string, unknown>]> = [];
  const add = (where: string, v: unknown) => {
    if (typeof v === "object" && v !== null && !Array.isArray(v)) sets.push([where, v as Record<string, unknown>]);
  };
  add("metadata.labels", o.metadata?.labels);
  const spec = o.spec as { template?: { metadata?: { labels?: unknown } }; selector?: { matchLabels?: unknown } | Record<string, unknown> } | undefined;
  add("spec.template.metadata.labels", spec?.template?.metadata?.labels);
  if (o.kind === "Service") add("spec.selector", spec?.selector);
  else add("spec.selector.matchLabels", (spec?.selector as { matchLabels?: unknown } | undefined)?.matchLabels);
  return sets;
}
