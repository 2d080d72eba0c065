// The Deploys view's pure logic: stage states (queued and skipped from the run's plan), which
// rollouts may be promoted or aborted, steps and durations in words, the bounded log text.
import { describe, expect, it } from "vitest";
import type { PipelineRun, RolloutDetail, RolloutState } from "./deploys-api.js";
import { canaryPosition, capLog, describeStep, firstLine, formatMs, isAbortable, isPromotable, runStateLabel, splitLines, stageRows } from "./deploys-model.js";

function run(over: Partial<PipelineRun>): PipelineRun {
  return {
    run: "run-20260101-000000-abcdef",
    service: "api",
    status: "running",
    trigger: "deploy",
    actor: "user:ana",
    release: undefined,
    commit: undefined,
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: undefined,
    durationMs: undefined,
    stages: [],
    message: undefined,
    ...over,
  };
}

function rollout(over: Partial<RolloutState>): RolloutState {
  return { id: "ro-1", service: "api", strategy: "canary", phase: "paused", from: "rel-a", to: "rel-b", step: 1, weight: 50, actor: "user:ana", startedAt: "2026-01-01T00:00:00.000Z", ...over };
}

const states = (r: PipelineRun) => stageRows(r).map((s) => [s.name, s.state]);

describe("stageRows", () => {
  it("shows the stages still to run as queued while the run runs", () => {
    const r = run({ planned: ["build", "test", "scan"], stages: [{ name: "build", status: "succeeded", durationMs: 1200 }, { name: "test", status: "running", startedAt: "2026-01-01T00:00:02.000Z" }] });
    expect(states(r)).toEqual([
      ["build", "passed"],
      ["test", "running"],
      ["scan", "queued"],
    ]);
    expect(stageRows(r)[0]?.durationMs).toBe(1200);
    expect(stageRows(r)[1]?.startedAt).toBe("2026-01-01T00:00:02.000Z");
  });

  it("shows the stages after a failure as skipped, and a cached install as passed from the cache", () => {
    const r = run({ status: "failed", planned: ["install", "build", "test", "scan"], stages: [{ name: "install", status: "succeeded", cached: true }, { name: "build", status: "succeeded" }, { name: "test", status: "failed", why: "exited with code 1" }] });
    expect(states(r)).toEqual([
      ["install", "passed"],
      ["build", "passed"],
      ["test", "failed"],
      ["scan", "skipped"],
    ]);
    expect(stageRows(r)[0]?.cached).toBe(true);
    expect(stageRows(r)[2]?.why).toBe("exited with code 1");
  });

  it("marks a stage left running by a run that was cut short, and copes with runs recorded without a plan", () => {
    expect(states(run({ status: "interrupted", planned: ["build", "test"], stages: [{ name: "build", status: "running" }] }))).toEqual([
      ["build", "interrupted"],
      ["test", "skipped"],
    ]);
    expect(states(run({ status: "succeeded", stages: [{ name: "build", status: "succeeded" }] }))).toEqual([["build", "passed"]]);
    // A plan that repeats a name (a stage of the service's own called "scan" before the built-in one) goes by position.
    expect(states(run({ planned: ["scan", "scan"], stages: [{ name: "scan", status: "succeeded" }] }))).toEqual([
      ["scan", "passed"],
      ["scan", "queued"],
    ]);
  });

  it("words a succeeded run as passed, like its stages", () => {
    expect(runStateLabel("succeeded")).toBe("passed");
    expect(runStateLabel("failed")).toBe("failed");
  });
});

describe("rollout actions", () => {
  it("offers Promote for a canary at a pause or an analysis only, the way the API accepts it", () => {
    expect(isPromotable(rollout({ phase: "paused" }))).toBe(true);
    expect(isPromotable(rollout({ phase: "progressing", pausedUntil: "2026-01-01T00:05:00.000Z" }))).toBe(true);
    expect(isPromotable(rollout({ phase: "progressing", analysis: { step: 2 } }))).toBe(true);
    expect(isPromotable(rollout({ phase: "progressing" }))).toBe(false);
    expect(isPromotable(rollout({ phase: "paused", strategy: "blueGreen" }))).toBe(false);
    expect(isPromotable(rollout({ phase: "finishing" }))).toBe(false);
    expect(isPromotable(null)).toBe(false);
  });

  it("offers Abort while the rollout is progressing, paused or promoting", () => {
    for (const phase of ["progressing", "paused", "promoting"] as const) expect(isAbortable(rollout({ phase })), phase).toBe(true);
    for (const phase of ["switched", "finishing", "succeeded", "failed", "rolled-back"] as const) expect(isAbortable(rollout({ phase })), phase).toBe(false);
    expect(isAbortable(undefined)).toBe(false);
  });

  it("says where a canary is in its steps", () => {
    const detail: RolloutDetail = { service: "api", strategy: "canary", steps: [{ setWeight: 50 }, { pause: "manual" }], rollout: rollout({ step: 1 }) };
    expect(canaryPosition(detail)).toBe("step 2 of 2: pause until promoted");
    expect(canaryPosition({ ...detail, rollout: rollout({ step: 0, phase: "progressing" }) })).toBe("step 1 of 2: send 50% of traffic to the new release");
    expect(canaryPosition({ ...detail, rollout: rollout({ step: 2, phase: "promoting" }) })).toBe("after the last of 2 steps: the new release takes all traffic");
    expect(canaryPosition({ ...detail, rollout: rollout({ strategy: "rolling" }) })).toBeUndefined();
    expect(describeStep({ pause: 90_000 })).toBe("pause for 1 min 30 s");
    expect(describeStep({ analysis: {} })).toMatch(/analysis/);
    expect(describeStep({ match: { headers: {} } })).toBe("send matching requests to the new release");
  });
});

describe("formatting and streams", () => {
  it("words durations from milliseconds to hours", () => {
    expect(formatMs(850)).toBe("850 ms");
    expect(formatMs(12_340)).toBe("12.3 s");
    expect(formatMs(125_000)).toBe("2 min 5 s");
    expect(formatMs(3_780_000)).toBe("1 h 3 min");
    expect(formatMs(-5)).toBe("0 ms");
  });

  it("keeps the newest log text from a line start, counting what went", () => {
    expect(capLog("short", 10)).toEqual({ text: "short", omitted: 0 });
    const { text, omitted } = capLog("line 1\nline 2\nline 3\n", 10);
    expect(text).toBe("line 3\n");
    expect(omitted + text.length).toBe(21);
    // One long line: cut where the limit falls.
    expect(capLog("x".repeat(30), 10)).toEqual({ text: "x".repeat(10), omitted: 20 });
  });

  it("keeps an error's first line, without the pointer to log lines the log shows anyway", () => {
    expect(firstLine('services.api: stage "test" (`npm test`) exited with code 1; no release was made; last log lines:\n  | boom')).toBe('services.api: stage "test" (`npm test`) exited with code 1; no release was made');
    expect(firstLine("aborted by user:ana")).toBe("aborted by user:ana");
  });

  it("splits NDJSON chunks into complete lines and the rest", () => {
    expect(splitLines('{"a":1}\n\n{"b":2}\n{"c"')).toEqual({ lines: ['{"a":1}', '{"b":2}'], rest: '{"c"' });
    expect(splitLines("")).toEqual({ lines: [], rest: "" });
  });
});
