// `keelson k8s` through the real binary: render writes the files (the kubernetes domain is loaded
// on demand, only by these commands), a client dry run validates without a cluster, and apply
// without any kubeconfig says what to set. The rendering itself is tested against golden files
// in packages/platform/src/kubernetes.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { ROOT, keelson } from "./cli.js";

describe("keelson k8s", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-k8s-"));
  });
  afterAll(() => cleanup());

  it("renders the shop into a folder, with a kustomization and the Secrets to create", async () => {
    const out = join(dir, "k8s");
    const r = await keelson(["k8s", "render", join(ROOT, "examples/shop"), "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✓ \d+ objects in namespace shop written to /);
    expect(r.stdout).toContain("kubectl -n shop create secret generic keelson-store");
    for (const f of ["kustomization.yaml", "orders.yaml", "keelson-gateway.yaml", "keelson-controlplane.yaml"]) expect(existsSync(join(out, f)), f).toBe(true);
    expect(await readFile(join(out, "orders.yaml"), "utf8")).toMatch(/kind: Deployment/);
  });

  it("validates with a client dry run, and without a kubeconfig tells what to set", async () => {
    const dry = await keelson(["k8s", "apply", join(ROOT, "examples/shop"), "--dry-run", "client"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/✓ \d+ objects valid for namespace shop; nothing sent/);
    const none = await keelson(["k8s", "apply", join(ROOT, "examples/shop")], { env: { KUBECONFIG: "", HOME: dir, KUBERNETES_SERVICE_HOST: "" } });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no Kubernetes cluster configured: set KUBECONFIG, pass --kubeconfig, or create .*\.kube\/config/);
  });
});
