// Feature flags (issue #7): flagd-compatible flag sets, their validation, a compiled evaluator
// (JsonLogic with flagd's fractional, sem_ver, starts_with, ends_with, $ref) and flagd file I/O.
export type {
  EvaluationContext,
  EvaluationErrorCode,
  EvaluationReason,
  EvaluationResult,
  FlagDefinition,
  FlagIssue,
  FlagPrerequisite,
  FlagSet,
  FlagType,
  FlagValue,
  FlagValueType,
} from "./flag-set.js";
export { FLAG_KEY_PATTERN, FLAG_TYPES, FlagDefinitionSchema, FlagSetSchema } from "./flag-set.js";
export { checkFlagSet } from "./check-flag-set.js";
export { compileFlagSet, type CompiledFlagSet, type CompileFlagSetOptions } from "./compile-flag-set.js";
export { exportFlagd, importFlagd, FLAGD_SCHEMA_URL } from "./flagd-file.js";
export { murmur3_32 } from "./murmur3.js";
export { TARGETING_OPERATORS } from "./targeting.js";
export {
  EXPERIMENT_LIMITS,
  ExperimentEventBatchSchema,
  type ConversionEvent,
  type EvaluationCounts,
  type ExperimentEvent,
  type ExperimentEventBatch,
  type ExposureEvent,
} from "./experiment-events.js";
