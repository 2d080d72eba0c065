// The events wire format: batches from SDKs before evaluation counts still parse, and the
// optional `evaluations` is bounded like the events are.
import { describe, expect, it } from "vitest";
import { EXPERIMENT_LIMITS, ExperimentEventBatchSchema } from "./experiment-events.js";

describe("experiment event batches", () => {
  const exposure = { type: "exposure", flag: "checkout", variant: "on", targetingKey: "u1" };

  it("takes batches with and without evaluation counts", () => {
    expect(ExperimentEventBatchSchema.parse({ events: [exposure] })).toEqual({ events: [exposure] });
    expect(ExperimentEventBatchSchema.parse({ events: [], evaluations: { checkout: 12, banner: 1 } })).toEqual({ events: [], evaluations: { checkout: 12, banner: 1 } });
  });

  it("refuses counts that are not positive whole numbers, empty or long flag keys, and too many flags", () => {
    const issue = (evaluations: unknown) => {
      const r = ExperimentEventBatchSchema.safeParse({ events: [], evaluations });
      return r.success ? undefined : `${r.error.issues[0]?.path.join(".")}: ${r.error.issues[0]?.message}`;
    };
    expect(issue({ checkout: 0 })).toBe("evaluations.checkout: expected a positive count of evaluations");
    expect(issue({ checkout: 1.5 })).toBe("evaluations.checkout: expected a whole number of evaluations");
    expect(issue({ checkout: "3" })).toMatch(/^evaluations\.checkout: /);
    expect(issue({ "": 1 })).toMatch(/^evaluations/);
    expect(issue({ ["x".repeat(129)]: 1 })).toMatch(/^evaluations/);
    expect(issue([1])).toBe("evaluations: expected an object of flag key → count of evaluations");
    const many = Object.fromEntries(Array.from({ length: EXPERIMENT_LIMITS.maxEvaluatedFlagsPerRequest + 1 }, (_, i) => [`f${i}`, 1]));
    expect(issue(many)).toBe(`evaluations: expected at most ${EXPERIMENT_LIMITS.maxEvaluatedFlagsPerRequest} flags per request`);
  });
});
