// The rollout summary GET /v1/status carries: present while a rollout is under way, gone once it ended.
import { describe, expect, it } from "vitest";
import { activeRollout } from "./active-rollout.js";
import type { RolloutState } from "./rollout.js";

const state = (over: Partial<RolloutState>): RolloutState => ({
  id: "ro-1",
  service: "orders",
  strategy: "canary",
  from: "r-old",
  to: "r-new",
  phase: "paused",
  step: 1,
  weight: 20,
  actor: "user:ana",
  startedAt: "2026-03-01T09:00:00.000Z",
  updatedAt: "2026-03-01T09:01:00.000Z",
  stepStartedAt: "2026-03-01T09:01:00.000Z",
  ...over,
});

describe("activeRollout", () => {
  it("summarizes a canary paused at a step, with the number of steps the service declares", () => {
    expect(activeRollout(state({ message: "waiting for approval" }), 3)).toEqual({
      id: "ro-1",
      strategy: "canary",
      phase: "paused",
      from: "r-old",
      to: "r-new",
      weight: 20,
      step: 1,
      steps: 3,
      startedAt: "2026-03-01T09:00:00.000Z",
      message: "waiting for approval",
    });
  });

  it("keeps a switched blue-green rollout (still warm, not ended) and gives other strategies no steps", () => {
    const summary = activeRollout(state({ strategy: "blueGreen", phase: "switched", weight: 100, step: 0 }), 3);
    expect(summary).toMatchObject({ strategy: "blueGreen", phase: "switched", weight: 100, steps: 0 });
    expect(summary).not.toHaveProperty("message");
  });

  it("gives nothing for no rollout or one that succeeded, failed or was rolled back", () => {
    expect(activeRollout(undefined, 0)).toBeUndefined();
    for (const phase of ["succeeded", "failed", "rolled-back"] as const) expect(activeRollout(state({ phase }), 3), phase).toBeUndefined();
    for (const phase of ["progressing", "promoting", "finishing"] as const) expect(activeRollout(state({ phase }), 3)?.phase, phase).toBe(phase);
  });
});
