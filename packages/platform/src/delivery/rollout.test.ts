// What rollout events tell DORA metrics: the commit and its author time on every event of a
// rollout, when the new release first took traffic (`servedAt`), and which unfinished rollout a
// rollback replaced. The controller is driven directly with replica lists made up for each tick.
import { beforeEach, describe, expect, it } from "vitest";
import { parseManifest, type ServiceSpec } from "../manifest/index.js";
import type { ReplicaInfo } from "../runtime/index.js";
import { createMemoryStore, type ServiceRecord, type Store } from "../store/index.js";
import { appendSample, createRolloutController, type AnalysisSample, type RolloutController } from "./rollout.js";

const SHA = "a".repeat(40);

function spec(deploy?: string): Record<string, unknown> {
  const { manifest } = parseManifest(
    ["project: shop", "services:", "  orders:", "    owner: web", "    path: orders", "    start: node main.js", "    replicas: 1", "    startTimeout: 5s", ...(deploy ? [`    deploy: ${deploy}`] : []), ""].join("\n"),
    "/tmp/shop/keelson.yaml",
    { checkPaths: false },
  );
  return JSON.parse(JSON.stringify(manifest.services.orders as ServiceSpec)) as Record<string, unknown>;
}

function replica(release: string, state: ReplicaInfo["state"], extra: Partial<ReplicaInfo> = {}): ReplicaInfo {
  return {
    spec: { id: `orders-${release}-0`, project: "shop", service: "orders", release, index: 0, cwd: "/tmp", command: "node main.js", env: {}, port: 1, stopTimeoutMs: 1000, startTimeoutMs: 5000, logDir: "/tmp" } as unknown as ReplicaInfo["spec"],
    state,
    pid: 1,
    pidStartTime: 1,
    restarts: 0,
    startedAt: new Date().toISOString(),
    lastExit: undefined,
    everReady: state === "ready",
    exitsSinceReady: 0,
    details: {},
    ...extra,
  };
}

describe("rollout events for DORA", () => {
  let store: Store;
  let rollouts: RolloutController;

  async function service(release: string | undefined, deploy?: string): Promise<ServiceRecord> {
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: "/tmp/shop/keelson.yaml", manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: [{ project: "shop", name: "orders", spec: spec(deploy), release }],
      remove: [],
      events: [],
    });
    return (await store.getService("shop", "orders")) as ServiceRecord;
  }

  async function putRelease(id: string, commit?: { sha: string; time: string }): Promise<void> {
    await store.putRelease({ id, project: "shop", service: "orders", sourceHash: "s", configHash: "c", gitCommit: commit?.sha, createdAt: new Date().toISOString(), details: commit ? { commitTime: commit.time } : {} });
  }

  const events = async (kind: "rollout.started" | "rollout.succeeded" | "rollout.failed" | "rollback.started") => (await store.listEvents({ project: "shop", kinds: [kind] })).map((e) => e.details);

  beforeEach(() => {
    store = createMemoryStore();
    rollouts = createRolloutController({ store, project: "shop" });
  });

  it("puts the release's commit and author time on every event of a rollout started without a commit (keelson up)", async () => {
    await putRelease("r-new", { sha: SHA, time: "2026-01-05T09:00:00.000Z" });
    const record = await service(undefined);
    await rollouts.begin({ record, to: "r-new", actor: "test" });
    const live = (await store.getService("shop", "orders")) as ServiceRecord;
    await rollouts.tick(live, { replicas: [replica("r-new", "ready")] });
    expect(await events("rollout.started")).toEqual([expect.objectContaining({ commit: SHA, commitTime: "2026-01-05T09:00:00.000Z" })]);
    const [succeeded] = await events("rollout.succeeded");
    expect(succeeded).toMatchObject({ to: "r-new", commit: SHA, commitTime: "2026-01-05T09:00:00.000Z" });
    // The first ready replica served users before the rollout ended.
    expect(Date.parse(succeeded?.servedAt as string)).not.toBeNaN();
  });

  it("leaves commitTime out when the release has no commit, or was built from another commit than the one named", async () => {
    await putRelease("r-tree");
    await rollouts.begin({ record: await service(undefined), to: "r-tree", actor: "test" });
    const [started] = await events("rollout.started");
    expect(started).not.toHaveProperty("commit");
    expect(started).not.toHaveProperty("commitTime");

    store = createMemoryStore();
    rollouts = createRolloutController({ store, project: "shop" });
    await putRelease("r-x", { sha: SHA, time: "2026-01-05T09:00:00.000Z" });
    await rollouts.begin({ record: await service(undefined), to: "r-x", actor: "test", commit: "b".repeat(40) });
    const [named] = await events("rollout.started");
    expect(named).toMatchObject({ commit: "b".repeat(40) });
    expect(named).not.toHaveProperty("commitTime");
  });

  it("a rolling rollout that fails before any new replica was ready has no servedAt (it reached no user)", async () => {
    await putRelease("r-old");
    await putRelease("r-bad");
    const record = await service("r-old");
    await rollouts.begin({ record, to: "r-bad", actor: "test" });
    const live = (await store.getService("shop", "orders")) as ServiceRecord;
    await rollouts.tick(live, { replicas: [replica("r-old", "ready"), replica("r-bad", "starting", { exitsSinceReady: 3 })] });
    const [failed] = await events("rollout.failed");
    expect(failed).toMatchObject({ to: "r-bad", rolledBackTo: "r-old" });
    expect(failed).not.toHaveProperty("servedAt");
  });

  it("a rolling rollout that fails after a new replica was ready says when it first served", async () => {
    await putRelease("r-old");
    await putRelease("r-bad");
    await rollouts.begin({ record: await service("r-old"), to: "r-bad", actor: "test" });
    const live = (await store.getService("shop", "orders")) as ServiceRecord;
    await rollouts.tick(live, { replicas: [replica("r-old", "ready"), replica("r-bad", "ready")] });
    await rollouts.tick(live, { replicas: [replica("r-old", "ready"), replica("r-bad", "starting", { exitsSinceReady: 3 })] });
    const [failed] = await events("rollout.failed");
    expect(Date.parse(failed?.servedAt as string)).not.toBeNaN();
  });

  it("a rollback during a blue-green warm window names the switched rollout it replaces and when that one served", async () => {
    await putRelease("r-blue");
    await putRelease("r-green");
    const deploy = "{ strategy: blueGreen, drain: 0, rollbackWindow: 10m }";
    const state = await rollouts.begin({ record: await service("r-blue", deploy), to: "r-green", actor: "test" });
    const live = (await store.getService("shop", "orders")) as ServiceRecord;
    const switched = await rollouts.tick(live, { replicas: [replica("r-blue", "ready"), replica("r-green", "ready")] });
    expect(switched?.phase).toBe("switched");
    await rollouts.rollback({ record: live, to: "r-blue", actor: "user:alice", warm: true });
    const [started] = await events("rollback.started");
    expect(started).toMatchObject({ from: "r-green", to: "r-blue", replaced: state.id, replacedServedAt: switched?.servedAt });
    expect(started).not.toHaveProperty("interrupted");
  });
});

describe("analysis samples (the dashboard's charts)", () => {
  const sample = (at: number): AnalysisSample => ({ at, canary: { requests: at, errors: 0, errorRatio: 0 }, baseline: { requests: at, errors: 0, errorRatio: 0 } });

  it("keeps every look up to the bound, oldest first", () => {
    let samples: AnalysisSample[] | undefined;
    for (let k = 1; k <= 4; k++) samples = appendSample(samples, sample(k), 4);
    expect(samples?.map((x) => x.at)).toEqual([1, 2, 3, 4]);
  });

  it("past the bound, thins the older looks to every other one and keeps the newest: still spanning the whole analysis", () => {
    let samples: AnalysisSample[] | undefined;
    for (let k = 1; k <= 5; k++) samples = appendSample(samples, sample(k), 4);
    expect(samples?.map((x) => x.at)).toEqual([1, 3, 5]);
    for (let k = 6; k <= 40; k++) samples = appendSample(samples, sample(k), 4);
    expect(samples?.length).toBeLessThanOrEqual(4);
    expect(samples?.[0]?.at).toBe(1);
    expect(samples?.at(-1)?.at).toBe(40);
    const times = (samples ?? []).map((x) => x.at);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });
});
