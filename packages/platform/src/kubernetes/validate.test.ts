// Validation names the object and the field of every problem, from the OpenAPI schema and from
// the naming rules the API server applies.
import { describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import type { KubernetesObject } from "./kubernetes-object.js";
import { kubernetesIssues, validateKubernetesObjects } from "./validate.js";

function deployment(container: Record<string, unknown>, name = "orders-r-1"): KubernetesObject {
  const labels = { "keelson.dev/service": "orders" };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: "shop", labels },
    spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [container] } } },
  };
}

const GOOD = { name: "orders", image: "shop/orders:1" };

describe("kubernetesIssues", () => {
  it("accepts a valid object", () => {
    expect(kubernetesIssues([deployment(GOOD)])).toEqual([]);
  });

  it("names the object and the field of a type error, with the value", () => {
    expect(kubernetesIssues([deployment({ ...GOOD, ports: [{ containerPort: "80a" }] })])).toEqual([
      { object: "Deployment shop/orders-r-1", path: "spec.template.spec.containers[0].ports[0].containerPort", message: 'must be integer, got "80a"' },
    ]);
  });

  it("names a missing required field itself, not its parent", () => {
    expect(kubernetesIssues([deployment({ image: "x" })])).toEqual([{ object: "Deployment shop/orders-r-1", path: "spec.template.spec.containers[0].name", message: "is required" }]);
  });

  it("reports a bad quantity once, without the oneOf summary", () => {
    const [issue, ...rest] = kubernetesIssues([deployment({ ...GOOD, resources: { limits: { memory: "12Qi" } } })]);
    expect(rest).toEqual([]);
    expect(issue?.path).toBe("spec.template.spec.containers[0].resources.limits.memory");
    expect(issue?.message).toBe('must be number or must match format "quantity", got "12Qi"');
  });

  it("checks names and labels the schema leaves to the API server", () => {
    const service: KubernetesObject = { apiVersion: "v1", kind: "Service", metadata: { name: "1orders", namespace: "Shop", labels: { "keelson.dev/release": "r 1" } }, spec: { ports: [{ port: 80 }] } };
    expect(kubernetesIssues([service]).map((i) => `${i.object}: ${i.path}`)).toEqual([
      "Service Shop/1orders: metadata.name",
      "Service Shop/1orders: metadata.namespace",
      'Service Shop/1orders: metadata.labels["keelson.dev/release"]',
    ]);
  });

  it("refuses kinds it does not know and objects given twice", () => {
    const ingress: KubernetesObject = { apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name: "web", namespace: "shop" } };
    expect(kubernetesIssues([ingress, deployment(GOOD), deployment(GOOD)])).toEqual([
      { object: "Ingress shop/web", path: "kind", message: expect.stringContaining("networking.k8s.io/v1 Ingress is not a kind Keelson renders") },
      { object: "Deployment shop/orders-r-1", path: "metadata.name", message: "the same object is given twice" },
    ]);
  });
});

describe("validateKubernetesObjects", () => {
  it("throws KEELSON_ERR_INVALID_INPUT listing every problem with its object and field", () => {
    let caught: unknown;
    try {
      validateKubernetesObjects([deployment(GOOD), deployment({ image: 1 }, "payments-r-2")]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(KeelsonError);
    const err = caught as KeelsonError;
    expect(err.code).toBe("KEELSON_ERR_INVALID_INPUT");
    expect(err.message).toContain("nothing was applied");
    expect(err.message).toContain("Deployment shop/payments-r-2: spec.template.spec.containers[0].name: is required");
    expect(err.message).toContain("Deployment shop/payments-r-2: spec.template.spec.containers[0].image: must be string, got 1");
    expect((err.details as { issues: unknown[] }).issues).toHaveLength(2);
  });
});
