// The flags domain: the project's flag set (validated, versioned, audited), OFREP answers and
// the change stream. Evaluation itself is the pure engine in @keelson/protocol.
export * from "./declared-flags.js";
export * from "./flag-service.js";
export * from "./ofrep.js";
export * from "./experiments.js";
export {
  analyzeExperiment,
  chiSquaredSurvival,
  confidenceSequenceRadius,
  differenceSequence,
  mixtureRho,
  sampleRatioMismatch,
  type AnalyzeOptions,
  type Comparison,
  type ComparisonVerdict,
  type ExperimentAnalysis,
  type ExperimentVerdict,
  type Interval,
  type SampleRatioCheck,
  type VariantCounts,
  type VariantStats,
} from "./experiment-stats.js";
