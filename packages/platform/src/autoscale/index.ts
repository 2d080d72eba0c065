// The autoscale domain: replica counts driven by load with Kubernetes HPA's algorithm (hpa.ts,
// pure), the loop that applies it to a project's services (autoscaler.ts) and the LoadReader
// over the gateways' live stats (gateway-load-reader.ts).
export { AUTOSCALE_DEFAULTS, MEASURES, PARTIAL_WINDOWS_HELD, applyLimits, decide, emptyMemory, proposeReplicas, recordScale, replicaMeasureProposal, resolveAutoscale, scaleDownLimit, scaleUpLimit, serviceMeasureProposal, stabilize } from "./hpa.js";
export type {
  AutoscaleConfig,
  AutoscaleMemory,
  Decision,
  DecisionReason,
  LimitResult,
  LimitedBy,
  Measure,
  MeasureProposal,
  Proposals,
  Recommendation,
  ReplicaCounts,
  ReplicaLoad,
  ScaleChange,
  ScalingPolicy,
  ScalingRules,
  ServiceLoad,
  StabilizeResult,
} from "./hpa.js";
export { EVALUATIONS_KEPT, checkLoad, createAutoscaler } from "./autoscaler.js";
export type { AutoscaleEvaluation, AutoscaleStatus, Autoscaler, AutoscalerLog, AutoscalerOptions, LoadReader } from "./autoscaler.js";
export { createGatewayLoadReader, quantileOfHistogram, serviceLoadFromSnapshots } from "./gateway-load-reader.js";
export type { GatewayLoadReaderOptions } from "./gateway-load-reader.js";
