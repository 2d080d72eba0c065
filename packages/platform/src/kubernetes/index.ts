// The kubernetes domain: renders a project as Kubernetes objects, validates them against the
// Kubernetes OpenAPI schema, applies them with server-side apply and follows their rollouts.
export { CONTROL_PLANE_NAME, EXTERNAL_METRICS, GATEWAY_NAME, KIND_ORDER, MANIFEST_CONFIG_MAP, MASTER_KEY_SECRET, SERVICE_PORT, STORE_SECRET_KEY, renderKubernetes, sortForApply } from "./render.js";
export type { KubernetesRender, RenderKubernetesOptions } from "./render.js";
export { LABELS, objectRef } from "./kubernetes-object.js";
export type { KubernetesObject } from "./kubernetes-object.js";
export { kubernetesIssues, validateKubernetesObjects } from "./validate.js";
export type { KubernetesIssue } from "./validate.js";
export { deploymentRolloutStatus } from "./rollout-status.js";
export type { DeploymentView, RolloutStatus } from "./rollout-status.js";
export { applyKubernetes, referencedSecrets } from "./apply.js";
export type { ApplyKubernetesOptions, ApplyKubernetesResult, KubernetesApplyProgress, SecretReference } from "./apply.js";
export { GENERATED_HEADER, kubernetesFiles } from "./render-files.js";
export type { RenderedFile } from "./render-files.js";
