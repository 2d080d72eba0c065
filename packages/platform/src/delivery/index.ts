// The delivery domain: plans, pipelines, releases, rollouts and the reconciler that runs them.
export * from "./plan.js";
export * from "./reconciler.js";
export * from "./release-id.js";
export * from "./replica-plan.js";
export { listSourceFiles } from "./source-hash.js";
export { resolveStages } from "./pipeline-stages.js";
export type { ResolvedStage } from "./pipeline-stages.js";
export * from "./pipeline.js";
export * from "./pipeline-log.js";
export * from "./rollout.js";
export * from "./active-rollout.js";
export { verifyArtifact, hashTree } from "./artifact.js";
export * from "./git.js";
export * from "./git-hooks.js";
export * from "./git-watch.js";
export { canonicalJson, sha256 } from "./canonical-json.js";
export * from "./analysis.js";
export * from "./analysis-stats.js";
