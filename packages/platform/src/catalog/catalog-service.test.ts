// The catalog over a store: facts from the event log (followed incrementally), scan findings of
// the running release, stale flags and the service map (kept for cacheMs on an injected clock),
// filters, and a service's recent deploys.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { parseManifest } from "../manifest/index.js";
import { createMemoryStore, type Store } from "../store/index.js";
import type { ServiceMap } from "../telemetry/index.js";
import { createCatalogService } from "./catalog-service.js";
import { createServiceHistory } from "./service-history.js";
import { saveTeams } from "./teams.js";

// No teams here: saved apart below, so that "discovery" owns a service without being a declared team.
const yaml = `project: shop
services:
  orders:
    owner: commerce
    tags: [pci]
    links: { runbook: docs/orders.md }
    path: services/orders
    start: node main.js
    readiness: /ready
    slos: [{ name: availability, availability: 99.9 }]
    calls: [payments]
  payments:
    owner: commerce
    path: services/payments
    start: node main.js
  search:
    owner: discovery
    path: services/search
    start: node main.js
`;

describe("createCatalogService", () => {
  let store: Store;
  let dir: string;
  let cleanup: () => Promise<void>;
  let t = Date.parse("2026-06-30T12:00:00.000Z");
  const now = () => new Date(t);

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-catalog-");
    dir = tmp.dir;
    cleanup = tmp.cleanup;
    await mkdir(join(dir, "services", "orders"), { recursive: true });
    await writeFile(join(dir, "services", "orders", "openapi.yaml"), "openapi: 3.1.0\n");
    store = createMemoryStore({ now: () => t });
    const { manifest } = parseManifest(yaml, join(dir, "keelson.yaml"), { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: join(dir, "keelson.yaml"), manifestHash: "h", appliedAt: now().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: name === "orders" ? "r-orders00001" : undefined })),
      remove: [],
      events: [],
    });
    await saveTeams(store, "shop", { teams: { commerce: { members: ["chidi"], contact: "#commerce" } }, notifications: undefined }, now().toISOString());
    await store.putRelease({ id: "r-orders00001", project: "shop", service: "orders", sourceHash: "s", configHash: "c", gitCommit: undefined, createdAt: now().toISOString(), details: { securityFindings: { total: 1, blocking: 0, byKind: { vulnerability: 1 }, bySeverity: { critical: 1 } } } });
    await store.appendEvent({ project: "shop", kind: "pipeline.succeeded", actor: "cli", subject: "service/orders", details: { run: "run-1", stages: [{ name: "install" }, { name: "test" }] } });
    await store.appendEvent({ project: "shop", kind: "rollout.succeeded", actor: "cli", subject: "service/orders", details: { rollout: "ro-1", strategy: "rolling", to: "r-orders00001" } });
    // Another project's deploy of a service of the same name is not ours.
    await store.appendEvent({ project: "other", kind: "rollout.succeeded", actor: "cli", subject: "service/payments", details: { to: "r-x" } });
  });
  afterAll(async () => {
    await store.close();
    await cleanup();
  });

  it("gathers the scorecard facts from the store: deploys, pipeline stages, the running release's scan, teams", async () => {
    const catalog = createCatalogService({ store, project: "shop", now, staleFlags: async () => [] });
    const orders = await catalog.service("orders");
    expect(orders?.scorecardResults.map((r) => [r.rule, r.status])).toEqual([
      ["owner-team", "pass"],
      ["slo", "pass"],
      ["readiness", "pass"],
      ["tests", "pass"],
      ["vulnerabilities", "fail"],
      ["flags", "pass"],
      ["deployed-recently", "pass"],
    ]);
    expect(orders?.deploys).toEqual([{ at: now().toISOString(), kind: "rollout.succeeded", release: "r-orders00001", from: undefined, strategy: "rolling", actor: "cli", why: undefined }]);
    expect(orders?.api).toEqual({ file: join(dir, "services", "orders", "openapi.yaml"), declared: false, exists: true });
    expect(orders?.links).toEqual([{ name: "runbook", target: "docs/orders.md", kind: "file", href: join(dir, "docs", "orders.md"), exists: false }]);
    const payments = await catalog.service("payments");
    expect(payments?.scorecardResults.find((r) => r.rule === "deployed-recently")).toMatchObject({ status: "fail", reason: "no successful rollout recorded" });
    expect(await catalog.service("nope")).toBeUndefined();
  });

  it("filters by team and tag, and refuses a team nobody has", async () => {
    const catalog = createCatalogService({ store, project: "shop", now });
    expect((await catalog.list({ team: "commerce" })).services.map((e) => e.name)).toEqual(["orders", "payments"]);
    expect((await catalog.list({ tag: "pci" })).services.map((e) => e.name)).toEqual(["orders"]);
    expect((await catalog.list({ team: "discovery", tag: "pci" })).services).toEqual([]);
    await expect(catalog.list({ team: "nobody" })).rejects.toMatchObject({ code: "KEELSON_ERR_NOT_FOUND" });
    await expect(catalog.scorecards({ team: "nobody" })).rejects.toMatchObject({ code: "KEELSON_ERR_NOT_FOUND" });
    // Without a stale-flags source the flags rule is unknown, not passed.
    expect((await catalog.scorecards({ team: "discovery" })).services.map((c) => [c.service, c.results.find((r) => r.rule === "flags")?.status])).toEqual([["search", "unknown"]]);
    expect((await catalog.teams()).map((t) => [t.name, t.declared])).toEqual([
      ["commerce", true],
      ["discovery", false],
    ]);
    expect(await catalog.team("nobody")).toBeUndefined();
  });

  it("serves the service map and stale flags for cacheMs, then the old ones while fresh ones are derived", async () => {
    let maps = 0;
    let flagReads = 0;
    const edge = (to: string) => ({ from: "orders", to, calls: 9, errors: 0, errorRatio: 0, ratePerSecond: 0.01, retries: 0, p50Ms: 1, p95Ms: 1 });
    let map: ServiceMap = { windowSeconds: 900, nodes: [], edges: [edge("search")] };
    let release: () => void = () => undefined;
    const catalog = createCatalogService({
      store,
      project: "shop",
      now,
      cacheMs: 5000,
      observed: async () => {
        maps++;
        const answer = map;
        // Later refreshes wait until the test lets them finish.
        if (maps > 1) await new Promise<void>((r) => (release = r));
        return answer;
      },
      staleFlags: async () => (flagReads++, [{ flag: "old", owner: "commerce", why: ["unchanged"] }]),
    });
    const orders = async () => (await catalog.list()).services.find((e) => e.name === "orders");
    const first = await orders();
    expect(first?.dependencies).toMatchObject({ undeclared: ["search"], unused: ["payments"] });
    expect(first?.scorecard.failing).toEqual(["vulnerabilities", "flags"]);
    await catalog.list();
    expect([maps, flagReads]).toEqual([1, 1]);

    map = { windowSeconds: 900, nodes: [], edges: [edge("payments")] };
    t += 5000;
    // Expired: answered at once from the old map while the new one is derived.
    expect((await orders())?.dependencies.undeclared).toEqual(["search"]);
    expect([maps, flagReads]).toEqual([2, 2]);
    // One refresh at a time.
    await catalog.list();
    expect(maps).toBe(2);
    release();
    const fresh = await waitFor(async () => {
      const deps = (await orders())?.dependencies;
      return deps?.unused.length === 0 ? deps : undefined;
    });
    expect(fresh).toMatchObject({ undeclared: [], unused: [], observed: [{ service: "payments", calls: 9 }] });
  });

  it("keeps the last service map when a refresh fails, and says so", async () => {
    const errors: string[] = [];
    let fail = false;
    const map: ServiceMap = { windowSeconds: 900, nodes: [], edges: [{ from: "orders", to: "search", calls: 1, errors: 0, errorRatio: 0, ratePerSecond: 0.01, retries: 0, p50Ms: 1, p95Ms: 1 }] };
    const catalog = createCatalogService({
      store,
      project: "shop",
      now,
      cacheMs: 1000,
      observed: async () => {
        if (fail) throw new Error("trace store closed");
        return map;
      },
      onError: (err, what) => errors.push(`${what}: ${(err as Error).message}`),
    });
    expect((await catalog.list()).services.find((e) => e.name === "orders")?.dependencies.undeclared).toEqual(["search"]);
    fail = true;
    t += 1000;
    await catalog.list();
    await waitFor(() => errors.length > 0);
    expect(errors).toEqual(["service map: trace store closed"]);
    expect((await catalog.list()).services.find((e) => e.name === "orders")?.dependencies.undeclared).toEqual(["search"]);
  });

  it("reuses unchanged entries between requests, and rebuilds those whose inputs changed", async () => {
    let replicas = [{ service: "orders", release: "r-orders00001", state: "starting" }];
    const catalog = createCatalogService({ store, project: "shop", now, replicas: () => replicas, staleFlags: async () => [] });
    const byName = async () => new Map((await catalog.list()).services.map((e) => [e.name, e]));
    const before = await byName();
    const again = await byName();
    expect(again.get("orders")).toBe(before.get("orders"));
    expect(JSON.parse(await catalog.listJson({ tag: "pci" }))).toEqual(JSON.parse(JSON.stringify(await catalog.list({ tag: "pci" }))));
    expect(before.get("orders")?.replicas).toEqual({ desired: 1, ready: 0 });

    replicas = [{ service: "orders", release: "r-orders00001", state: "ready" }];
    await store.setServiceReplicas("shop", "payments", 3);
    await store.appendEvent({ project: "shop", kind: "rollout.succeeded", actor: "cli", subject: "service/search", details: { to: "r-search" } });
    const after = await byName();
    expect(after.get("orders")?.replicas).toEqual({ desired: 1, ready: 1 });
    expect(after.get("payments")?.replicas.desired).toBe(3);
    expect(after.get("search")?.scorecard.failing).not.toContain("deployed-recently");

    await saveTeams(store, "shop", { teams: { commerce: { members: ["chidi"], contact: "#orders-oncall" } }, notifications: undefined }, now().toISOString());
    expect((await byName()).get("payments")?.owner.contact).toBe("#orders-oncall");
    // A minute later every entry is rebuilt (rules look at the time).
    const settled = await byName();
    t += 60_000;
    expect((await byName()).get("search")).not.toBe(settled.get("search"));
  });

  it("follows the event log from where it stopped: a later deploy is seen, old events are not read again", async () => {
    const reads: Array<number | undefined> = [];
    const counting: Store = { ...store, listEvents: (q) => (reads.push(q?.afterSeq), store.listEvents(q)) };
    const history = createServiceHistory({ store: counting, project: "shop" });
    expect((await history.read()).get("payments")).toBeUndefined();
    const deployed = await store.appendEvent({ project: "shop", kind: "rollout.succeeded", actor: "cli", subject: "service/payments", details: { to: "r-pay" } });
    expect((await history.read()).get("payments")?.lastDeploy).toEqual({ at: deployed.at, release: "r-pay" });
    expect(reads[0]).toBe(0);
    expect(reads[1]).toBeGreaterThanOrEqual(2);
    expect(reads[1]).toBeLessThan(deployed.seq);
  });
});
