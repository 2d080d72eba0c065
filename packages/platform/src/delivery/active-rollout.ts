// What GET /v1/status tells of a service's rollout: a summary while it is under way, nothing once
// it has succeeded, failed or been rolled back (the dashboard's overview lists these).
import type { ActiveRollout } from "@keelson/protocol";
import type { RolloutState } from "./rollout.js";

/**
 * The summary of a rollout that has not ended; undefined for none or an ended one. `steps` is the
 * number of canary steps the service declares (0 for other strategies).
 *
 * @example
 * activeRollout(await reconciler.rolloutOf("orders"), spec.deploy.steps?.length ?? 0);
 * // { id: "ro-…", strategy: "canary", phase: "paused", weight: 20, step: 1, steps: 3, … }
 */
export function activeRollout(state: RolloutState | undefined, steps: number): ActiveRollout | undefined {
  if (state === undefined) return undefined;
  const { phase } = state;
  if (phase === "succeeded" || phase === "failed" || phase === "rolled-back") return undefined;
  return {
    id: state.id,
    strategy: state.strategy,
    phase,
    from: state.from,
    to: state.to,
    weight: state.weight,
    step: state.step,
    steps: state.strategy === "canary" ? steps : 0,
    startedAt: state.startedAt,
    ...(state.message === undefined ? {} : { message: state.message }),
  };
}
