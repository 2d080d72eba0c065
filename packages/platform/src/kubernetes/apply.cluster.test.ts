// applyKubernetes against a real cluster, when KUBECONFIG names one: a throwaway namespace with one
// service (the pause image: no probes, runs as non-root with a read-only root), applied, watched
// until rolled out, re-applied unchanged, dry-run with a change that must not stick, then deleted. No API server can run on the CI machines,
// so without KUBECONFIG the suite is skipped with the reason printed.
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { KubeConfig, KubernetesObjectApi } from "@kubernetes/client-node";
import { parseManifest } from "../manifest/index.js";
import { applyKubernetes } from "./apply.js";
import { LABELS } from "./kubernetes-object.js";
import { renderKubernetes } from "./render.js";

const KUBECONFIG = process.env.KUBECONFIG;
if (KUBECONFIG === undefined || KUBECONFIG === "") {
  process.stderr.write("SKIP kubernetes cluster suite: KUBECONFIG is not set (no Kubernetes API server runs on this machine)\n");
}

describe.skipIf(KUBECONFIG === undefined || KUBECONFIG === "")("applyKubernetes on a real cluster", () => {
  const namespace = `keelson-test-${randomBytes(4).toString("hex")}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const { manifest, text } = parseManifest("version: 1\nproject: k8stest\nservices:\n  hello: { owner: t, path: h, start: pause, replicas: 2 }\n", "keelson.yaml", { checkPaths: false });
  const { objects } = renderKubernetes(manifest, { manifestText: text, namespace, images: () => "registry.k8s.io/pause:3.9", controlPlane: { image: "unused" }, releases: { hello: "r-1" } });
  // Only the service: the gateway and control plane need a keelson image and the store Secret.
  const mine = objects.filter((o) => o.kind === "Namespace" || o.metadata.labels?.[LABELS.service] === "hello");

  afterAll(async () => {
    await KubernetesObjectApi.makeApiClient(kubeConfig)
      .delete({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } })
      .catch(() => undefined);
  });

  it("applies, waits for the rollout, and applies again unchanged", async () => {
    const seen: string[] = [];
    const first = await applyKubernetes(mine, { kubeConfig, timeoutMs: 240_000, onProgress: (p) => p.type === "rollout" && seen.push(p.status.message) });
    expect(first.rollouts).toEqual([{ object: `Deployment ${namespace}/hello-r-1`, status: expect.objectContaining({ state: "complete", desired: 2, available: 2 }) }]);
    expect(seen.at(-1)).toBe('deployment "hello-r-1" successfully rolled out');
    const again = await applyKubernetes(mine, { kubeConfig, timeoutMs: 60_000 });
    expect(again.rollouts[0]?.status.state).toBe("complete");
    const live = await KubernetesObjectApi.makeApiClient(kubeConfig).read<{ apiVersion: string; kind: string; metadata: { name: string; namespace: string; managedFields?: Array<{ manager?: string; operation?: string }> } }>({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "hello-r-1", namespace },
    });
    expect(live.metadata.managedFields?.some((f) => f.manager === "keelson" && f.operation === "Apply")).toBe(true);
  }, 300_000);

  // After the apply: a server-side dry run of namespaced objects needs their namespace to exist.
  it("server-side dry run checks every object and changes nothing", async () => {
    const scaled = mine.map((o) => (o.kind === "Deployment" ? { ...o, spec: { ...(o.spec as object), replicas: 3 } } : o));
    const result = await applyKubernetes(scaled, { kubeConfig, dryRun: true });
    expect(result.applied).toHaveLength(mine.length);
    const live = await KubernetesObjectApi.makeApiClient(kubeConfig).read<{ apiVersion: string; kind: string; metadata: { name: string }; spec: { replicas: number } }>({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "hello-r-1", namespace },
    });
    expect(live.spec.replicas).toBe(2);
  }, 60_000);
});
