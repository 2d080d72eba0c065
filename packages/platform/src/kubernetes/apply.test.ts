// The apply and rollout-watch logic against a small HTTP server on 127.0.0.1 that answers like the
// Kubernetes API (discovery, server-side apply, reads). It records what we send: this checks our
// requests and how we read answers, not Kubernetes itself (apply.cluster.test.ts does, with a cluster).
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeConfig } from "@kubernetes/client-node";
import { KeelsonError } from "@keelson/protocol";
import { parseManifest } from "../manifest/index.js";
import { applyKubernetes, type KubernetesApplyProgress } from "./apply.js";
import type { KubernetesObject } from "./kubernetes-object.js";
import { renderKubernetes } from "./render.js";

const RESOURCES: Record<string, Array<{ name: string; kind: string; namespaced: boolean }>> = {
  "/api/v1": [
    { name: "namespaces", kind: "Namespace", namespaced: false },
    { name: "configmaps", kind: "ConfigMap", namespaced: true },
    { name: "secrets", kind: "Secret", namespaced: true },
    { name: "services", kind: "Service", namespaced: true },
  ],
  "/apis/apps/v1": [{ name: "deployments", kind: "Deployment", namespaced: true }],
  "/apis/autoscaling/v2": [{ name: "horizontalpodautoscalers", kind: "HorizontalPodAutoscaler", namespaced: true }],
  "/apis/networking.k8s.io/v1": [{ name: "networkpolicies", kind: "NetworkPolicy", namespaced: true }],
};

interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  body: unknown;
}

/** A fake API server: secrets it has, how each Deployment's status evolves with each read, and objects it refuses. */
interface FakeApi {
  url: string;
  requests: Recorded[];
  secrets: Map<string, Record<string, string>>;
  /** Status of a Deployment at its nth read (0-based); default: complete at once. */
  deploymentStatus: (name: string, read: number, replicas: number) => Record<string, unknown>;
  /** "Kind/name" → the error answered to its apply. */
  refuse: Map<string, { code: number; message: string }>;
  close(): Promise<void>;
}

async function startFakeApi(): Promise<FakeApi> {
  const applied = new Map<string, Record<string, unknown>>();
  const reads = new Map<string, number>();
  const fake: Omit<FakeApi, "url" | "close"> = {
    requests: [],
    secrets: new Map(),
    deploymentStatus: (_name, _read, replicas) => ({ observedGeneration: 1, replicas, updatedReplicas: replicas, availableReplicas: replicas }),
    refuse: new Map(),
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://x");
      const text = await bodyOf(req);
      const body = text === "" ? undefined : (JSON.parse(text) as unknown);
      fake.requests.push({ method: req.method ?? "", path: url.pathname, query: url.searchParams, contentType: req.headers["content-type"], body });
      const send = (code: number, value: unknown) => {
        res.writeHead(code, { "content-type": "application/json" });
        res.end(JSON.stringify(value));
      };
      const group = RESOURCES[url.pathname];
      if (req.method === "GET" && group !== undefined) {
        return send(200, { kind: "APIResourceList", apiVersion: "v1", groupVersion: url.pathname.replace(/^\/apis?\//, ""), resources: group.map((r) => ({ ...r, singularName: r.kind.toLowerCase(), verbs: ["get", "patch"] })) });
      }
      const secret = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(url.pathname);
      if (req.method === "GET" && secret) {
        const data = fake.secrets.get(`${secret[1]}/${secret[2]}`);
        if (data === undefined) return send(404, { kind: "Status", apiVersion: "v1", status: "Failure", message: `secrets "${secret[2]}" not found`, reason: "NotFound", code: 404 });
        return send(200, { apiVersion: "v1", kind: "Secret", metadata: { name: secret[2], namespace: secret[1] }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])) });
      }
      if (req.method === "PATCH") {
        const o = body as KubernetesObject;
        const refused = fake.refuse.get(`${o.kind}/${o.metadata.name}`);
        if (refused) return send(refused.code, { kind: "Status", apiVersion: "v1", status: "Failure", message: refused.message, code: refused.code });
        const stored = { ...(body as Record<string, unknown>), metadata: { ...o.metadata, generation: 1 } };
        applied.set(url.pathname, stored);
        return send(200, stored);
      }
      const deployment = /^\/apis\/apps\/v1\/namespaces\/[^/]+\/deployments\/([^/]+)$/.exec(url.pathname);
      if (req.method === "GET" && deployment) {
        const stored = applied.get(url.pathname) as (KubernetesObject & { spec: { replicas?: number } }) | undefined;
        if (stored === undefined) return send(404, { kind: "Status", apiVersion: "v1", message: "not found", code: 404 });
        const n = reads.get(url.pathname) ?? 0;
        reads.set(url.pathname, n + 1);
        const replicas = stored.spec.replicas ?? 1;
        return send(200, { ...stored, spec: { ...stored.spec, replicas }, status: fake.deploymentStatus(deployment[1] as string, n, replicas) });
      }
      send(404, { kind: "Status", apiVersion: "v1", message: `no route for ${req.method} ${url.pathname}`, code: 404 });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  // The same object the handler reads, so tests can change its behavior after start.
  return Object.assign(fake, { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
}

async function bodyOf(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function kubeConfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // The client refuses plain http unless TLS checks are off; the fake server speaks http on loopback.
    clusters: [{ name: "fake", server, skipTLSVerify: true }],
    users: [{ name: "tester", token: "test-token" }],
    contexts: [{ name: "fake", cluster: "fake", user: "tester", namespace: "default" }],
    currentContext: "fake",
  });
  return kc;
}

const MANIFEST = `
version: 1
project: demo
services:
  web: { owner: t, path: w, start: run, replicas: 2, readiness: /ready, calls: [api], secrets: [SESSION_KEY] }
  api: { owner: t, path: a, start: run, autoscale: { min: 1, max: 3, target: { cpu: 60 } } }
`;

function renderDemo() {
  const { manifest, text } = parseManifest(MANIFEST, "keelson.yaml", { checkPaths: false });
  return renderKubernetes(manifest, { manifestText: text, images: (s) => `demo/${s}:1`, controlPlane: { image: "keelson:1" }, releases: { web: "r-1", api: "r-2" } }).objects;
}

describe("applyKubernetes against a recording fake API server", () => {
  let api: FakeApi;
  beforeEach(async () => {
    api = await startFakeApi();
    api.secrets.set("demo/keelson-store", { url: "postgres://keelson@db/keelson" });
    api.secrets.set("demo/keelson-master-key", { key: "k" });
    api.secrets.set("demo/web-secrets", { SESSION_KEY: "s" });
  });
  afterEach(async () => {
    await api.close();
  });

  it("applies every object in order with server-side apply, field manager keelson and force", async () => {
    const objects = renderDemo();
    const progress: KubernetesApplyProgress[] = [];
    const result = await applyKubernetes(objects, { kubeConfig: kubeConfigFor(api.url), pollIntervalMs: 5, onProgress: (p) => progress.push(p) });
    const patches = api.requests.filter((r) => r.method === "PATCH");
    expect(patches.map((p) => (p.body as KubernetesObject).metadata.name)).toEqual(objects.map((o) => o.metadata.name));
    for (const p of patches) {
      expect(p.contentType).toBe("application/apply-patch+yaml");
      expect(p.query.get("fieldManager")).toBe("keelson");
      expect(p.query.get("force")).toBe("true");
      expect(p.query.get("dryRun")).toBeNull();
    }
    // The client sends each object whole: no field dropped by its typed serializer.
    expect(patches.map((p) => p.body)).toEqual(JSON.parse(JSON.stringify(objects)));
    expect(patches[0]?.path).toBe("/api/v1/namespaces/demo");
    expect(patches.map((p) => p.path)).toContain("/apis/apps/v1/namespaces/demo/deployments/web-r-1");
    expect(patches.map((p) => p.path)).toContain("/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers/api-r-2");
    expect(result.applied).toHaveLength(objects.length);
    expect(result.rollouts.map((r) => [r.object, r.status.state])).toEqual(objects.filter((o) => o.kind === "Deployment").map((o) => [`Deployment demo/${o.metadata.name}`, "complete"]));
    expect(progress.filter((p) => p.type === "applied")).toHaveLength(objects.length);
  });

  it("reports rollout progress as the Deployment's status changes, once per change", async () => {
    api.deploymentStatus = (name, read, replicas) =>
      name !== "web-r-1" || read >= 3
        ? { observedGeneration: 1, replicas, updatedReplicas: replicas, availableReplicas: replicas }
        : read === 0
          ? { observedGeneration: 0 }
          : { observedGeneration: 1, replicas, updatedReplicas: replicas, availableReplicas: 1 };
    const messages: string[] = [];
    await applyKubernetes(renderDemo(), {
      kubeConfig: kubeConfigFor(api.url),
      pollIntervalMs: 5,
      onProgress: (p) => {
        if (p.type === "rollout" && p.object === "Deployment demo/web-r-1") messages.push(p.status.message);
      },
    });
    expect(messages).toEqual([
      'waiting for deployment "web-r-1" spec update to be observed',
      'waiting for deployment "web-r-1" rollout to finish: 1 of 2 updated replicas are available',
      'deployment "web-r-1" successfully rolled out',
    ]);
  });

  it("refuses an invalid object before sending any request, naming the object and field", async () => {
    const objects = renderDemo();
    const bad = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "web-r-1") as KubernetesObject & { spec: { replicas: unknown } };
    bad.spec.replicas = "two";
    await expect(applyKubernetes(objects, { kubeConfig: kubeConfigFor(api.url) })).rejects.toThrow(/Deployment demo\/web-r-1: spec\.replicas: must be integer, got "two"/);
    expect(api.requests).toEqual([]);
  });

  // Regression: the client's typed serializer reads `_from`, so plain `from` was silently dropped
  // and every NetworkPolicy rule admitted all pods.
  it("sends NetworkPolicy rules' from selectors, which the client's models call _from", async () => {
    await applyKubernetes(renderDemo(), { kubeConfig: kubeConfigFor(api.url), pollIntervalMs: 5 });
    const policy = api.requests.find((r) => r.method === "PATCH" && r.path === "/apis/networking.k8s.io/v1/namespaces/demo/networkpolicies/web")?.body as { spec: { ingress: Array<{ from?: unknown }> } };
    expect(policy.spec.ingress[0]?.from).toEqual([{ podSelector: { matchLabels: { "app.kubernetes.io/name": "keelson-gateway", "app.kubernetes.io/part-of": "demo" } } }]);
  });

  it("refuses a field the client cannot send, naming it, before any request", async () => {
    const objects = renderDemo();
    const d = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "web-r-1") as KubernetesObject & { spec: { template: { spec: { containers: Array<Record<string, unknown>> } } } };
    // The OpenAPI models do not reject unknown fields; the client would drop this one on the way.
    (d.spec.template.spec.containers[0] as Record<string, unknown>).sidecarMode = "on";
    await expect(applyKubernetes(objects, { kubeConfig: kubeConfigFor(api.url) })).rejects.toThrow("Deployment demo/web-r-1: spec.template.spec.containers[0].sidecarMode: the Kubernetes client (@kubernetes/client-node) cannot send this field; nothing was applied");
    expect(api.requests).toEqual([]);
  });

  it("refuses to apply anything when a Secret the pods read is missing, and says how to create it", async () => {
    api.secrets.delete("demo/web-secrets");
    const err = await applyKubernetes(renderDemo(), { kubeConfig: kubeConfigFor(api.url) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_NOT_FOUND");
    expect((err as KeelsonError).message).toContain("Secret demo/web-secrets does not exist (read by Deployment demo/web-r-1); create it: kubectl -n demo create secret generic web-secrets --from-literal=SESSION_KEY=...");
    expect(api.requests.filter((r) => r.method === "PATCH")).toEqual([]);
  });

  it("names a key missing from an existing Secret", async () => {
    api.secrets.set("demo/keelson-store", { other: "x" });
    await expect(applyKubernetes(renderDemo(), { kubeConfig: kubeConfigFor(api.url) })).rejects.toThrow(/Secret demo\/keelson-store has no key url \(read by Deployment demo\/keelson-controlplane\)/);
  });

  it("names the object the API server refused and quotes its reason", async () => {
    api.refuse.set("Deployment/web-r-1", { code: 422, message: 'Deployment.apps "web-r-1" is invalid: spec.template.spec.containers[0].image: Required value' });
    const err = (await applyKubernetes(renderDemo(), { kubeConfig: kubeConfigFor(api.url) }).catch((e: unknown) => e)) as KeelsonError;
    expect(err.code).toBe("KEELSON_ERR_RUNTIME");
    expect(err.message).toMatch(/^the Kubernetes API refused Deployment demo\/web-r-1: Deployment\.apps "web-r-1" is invalid: spec\.template\.spec\.containers\[0\]\.image: Required value \(HTTP 422\) \(\d+ objects before it were applied\)$/);
  });

  it("fails the apply when a rollout exceeds its progress deadline", async () => {
    api.deploymentStatus = (name, _read, replicas) =>
      name === "api-r-2"
        ? { observedGeneration: 1, replicas, updatedReplicas: 0, conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded", message: "timed out" }] }
        : { observedGeneration: 1, replicas, updatedReplicas: replicas, availableReplicas: replicas };
    const err = (await applyKubernetes(renderDemo(), { kubeConfig: kubeConfigFor(api.url), pollIntervalMs: 5 }).catch((e: unknown) => e)) as KeelsonError;
    expect(err.code).toBe("KEELSON_ERR_ROLLOUT_FAILED");
    expect(err.message).toBe('Deployment demo/api-r-2: deployment "api-r-2" exceeded its progress deadline: timed out');
  });

  it("gives up after the timeout, naming what each unfinished rollout waits for", async () => {
    api.deploymentStatus = (name, _read, replicas) =>
      name === "web-r-1" ? { observedGeneration: 1, replicas, updatedReplicas: 1 } : { observedGeneration: 1, replicas, updatedReplicas: replicas, availableReplicas: replicas };
    let t = 0;
    const err = (await applyKubernetes(renderDemo(), { kubeConfig: kubeConfigFor(api.url), pollIntervalMs: 1, timeoutMs: 30_000, now: () => (t += 10_000) }).catch((e: unknown) => e)) as KeelsonError;
    expect(err.code).toBe("KEELSON_ERR_ROLLOUT_FAILED");
    expect(err.message).toBe('rollouts did not finish in 30 s:\nDeployment demo/web-r-1: waiting for deployment "web-r-1" rollout to finish: 1 of 2 new replicas have been updated');
  });

  it("with dryRun asks the server to persist nothing and does not wait for rollouts", async () => {
    const result = await applyKubernetes(renderDemo(), { kubeConfig: kubeConfigFor(api.url), dryRun: true });
    const patches = api.requests.filter((r) => r.method === "PATCH");
    expect(patches.length).toBeGreaterThan(0);
    expect(patches.every((p) => p.query.get("dryRun") === "All")).toBe(true);
    expect(api.requests.some((r) => r.method === "GET" && r.path.includes("/deployments/"))).toBe(false);
    expect(result.rollouts).toEqual([]);
  });
});
