// The shape every rendered Kubernetes object has, and the labels Keelson puts on them, shared by
// rendering, validation and apply.

/** A Kubernetes object as plain data: what is rendered to YAML and sent to the API server. */
export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** Label keys Keelson sets (the app.kubernetes.io ones are Kubernetes' recommended labels). */
export const LABELS = {
  name: "app.kubernetes.io/name",
  component: "app.kubernetes.io/component",
  partOf: "app.kubernetes.io/part-of",
  managedBy: "app.kubernetes.io/managed-by",
  service: "keelson.dev/service",
  release: "keelson.dev/release",
} as const;

/** "Deployment shop/orders-r-3f9a1c2b7d4e": how messages name an object. */
export function objectRef(o: Pick<KubernetesObject, "kind" | "metadata">): string {
  const ns = o.metadata.namespace;
  return `${o.kind} ${ns === undefined ? "" : `${ns}/`}${o.metadata.name}`;
}
