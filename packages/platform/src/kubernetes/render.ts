// Renders a project as standard Kubernetes objects: per service version a Deployment, ConfigMap,
// headless Service and HorizontalPodAutoscaler; per service a Service and a NetworkPolicy; and the
// Keelson gateway and control plane. Pure and deterministic, so rendered files diff cleanly.
import { createHash } from "node:crypto";
import { KeelsonError, REPLICA_ENV } from "@keelson/protocol";
import { meshPortOf, mtlsEnabled, type AutoscaleSpecOut, type Manifest, type ProbeSpec, type ScalingRulesSpecOut, type ServiceSpec } from "../manifest/index.js";
import { canonicalJson } from "../store/index.js";
import { LABELS, type KubernetesObject } from "./kubernetes-object.js";

/** Name of the gateway's Deployment, Service and NetworkPolicy. */
export const GATEWAY_NAME = "keelson-gateway";
/** Name of the control plane's Deployment, Service and NetworkPolicy. */
export const CONTROL_PLANE_NAME = "keelson-controlplane";
/** ConfigMap holding keelson.yaml for the control plane and the gateway. */
export const MANIFEST_CONFIG_MAP = "keelson-manifest";
/** Secret with the vault's master key (key `key`), shared by every control-plane replica. */
export const MASTER_KEY_SECRET = "keelson-master-key";
/** Key of the store Secret holding the PostgreSQL URL. */
export const STORE_SECRET_KEY = "url";
/** Port every service container listens on: each pod has its own IP, so one port serves all. */
export const SERVICE_PORT = 8080;
/** Metric names the HorizontalPodAutoscalers ask the external metrics API for (see docs/kubernetes.md). */
export const EXTERNAL_METRICS = { inflight: "keelson_gateway_requests_in_flight", rps: "keelson_gateway_requests_per_second" } as const;

const RESERVED = new Set([GATEWAY_NAME, CONTROL_PLANE_NAME, MANIFEST_CONFIG_MAP]);
// A DNS label: what Deployment, Service and label values built from a release id must be.
const RELEASE_ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// The uid of the `node` user in the official Node.js images; any non-root uid works.
const RUN_AS = 1000;
const DATA_DIR = "/var/lib/keelson/data";
const IDENTITY_DIR = "/var/run/keelson/identity";
const PROJECT_DIR = "/keelson";

export interface RenderKubernetesOptions {
  /** keelson.yaml as written: mounted into the control plane and gateway, which read it at start. */
  manifestText: string;
  /** Namespace of every object (default: the project name). */
  namespace?: string;
  /** Image of a service's release; its entrypoint starts the service and listens on $PORT. */
  images: (service: string, release: string) => string;
  /**
   * Release ids to run per service, oldest first (e.g. stable then canary: the gateway splits
   * traffic between them). Default: one release per service, `r-` and 12 hex digits of a hash of
   * its spec and image, so a change to either renders a new version.
   */
  releases?: Readonly<Record<string, string | readonly string[]>>;
  controlPlane: {
    /** The keelson image (its entrypoint is the `keelson` binary); the gateway runs it too. */
    image: string;
    /** Secret holding the PostgreSQL store's URL under key `url`, created outside Keelson (default keelson-store). */
    storeSecret?: string;
    /** Control-plane replicas (default 2: one leads, one stands by). */
    replicas?: number;
  };
  gateway?: {
    /** Gateway replicas (default 2). */
    replicas?: number;
    /** Type of the gateway's Service (default ClusterIP: put an Ingress or a load balancer in front). */
    serviceType?: "ClusterIP" | "NodePort" | "LoadBalancer";
  };
}

/** The rendered objects, in apply order, and what of the manifest could not be carried over. */
export interface KubernetesRender {
  namespace: string;
  objects: KubernetesObject[];
  warnings: string[];
}

/**
 * Renders the project as Kubernetes objects. No secret value is rendered: Deployments reference
 * Secrets that are created outside Keelson (see `referencedSecrets`). Throws
 * KEELSON_ERR_INVALID_INPUT for a release id or service name Kubernetes cannot take.
 *
 * @example
 * const { objects } = renderKubernetes(loaded.manifest, {
 *   manifestText: loaded.text,
 *   images: (service) => `registry.example.com/shop/${service}:1.4.2`,
 *   controlPlane: { image: "registry.example.com/keelson:0.1.0" },
 * });
 */
export function renderKubernetes(manifest: Manifest, options: RenderKubernetesOptions): KubernetesRender {
  const ns = options.namespace ?? manifest.project;
  const project = manifest.project;
  const warnings: string[] = [];
  const objects: KubernetesObject[] = [];
  const meshPort = meshPortOf(manifest.gateway);
  const svcHost = (name: string) => `${name}.${ns}.svc`;
  const controlPlaneUrl = `http://${svcHost(CONTROL_PLANE_NAME)}:${manifest.controlPlane.port}`;
  const meta = (name: string, labels: Record<string, string>, annotations?: Record<string, string>) => ({
    name,
    namespace: ns,
    labels,
    ...(annotations === undefined ? {} : { annotations }),
  });

  objects.push({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: ns, labels: { [LABELS.partOf]: project, [LABELS.managedBy]: "keelson" } },
  });

  // --- the control plane and the gateway: the keelson image with the manifest mounted ---
  const cpLabels = componentLabels(CONTROL_PLANE_NAME, "control-plane", project);
  const gwLabels = componentLabels(GATEWAY_NAME, "gateway", project);
  objects.push({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: meta(MANIFEST_CONFIG_MAP, cpLabels),
    data: { "keelson.yaml": options.manifestText },
  });
  const storeSecret = options.controlPlane.storeSecret ?? "keelson-store";
  objects.push(
    keelsonDeployment({
      meta: meta(CONTROL_PLANE_NAME, cpLabels),
      labels: cpLabels,
      image: options.controlPlane.image,
      replicas: options.controlPlane.replicas ?? 2,
      args: ["serve", PROJECT_DIR, "--host", "0.0.0.0", "--port", String(manifest.controlPlane.port), "--gateway-url", `http://${svcHost(GATEWAY_NAME)}:${manifest.gateway.port}`],
      ports: [{ name: "api", containerPort: manifest.controlPlane.port, protocol: "TCP" }],
      probePort: "api",
      env: [
        { name: "KEELSON_MASTER_KEY", valueFrom: { secretKeyRef: { name: MASTER_KEY_SECRET, key: "key" } } },
        { name: "KEELSON_STORE_URL", valueFrom: { secretKeyRef: { name: storeSecret, key: STORE_SECRET_KEY } } },
      ],
    }),
  );
  objects.push(
    keelsonDeployment({
      meta: meta(GATEWAY_NAME, gwLabels),
      labels: gwLabels,
      image: options.controlPlane.image,
      replicas: options.gateway?.replicas ?? 2,
      args: [
        "gateway",
        PROJECT_DIR,
        "--host",
        "0.0.0.0",
        "--port",
        String(manifest.gateway.port),
        "--admin-port",
        String(manifest.gateway.adminPort),
        "--mesh-port",
        String(meshPort),
        "--control-plane",
        controlPlaneUrl,
      ],
      ports: [
        { name: "http", containerPort: manifest.gateway.port, protocol: "TCP" },
        { name: "admin", containerPort: manifest.gateway.adminPort, protocol: "TCP" },
        { name: "mesh", containerPort: meshPort, protocol: "TCP" },
      ],
      probePort: "admin",
      readinessPath: "/readyz",
      env: [],
    }),
  );
  objects.push(
    service(meta(CONTROL_PLANE_NAME, cpLabels), selectorOf(cpLabels), [{ name: "api", port: manifest.controlPlane.port, targetPort: "api", protocol: "TCP" }]),
    service(meta(GATEWAY_NAME, gwLabels), selectorOf(gwLabels), [
      { name: "http", port: manifest.gateway.port, targetPort: "http", protocol: "TCP" },
      { name: "admin", port: manifest.gateway.adminPort, targetPort: "admin", protocol: "TCP" },
      { name: "mesh", port: meshPort, targetPort: "mesh", protocol: "TCP" },
    ]),
  );
  const publicType = options.gateway?.serviceType ?? "ClusterIP";
  if (publicType !== "ClusterIP") {
    // Only the public port goes outside the cluster; admin and mesh stay on the ClusterIP Service.
    objects.push(service(meta(`${GATEWAY_NAME}-public`, gwLabels), selectorOf(gwLabels), [{ name: "http", port: manifest.gateway.port, targetPort: "http", protocol: "TCP" }], { type: publicType }));
  }

  const projectPods = { podSelector: { matchLabels: { [LABELS.partOf]: project } } };
  // The control plane is reached by the gateway (routing, metrics) and by services' SDKs (flags, traces).
  objects.push(
    networkPolicy(meta(CONTROL_PLANE_NAME, cpLabels), selectorOf(cpLabels), {
      ingress: [{ from: [projectPods], ports: [{ port: manifest.controlPlane.port, protocol: "TCP" }] }],
    }),
    // Clients reach the public port from anywhere; only the project's pods reach the admin and mesh ports.
    networkPolicy(meta(GATEWAY_NAME, gwLabels), selectorOf(gwLabels), {
      ingress: [
        { ports: [{ port: manifest.gateway.port, protocol: "TCP" }] },
        { from: [projectPods], ports: [{ port: manifest.gateway.adminPort, protocol: "TCP" }, { port: meshPort, protocol: "TCP" }] },
      ],
    }),
  );

  if (mtlsEnabled(manifest)) {
    warnings.push(
      `security.mtls: in Kubernetes the mesh listener runs without TLS; NetworkPolicies limit who reaches it, and services prove who they are with the identity token the control plane writes into the Secret <service>-identity (see docs/kubernetes.md)`,
    );
  }

  // --- the services ---
  const gatewayPods = { podSelector: { matchLabels: selectorOf(gwLabels) } };
  const controlPlanePods = { podSelector: { matchLabels: selectorOf(cpLabels) } };
  for (const name of Object.keys(manifest.services).sort()) {
    const spec = manifest.services[name] as ServiceSpec;
    if (RESERVED.has(name)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `services.${name}: the name is taken by Keelson's own objects in Kubernetes; rename the service`);
    const base = serviceLabels(name, project);
    for (const release of releasesOf(name, spec, options)) {
      const versionName = `${name}-${release}`;
      if (!RELEASE_ID.test(release) || versionName.length > 63) {
        throw new KeelsonError(
          "KEELSON_ERR_INVALID_INPUT",
          `services.${name}: release "${release}" cannot name Kubernetes objects: "${versionName}" must be lowercase letters, digits and "-", at most 63 characters`,
        );
      }
      const labels = { ...base, [LABELS.release]: release };
      objects.push({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: meta(versionName, labels),
        data: sortedRecord({
          ...spec.env,
          [REPLICA_ENV.SERVICE]: name,
          [REPLICA_ENV.PROJECT]: project,
          [REPLICA_ENV.PORT]: String(SERVICE_PORT),
          [REPLICA_ENV.GATEWAY_URL]: `http://${svcHost(GATEWAY_NAME)}:${meshPort}`,
          [REPLICA_ENV.FLAGS_URL]: controlPlaneUrl,
          [REPLICA_ENV.OTLP_ENDPOINT]: `${controlPlaneUrl}/v1/traces`,
          [REPLICA_ENV.DATA_DIR]: DATA_DIR,
          [REPLICA_ENV.IDENTITY_FILE]: `${IDENTITY_DIR}/token.jwt`,
        }),
      });
      objects.push(serviceDeployment({ name, versionName, release, spec, labels, image: options.images(name, release), meta: meta(versionName, labels) }));
      // Headless: the gateway balances and splits across the version's pods itself, so it needs
      // their addresses, not one virtual IP.
      objects.push(service(meta(versionName, labels), selectorOf(labels), [{ name: "http", port: SERVICE_PORT, targetPort: "http", protocol: "TCP" }], { clusterIP: "None" }));
      if (spec.autoscale !== undefined) objects.push(autoscaler({ meta: meta(versionName, labels), name, release, target: versionName, autoscale: spec.autoscale, warn: (w) => warnings.push(`services.${name}.autoscale.${w}`) }));
    }
    // One Service over every version, for port-forwarding and tools; traffic goes through the gateway.
    objects.push(service(meta(name, base), selectorOf(base), [{ name: "http", port: SERVICE_PORT, targetPort: "http", protocol: "TCP" }]));
    const calls = spec.calls.map((c) => c.service);
    // Pods take requests only from the gateway; they reach the gateway's mesh listener only when
    // they call other services (`calls`, enforced per call by the gateway), the control plane for
    // flags and traces, and DNS. NetworkPolicies add up: more egress is another policy.
    objects.push(
      networkPolicy(
        meta(name, base, calls.length > 0 ? { "keelson.dev/calls": calls.join(",") } : undefined),
        selectorOf(base),
        {
          ingress: [{ from: [gatewayPods], ports: [{ port: SERVICE_PORT, protocol: "TCP" }] }],
          egress: [
            ...(calls.length > 0 ? [{ to: [gatewayPods], ports: [{ port: meshPort, protocol: "TCP" }] }] : []),
            { to: [controlPlanePods], ports: [{ port: manifest.controlPlane.port, protocol: "TCP" }] },
            DNS_EGRESS,
          ],
        },
      ),
    );
  }

  return { namespace: ns, objects: sortForApply(objects), warnings };
}

const DNS_EGRESS = {
  to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
  ports: [
    { port: 53, protocol: "UDP" },
    { port: 53, protocol: "TCP" },
  ],
};

function componentLabels(name: string, component: string, project: string): Record<string, string> {
  return { [LABELS.name]: name, [LABELS.component]: component, [LABELS.partOf]: project, [LABELS.managedBy]: "keelson" };
}

function serviceLabels(service: string, project: string): Record<string, string> {
  return { [LABELS.name]: service, [LABELS.partOf]: project, [LABELS.managedBy]: "keelson", [LABELS.service]: service };
}

/** The labels that select pods: immutable in a Deployment, so only identity, never descriptive ones. */
function selectorOf(labels: Record<string, string>): Record<string, string> {
  const keep = [LABELS.partOf, LABELS.name, LABELS.service, LABELS.release] as string[];
  return Object.fromEntries(Object.entries(labels).filter(([k]) => keep.includes(k)));
}

function releasesOf(name: string, spec: ServiceSpec, options: RenderKubernetesOptions): string[] {
  const given = options.releases?.[name];
  if (given !== undefined) {
    const list = typeof given === "string" ? [given] : [...given];
    if (list.length === 0) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `services.${name}: the list of releases to render is empty`);
    return list;
  }
  const hash = createHash("sha256")
    .update(canonicalJson({ spec, image: options.images(name, "") }))
    .digest("hex");
  return [`r-${hash.slice(0, 12)}`];
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

function httpProbe(probe: ProbeSpec, port: string) {
  return { httpGet: { path: probe.path, port }, periodSeconds: seconds(probe.interval), timeoutSeconds: seconds(probe.timeout), failureThreshold: probe.failureThreshold };
}

/** Memory as Kubernetes writes it: Mi when whole, else bytes. */
function memoryQuantity(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)}Mi` : String(bytes);
}

/** A non-negative number as a Kubernetes quantity ("3", "2500m"). */
function quantity(n: number): string {
  return Number.isInteger(n) ? String(n) : `${Math.round(n * 1000)}m`;
}

const CONTAINER_SECURITY = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } };
const POD_SECURITY = { runAsNonRoot: true, runAsUser: RUN_AS, runAsGroup: RUN_AS, fsGroup: RUN_AS, seccompProfile: { type: "RuntimeDefault" } };

function serviceDeployment(input: { name: string; versionName: string; release: string; spec: ServiceSpec; labels: Record<string, string>; image: string; meta: KubernetesObject["metadata"] }) {
  const { name, versionName, release, spec, labels } = input;
  const memory = spec.resources?.memory;
  const probe = spec.readiness ?? spec.liveness;
  const env = [
    { name: REPLICA_ENV.RELEASE, value: release },
    { name: REPLICA_ENV.REPLICA, valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    ...[...(spec.secrets ?? [])].sort().map((key) => ({ name: key, valueFrom: { secretKeyRef: { name: `${name}-secrets`, key } } })),
  ];
  const container = {
    name,
    image: input.image,
    imagePullPolicy: "IfNotPresent",
    ports: [{ name: "http", containerPort: SERVICE_PORT, protocol: "TCP" }],
    envFrom: [{ configMapRef: { name: versionName } }],
    env,
    ...(memory === undefined ? {} : { resources: { requests: { memory: memoryQuantity(memory) }, limits: { memory: memoryQuantity(memory) } } }),
    ...(spec.readiness === undefined ? {} : { readinessProbe: httpProbe(spec.readiness, "http") }),
    ...(spec.liveness === undefined ? {} : { livenessProbe: httpProbe(spec.liveness, "http") }),
    // startTimeout: liveness and readiness wait until the first check passes within it.
    ...(probe === undefined
      ? {}
      : { startupProbe: { httpGet: { path: probe.path, port: "http" }, periodSeconds: 1, timeoutSeconds: seconds(probe.timeout), failureThreshold: seconds(spec.startTimeout) } }),
    // The drain time: endpoints are removed while the pod still serves what is in flight.
    lifecycle: { preStop: { sleep: { seconds: seconds(spec.deploy?.drain ?? 1000) } } },
    securityContext: CONTAINER_SECURITY,
    volumeMounts: [
      { name: "tmp", mountPath: "/tmp" },
      { name: "data", mountPath: DATA_DIR },
      { name: "identity", mountPath: IDENTITY_DIR, readOnly: true },
    ],
  };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: input.meta,
    spec: {
      // With an autoscaler the HorizontalPodAutoscaler owns the count; applying one would fight it.
      ...(spec.autoscale === undefined ? { replicas: spec.replicas } : {}),
      revisionHistoryLimit: 3,
      progressDeadlineSeconds: seconds(spec.deploy?.timeout ?? 600_000),
      selector: { matchLabels: selectorOf(labels) },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: `${spec.deploy?.maxSurge ?? 25}%`, maxUnavailable: `${spec.deploy?.maxUnavailable ?? 0}%` } },
      template: {
        metadata: { labels },
        spec: {
          automountServiceAccountToken: false,
          // Docker-link variables for every Service in the namespace would leak into the env.
          enableServiceLinks: false,
          terminationGracePeriodSeconds: seconds(spec.stopTimeout) + seconds(spec.deploy?.drain ?? 1000),
          securityContext: POD_SECURITY,
          containers: [container],
          volumes: [
            { name: "tmp", emptyDir: {} },
            { name: "data", emptyDir: {} },
            // Optional: the pod starts before the control plane has issued the service's identity.
            { name: "identity", secret: { secretName: `${name}-identity`, optional: true } },
          ],
        },
      },
    },
  } satisfies KubernetesObject;
}

function keelsonDeployment(input: {
  meta: KubernetesObject["metadata"];
  labels: Record<string, string>;
  image: string;
  replicas: number;
  args: string[];
  ports: Array<{ name: string; containerPort: number; protocol: string }>;
  probePort: string;
  readinessPath?: string;
  env: unknown[];
}) {
  const name = input.meta.name;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: input.meta,
    spec: {
      replicas: input.replicas,
      revisionHistoryLimit: 3,
      selector: { matchLabels: selectorOf(input.labels) },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: input.labels },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: POD_SECURITY,
          containers: [
            {
              name,
              image: input.image,
              imagePullPolicy: "IfNotPresent",
              command: ["keelson"],
              args: input.args,
              ports: input.ports,
              env: input.env,
              readinessProbe: { httpGet: { path: input.readinessPath ?? "/healthz", port: input.probePort }, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 3 },
              livenessProbe: { httpGet: { path: "/healthz", port: input.probePort }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
              securityContext: CONTAINER_SECURITY,
              volumeMounts: [
                // The project folder must be writable: state lives in its .keelson/ folder.
                { name: "project", mountPath: PROJECT_DIR },
                { name: "manifest", mountPath: `${PROJECT_DIR}/keelson.yaml`, subPath: "keelson.yaml", readOnly: true },
                { name: "tmp", mountPath: "/tmp" },
              ],
            },
          ],
          volumes: [
            { name: "project", emptyDir: {} },
            { name: "manifest", configMap: { name: MANIFEST_CONFIG_MAP } },
            { name: "tmp", emptyDir: {} },
          ],
        },
      },
    },
  } satisfies KubernetesObject;
}

function service(
  meta: KubernetesObject["metadata"],
  selector: Record<string, string>,
  ports: Array<{ name: string; port: number; targetPort: string; protocol: string }>,
  kind: { type: "NodePort" | "LoadBalancer" } | { clusterIP: "None" } | Record<string, never> = {},
) {
  return { apiVersion: "v1", kind: "Service", metadata: meta, spec: { type: "type" in kind ? kind.type : "ClusterIP", ...("clusterIP" in kind ? kind : {}), selector, ports } } satisfies KubernetesObject;
}

function networkPolicy(meta: KubernetesObject["metadata"], podLabels: Record<string, string>, rules: { ingress: unknown[]; egress?: unknown[] }) {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: meta,
    spec: {
      podSelector: { matchLabels: podLabels },
      policyTypes: rules.egress === undefined ? ["Ingress"] : ["Ingress", "Egress"],
      ingress: rules.ingress,
      ...(rules.egress === undefined ? {} : { egress: rules.egress }),
    },
  } satisfies KubernetesObject;
}

/**
 * autoscale → HorizontalPodAutoscaler. cpu (percent of one core) is exactly an average CPU value
 * in millicores; in-flight requests and requests per second come from the gateway through the
 * external metrics API, averaged over the version's pods; p95 latency has no HPA form (it does not
 * fall in proportion to replicas, which HPA's algorithm assumes) and is left out with a warning.
 */
function autoscaler(input: { meta: KubernetesObject["metadata"]; name: string; release: string; target: string; autoscale: AutoscaleSpecOut; warn: (w: string) => void }) {
  const { autoscale: a, warn } = input;
  const target = a.target ?? { inflight: 10 };
  const selector = { matchLabels: { service: input.name, version: input.release } };
  const external = (metric: string, value: number) => ({
    type: "External",
    external: { metric: { name: metric, selector }, target: { type: "AverageValue", averageValue: quantity(value) } },
  });
  const metrics = [
    ...(target.cpu === undefined ? [] : [{ type: "Resource", resource: { name: "cpu", target: { type: "AverageValue", averageValue: `${Math.round(target.cpu * 10)}m` } } }]),
    ...(target.inflight === undefined ? [] : [external(EXTERNAL_METRICS.inflight, target.inflight)]),
    ...(target.rps === undefined ? [] : [external(EXTERNAL_METRICS.rps, target.rps)]),
  ];
  if (target.p95 !== undefined) warn("target.p95: not rendered; a HorizontalPodAutoscaler cannot scale on latency (Keelson's own autoscaler can)");
  if (metrics.length === 0) warn("target: only p95 given; the HorizontalPodAutoscaler falls back to 10 in-flight requests per replica");
  if (a.min === 0) warn("min: 0 rendered as minReplicas 1; scaling to zero needs the HPAScaleToZero feature gate and is not done in Kubernetes");
  if (a.tolerance !== undefined) warn("tolerance: not rendered; HPA's tolerance is a cluster-wide setting of the controller manager");
  if (a.window !== undefined || a.interval !== undefined) warn("window/interval: not rendered; HPA's sync period is cluster-wide");
  if (a.scaleToZero !== undefined) warn("scaleToZero: not rendered (see min)");
  const behavior = {
    ...(a.scaleUp === undefined ? {} : { scaleUp: scalingRules(a.scaleUp) }),
    ...(a.scaleDown === undefined ? {} : { scaleDown: scalingRules(a.scaleDown) }),
  };
  return {
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: input.meta,
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: input.target },
      minReplicas: Math.max(1, a.min),
      maxReplicas: a.max,
      metrics: metrics.length > 0 ? metrics : [external(EXTERNAL_METRICS.inflight, 10)],
      ...(Object.keys(behavior).length === 0 ? {} : { behavior }),
    },
  } satisfies KubernetesObject;
}

function scalingRules(r: ScalingRulesSpecOut) {
  const select = { max: "Max", min: "Min", disabled: "Disabled" } as const;
  return {
    ...(r.stabilization === undefined ? {} : { stabilizationWindowSeconds: Math.round(r.stabilization / 1000) }),
    ...(r.select === undefined ? {} : { selectPolicy: select[r.select] }),
    ...(r.policies === undefined ? {} : { policies: r.policies.map((p) => ({ type: p.type === "pods" ? "Pods" : "Percent", value: p.value, periodSeconds: seconds(p.period) })) }),
  };
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Apply order: the namespace, then NetworkPolicies (so no pod ever runs unrestricted), config,
 * Services, Deployments, and autoscalers last (their target exists by then). Within a kind, by name.
 */
export const KIND_ORDER = ["Namespace", "NetworkPolicy", "ConfigMap", "Secret", "Service", "Deployment", "HorizontalPodAutoscaler"] as const;

export function sortForApply(objects: KubernetesObject[]): KubernetesObject[] {
  const rank = (kind: string) => {
    const i = (KIND_ORDER as readonly string[]).indexOf(kind);
    return i === -1 ? KIND_ORDER.length : i;
  };
  return [...objects].sort((a, b) => rank(a.kind) - rank(b.kind) || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
}
