// The flags domain: the project's flag set (validated, versioned, audited), OFREP answers, the
// change stream, usage and stale flags, and scheduled changes. Evaluation itself is the pure
// engine in @keelson/protocol.
export * from "./declared-flags.js";
export * from "./flag-service.js";
export * from "./ofrep.js";
export * from "./experiments.js";
export * from "./flag-usage.js";
export * from "./stale-flags.js";
export * from "./flag-schedule.js";
export {
  analyzeErrorRatios,
  analyzeExperiment,
  chiSquaredSurvival,
  confidenceSequenceRadius,
  describeErrorRatios,
  differenceSequence,
  mixtureRho,
  normalQuantile,
  wilson,
  sampleRatioMismatch,
  type AnalyzeOptions,
  type Comparison,
  type ComparisonVerdict,
  type ErrorRatioAnalysis,
  type ErrorRatioComparison,
  type ExperimentAnalysis,
  type ExperimentVerdict,
  type Interval,
  type SampleRatioCheck,
  type VariantCounts,
  type VariantErrorStats,
  type VariantRequests,
  type VariantStats,
} from "./experiment-stats.js";
