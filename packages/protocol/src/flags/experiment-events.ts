// The wire format of experiment events: exposures (a user was served a variant of an experiment
// flag) and conversions (a user did something worth counting), batched by the SDK and posted to
// the control plane's POST /v1/experiments/events, with the batch's optional evaluation counts
// per flag (every flag type), from which the control plane tells which flags are still in use.
import { z } from "zod";

/** Bounds both sides keep; the SDK drops what the control plane would refuse, so a batch never fails for one event. */
export const EXPERIMENT_LIMITS = Object.freeze({
  /** Events in one POST. */
  maxEventsPerRequest: 1000,
  /** Characters of a targetingKey. */
  maxTargetingKeyLength: 256,
  /** Characters of a flag key, variant or event name. */
  maxNameLength: 128,
  /** Flags in one batch's `evaluations`. */
  maxEvaluatedFlagsPerRequest: 1000,
});

/** A user was served `variant` of the experiment flag `flag`. */
export interface ExposureEvent {
  type: "exposure";
  flag: string;
  variant: string;
  targetingKey: string;
}

/** A user did `event` (OpenFeature `track`), with an optional numeric value (revenue…). */
export interface ConversionEvent {
  type: "conversion";
  event: string;
  targetingKey: string;
  value?: number;
}

export type ExperimentEvent = ExposureEvent | ConversionEvent;

/** Flag key → evaluations since the previous batch. */
export type EvaluationCounts = Record<string, number>;

/** The body of POST /v1/experiments/events. */
export interface ExperimentEventBatch {
  events: ExperimentEvent[];
  /** Optional: control planes before evaluation counting refuse the field, SDKs before it leave it out. */
  evaluations?: EvaluationCounts;
}

const name = (what: string) =>
  z
    .string({ error: `expected ${what} (a string)` })
    .min(1, { error: `expected ${what}, got an empty string` })
    .max(EXPERIMENT_LIMITS.maxNameLength, { error: `expected at most ${EXPERIMENT_LIMITS.maxNameLength} characters` });

const targetingKey = z
  .string({ error: "expected the user's targetingKey (a string)" })
  .min(1, { error: "expected the user's targetingKey, got an empty string" })
  .max(EXPERIMENT_LIMITS.maxTargetingKeyLength, { error: `expected at most ${EXPERIMENT_LIMITS.maxTargetingKeyLength} characters` });

const ExposureSchema = z.strictObject({ type: z.literal("exposure"), flag: name("a flag key"), variant: name("a variant name"), targetingKey });
const ConversionSchema = z.strictObject({
  type: z.literal("conversion"),
  event: name("an event name"),
  targetingKey,
  value: z.number({ error: "expected a finite number" }).optional(),
});

const EvaluationsSchema = z
  .record(name("a flag key"), z.number({ error: "expected a count of evaluations" }).int({ error: "expected a whole number of evaluations" }).positive({ error: "expected a positive count of evaluations" }).max(Number.MAX_SAFE_INTEGER), {
    error: "expected an object of flag key → count of evaluations",
  })
  .refine((counts) => Object.keys(counts).length <= EXPERIMENT_LIMITS.maxEvaluatedFlagsPerRequest, { error: `expected at most ${EXPERIMENT_LIMITS.maxEvaluatedFlagsPerRequest} flags per request` });

/** The body of POST /v1/experiments/events. */
export const ExperimentEventBatchSchema = z.strictObject({
  events: z
    .array(z.discriminatedUnion("type", [ExposureSchema, ConversionSchema], { error: 'expected type "exposure" or "conversion"' }), { error: "expected a list of events" })
    .max(EXPERIMENT_LIMITS.maxEventsPerRequest, { error: `expected at most ${EXPERIMENT_LIMITS.maxEventsPerRequest} events per request` }),
  evaluations: EvaluationsSchema.optional(),
});
