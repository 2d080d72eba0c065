// Rendering: the example shop validates against the Kubernetes schema and matches its golden files
// (KEELSON_UPDATE_GOLDEN=1 rewrites them); each manifest feature maps to the objects documented.
import { readdir, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { loadManifest, parseManifest } from "../manifest/index.js";
import { referencedSecrets } from "./apply.js";
import { LABELS, type KubernetesObject } from "./kubernetes-object.js";
import { renderKubernetes, type RenderKubernetesOptions } from "./render.js";
import { GENERATED_HEADER, kubernetesFiles } from "./render-files.js";
import { kubernetesIssues } from "./validate.js";

const SHOP = join(import.meta.dirname, "../../../../examples/shop");
const GOLDEN = join(import.meta.dirname, "__golden__", "shop");

const base: Omit<RenderKubernetesOptions, "manifestText"> = {
  images: (service) => `registry.example.com/shop/${service}:1.0.0`,
  controlPlane: { image: "registry.example.com/keelson:0.1.0" },
};

function render(yaml: string, options: Partial<RenderKubernetesOptions> = {}) {
  const { manifest, text } = parseManifest(yaml, "keelson.yaml", { checkPaths: false });
  return renderKubernetes(manifest, { ...base, manifestText: text, ...options });
}

const find = (objects: KubernetesObject[], kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`no ${kind} ${name} in ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(", ")}`);
  return o as KubernetesObject & { spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
};

const ONE = (service: string) => `
version: 1
project: demo
services:
${service}`;

describe("renderKubernetes on the example shop", () => {
  it("renders objects that all validate against the Kubernetes schema", async () => {
    const loaded = await loadManifest(SHOP);
    const { objects, namespace } = renderKubernetes(loaded.manifest, { ...base, manifestText: loaded.text });
    expect(namespace).toBe("shop");
    expect(kubernetesIssues(objects)).toEqual([]);
    const deployments = objects.filter((o) => o.kind === "Deployment").map((o) => o.metadata.name);
    // Six services, one version each, plus the gateway and the control plane.
    expect(deployments).toHaveLength(8);
    expect(deployments).toContain("keelson-gateway");
    expect(deployments).toContain("keelson-controlplane");
    expect(objects.filter((o) => o.kind === "HorizontalPodAutoscaler").map((o) => o.metadata.labels?.[LABELS.service])).toEqual(["recommendations"]);
    expect(objects.filter((o) => o.kind === "NetworkPolicy")).toHaveLength(8);
    expect(objects[0]?.kind).toBe("Namespace");
  });

  it("matches the golden files exactly", async () => {
    const loaded = await loadManifest(SHOP);
    const files = kubernetesFiles(renderKubernetes(loaded.manifest, { ...base, manifestText: loaded.text }).objects, { source: "examples/shop/keelson.yaml" });
    if (process.env.KEELSON_UPDATE_GOLDEN === "1") {
      await rm(GOLDEN, { recursive: true, force: true });
      await mkdir(GOLDEN, { recursive: true });
      for (const f of files) await writeFile(join(GOLDEN, f.path), f.text);
    }
    expect((await readdir(GOLDEN)).sort()).toEqual(files.map((f) => f.path).sort());
    for (const f of files) expect(f.text, `${f.path} differs from the golden file; KEELSON_UPDATE_GOLDEN=1 rewrites them`).toBe(await readFile(join(GOLDEN, f.path), "utf8"));
    expect(files.at(-1)?.text).toContain("resources:\n  - namespace.yaml\n");
    expect(files.every((f) => f.text.startsWith(GENERATED_HEADER))).toBe(true);
  });

  it("is deterministic: a reordered manifest renders the same objects", () => {
    const a = render(ONE("  b: { owner: t, path: b, start: run, env: { Z: 1, A: 2 } }\n  a: { owner: t, path: a, start: run }"));
    const b = render(ONE("  a: { owner: t, path: a, start: run }\n  b: { owner: t, path: b, start: run, env: { A: 2, Z: 1 } }"));
    // The manifest text differs (the control plane mounts it as written), nothing else.
    const strip = (objects: KubernetesObject[]) => JSON.stringify(objects.filter((o) => o.metadata.name !== "keelson-manifest"));
    expect(strip(a.objects)).toBe(strip(b.objects));
    const config = a.objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("b-")) as unknown as { data: Record<string, string> };
    expect(Object.keys(config.data).slice(0, 2)).toEqual(["A", "KEELSON_DATA_DIR"]);
  });
});

describe("renderKubernetes: what each manifest feature becomes", () => {
  it("labels every service Deployment and its pods with name, part-of, service and release", () => {
    const { objects } = render(ONE("  orders: { owner: t, path: o, start: run, replicas: 3 }"), { releases: { orders: "r-abc123" } });
    const d = find(objects, "Deployment", "orders-r-abc123");
    const labels = { [LABELS.name]: "orders", [LABELS.partOf]: "demo", [LABELS.managedBy]: "keelson", [LABELS.service]: "orders", [LABELS.release]: "r-abc123" };
    expect(d.metadata.labels).toEqual(labels);
    expect(d.spec.template.metadata.labels).toEqual(labels);
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.template.spec.containers[0].image).toBe("registry.example.com/shop/orders:1.0.0");
    expect(d.spec.template.spec.containers[0].env[0]).toEqual({ name: "KEELSON_RELEASE", value: "r-abc123" });
    expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    expect(d.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem).toBe(true);
  });

  it("maps probes, memory, timeouts and the rolling strategy", () => {
    const { objects } = render(
      ONE(`  orders:
    owner: t
    path: o
    start: run
    readiness: { path: /ready, interval: 2s, timeout: 1500ms, failureThreshold: 4 }
    liveness: /healthz
    resources: { memory: 256mb }
    stopTimeout: 20s
    startTimeout: 45s
    deploy: { maxSurge: 50, maxUnavailable: 10, drain: 3s, timeout: 5m }`),
      { releases: { orders: "r-1" } },
    );
    const d = find(objects, "Deployment", "orders-r-1");
    const c = d.spec.template.spec.containers[0];
    expect(c.readinessProbe).toEqual({ httpGet: { path: "/ready", port: "http" }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 4 });
    expect(c.livenessProbe.httpGet.path).toBe("/healthz");
    expect(c.startupProbe).toMatchObject({ httpGet: { path: "/ready" }, periodSeconds: 1, failureThreshold: 45 });
    expect(c.resources).toEqual({ requests: { memory: "256Mi" }, limits: { memory: "256Mi" } });
    expect(c.lifecycle.preStop.sleep.seconds).toBe(3);
    expect(d.spec.template.spec.terminationGracePeriodSeconds).toBe(23);
    expect(d.spec.progressDeadlineSeconds).toBe(300);
    expect(d.spec.strategy.rollingUpdate).toEqual({ maxSurge: "50%", maxUnavailable: "10%" });
  });

  it("renders a Deployment, ConfigMap and headless Service per version, and one Service per service", () => {
    const { objects } = render(ONE("  orders: { owner: t, path: o, start: run, env: { MODE: fast } }"), { releases: { orders: ["r-stable", "r-canary"] } });
    expect(objects.filter((o) => o.kind === "Deployment" && o.metadata.labels?.[LABELS.service] === "orders").map((o) => o.metadata.name)).toEqual(["orders-r-canary", "orders-r-stable"]);
    const headless = find(objects, "Service", "orders-r-canary");
    expect(headless.spec.clusterIP).toBe("None");
    expect(headless.spec.selector[LABELS.release]).toBe("r-canary");
    expect(find(objects, "Service", "orders").spec.selector[LABELS.release]).toBeUndefined();
    expect(find(objects, "ConfigMap", "orders-r-stable").data).toMatchObject({ MODE: "fast", KEELSON_SERVICE: "orders", PORT: "8080", KEELSON_GATEWAY_URL: "http://keelson-gateway.demo.svc:8082" });
  });

  it("gives each service a default release from its spec and image, new when either changes", () => {
    const yaml = ONE("  orders: { owner: t, path: o, start: run }");
    const name = (objects: KubernetesObject[]) => objects.find((o) => o.kind === "Deployment" && o.metadata.name.startsWith("orders-"))?.metadata.name;
    const first = name(render(yaml).objects);
    expect(first).toMatch(/^orders-r-[0-9a-f]{12}$/);
    expect(name(render(yaml).objects)).toBe(first);
    expect(name(render(yaml, { images: () => "registry.example.com/shop/orders:1.0.1" }).objects)).not.toBe(first);
    expect(name(render(ONE("  orders: { owner: t, path: o, start: run, env: { X: 1 } }")).objects)).not.toBe(first);
  });

  it("refuses a release id that cannot name Kubernetes objects, naming the service", () => {
    expect(() => render(ONE("  orders: { owner: t, path: o, start: run }"), { releases: { orders: "R_1" } })).toThrow(/services\.orders: release "R_1" cannot name Kubernetes objects/);
    expect(() => render(ONE("  keelson-gateway: { owner: t, path: o, start: run }"))).toThrow(KeelsonError);
  });

  it("references secrets by name and never renders their values", () => {
    const { objects } = render(ONE("  orders: { owner: t, path: o, start: run, secrets: [STRIPE_KEY, DB_PASSWORD] }"), { releases: { orders: "r-1" } });
    expect(objects.some((o) => o.kind === "Secret")).toBe(false);
    const env = find(objects, "Deployment", "orders-r-1").spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: "STRIPE_KEY", valueFrom: { secretKeyRef: { name: "orders-secrets", key: "STRIPE_KEY" } } });
    expect(referencedSecrets(objects).map((s) => [s.name, s.keys])).toEqual([
      ["keelson-master-key", ["key"]],
      ["keelson-store", ["url"]],
      ["orders-secrets", ["DB_PASSWORD", "STRIPE_KEY"]],
    ]);
  });

  it("maps autoscale to a HorizontalPodAutoscaler and leaves the replica count to it", () => {
    const { objects, warnings } = render(
      ONE(`  api:
    owner: t
    path: a
    start: run
    replicas: 2
    autoscale:
      min: 0
      max: 8
      target: { cpu: 50, rps: 100, inflight: 2.5, p95: 200ms }
      scaleUp: { policies: [{ type: pods, value: 4, period: 15s }], select: max }
      scaleDown: { stabilization: 5m, policies: [{ type: percent, value: 50, period: 1m }] }`),
      { releases: { api: "r-1" } },
    );
    const hpa = find(objects, "HorizontalPodAutoscaler", "api-r-1");
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "api-r-1" });
    expect(hpa.spec.minReplicas).toBe(1);
    expect(hpa.spec.maxReplicas).toBe(8);
    expect(hpa.spec.metrics).toEqual([
      { type: "Resource", resource: { name: "cpu", target: { type: "AverageValue", averageValue: "500m" } } },
      { type: "External", external: { metric: { name: "keelson_gateway_requests_in_flight", selector: { matchLabels: { service: "api", version: "r-1" } } }, target: { type: "AverageValue", averageValue: "2500m" } } },
      { type: "External", external: { metric: { name: "keelson_gateway_requests_per_second", selector: { matchLabels: { service: "api", version: "r-1" } } }, target: { type: "AverageValue", averageValue: "100" } } },
    ]);
    expect(hpa.spec.behavior).toEqual({
      scaleUp: { selectPolicy: "Max", policies: [{ type: "Pods", value: 4, periodSeconds: 15 }] },
      scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: "Percent", value: 50, periodSeconds: 60 }] },
    });
    expect(find(objects, "Deployment", "api-r-1").spec.replicas).toBeUndefined();
    expect(warnings.join("\n")).toMatch(/services\.api\.autoscale\.target\.p95: not rendered/);
    expect(warnings.join("\n")).toMatch(/services\.api\.autoscale\.min: 0 rendered as minReplicas 1/);
    expect(kubernetesIssues(objects)).toEqual([]);
  });

  it("lets pods take requests only from the gateway, and reach its mesh listener only when they call others", () => {
    const { objects } = render(ONE("  web: { owner: t, path: w, start: run, calls: [api] }\n  api: { owner: t, path: a, start: run }"));
    const web = find(objects, "NetworkPolicy", "web");
    const api = find(objects, "NetworkPolicy", "api");
    const gatewayPods = { podSelector: { matchLabels: { [LABELS.name]: "keelson-gateway", [LABELS.partOf]: "demo" } } };
    for (const p of [web, api]) {
      expect(p.spec.policyTypes).toEqual(["Ingress", "Egress"]);
      expect(p.spec.ingress).toEqual([{ from: [gatewayPods], ports: [{ port: 8080, protocol: "TCP" }] }]);
    }
    expect(web.spec.egress).toContainEqual({ to: [gatewayPods], ports: [{ port: 8082, protocol: "TCP" }] });
    expect(web.metadata.annotations).toEqual({ "keelson.dev/calls": "api" });
    expect(JSON.stringify(api.spec.egress)).not.toContain("keelson-gateway");
    expect(JSON.stringify(api.spec.egress)).toContain("kube-dns");
  });

  it("runs the gateway and control plane from the keelson image, the control plane with the store URL from a Secret", () => {
    const { objects } = render(ONE("  api: { owner: t, path: a, start: run }"), {
      namespace: "prod",
      controlPlane: { image: "keelson:1", storeSecret: "pg-url" },
      gateway: { serviceType: "LoadBalancer" },
    });
    const cp = find(objects, "Deployment", "keelson-controlplane");
    expect(cp.metadata.namespace).toBe("prod");
    expect(cp.spec.replicas).toBe(2);
    const c = cp.spec.template.spec.containers[0];
    expect(c.args.slice(0, 2)).toEqual(["serve", "/keelson"]);
    expect(c.env).toContainEqual({ name: "KEELSON_STORE_URL", valueFrom: { secretKeyRef: { name: "pg-url", key: "url" } } });
    const gw = find(objects, "Deployment", "keelson-gateway").spec.template.spec.containers[0];
    expect(gw.args).toContain("http://keelson-controlplane.prod.svc:7070");
    expect(find(objects, "Service", "keelson-gateway-public").spec).toMatchObject({ type: "LoadBalancer", ports: [{ port: 8080 }] });
    expect(find(objects, "Service", "keelson-gateway").spec.type).toBe("ClusterIP");
    expect((find(objects, "ConfigMap", "keelson-manifest").data as Record<string, string>)["keelson.yaml"]).toContain("project: demo");
  });
});
