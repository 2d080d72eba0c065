// The feature-flag model of Keelson: flagd's flag definition plus a few Keelson extensions, and
// the shapes of an evaluation. Structural zod schemas live here; semantic checks in check-flag-set.ts.
import { z } from "zod";

/** A variant's value; all variants of one flag share one of: boolean, string, number, object (incl. arrays). */
export type FlagValue = boolean | string | number | Record<string, unknown> | unknown[];

export const FLAG_TYPES = ["release", "experiment", "operational", "kill-switch", "permission"] as const;
/** What a flag is for; drives lifecycle hints (a release flag is meant to be removed). */
export type FlagType = (typeof FLAG_TYPES)[number];

/** The value type a caller may ask for; arrays count as "object" as in OpenFeature. */
export type FlagValueType = "boolean" | "string" | "number" | "object";

/** A prerequisite: `flag` must evaluate (enabled, without error) to `variant`. */
export interface FlagPrerequisite {
  flag: string;
  variant: string;
}

/**
 * One flag: flagd's flag definition plus optional Keelson extensions, which flagd ignores and
 * `exportFlagd` writes into metadata as `keelson.<field>`.
 */
export interface FlagDefinition {
  state: "ENABLED" | "DISABLED";
  /** Variant name → value; all values of one type. */
  variants: Record<string, FlagValue>;
  /** Must be a key of `variants`. */
  defaultVariant: string;
  /** JsonLogic with flagd's custom operators (fractional, sem_ver, starts_with, ends_with, $ref); `{}` or absent = none. */
  targeting?: unknown;
  metadata?: Record<string, string | number | boolean>;
  // Keelson extensions:
  type?: FlagType;
  owner?: string;
  description?: string;
  /** All must hold, else the flag serves `defaultVariant` with reason DEFAULT and `prerequisite` naming the first that failed. */
  prerequisites?: FlagPrerequisite[];
  /** What a disabled (killed) flag serves; defaults to `defaultVariant`. */
  safeVariant?: string;
}

export interface FlagSet {
  flags: Record<string, FlagDefinition>;
  /** Shared targeting rules, referenced from targeting as `{"$ref": "name"}`. */
  $evaluators?: Record<string, unknown>;
  /** Flag-set metadata (flagd's top-level `metadata`); merged under each flag's own metadata in results. */
  metadata?: Record<string, string | number | boolean>;
}

export type EvaluationReason = "STATIC" | "TARGETING_MATCH" | "SPLIT" | "DEFAULT" | "DISABLED" | "ERROR";
export type EvaluationErrorCode = "FLAG_NOT_FOUND" | "TYPE_MISMATCH" | "PARSE_ERROR" | "TARGETING_KEY_MISSING" | "INVALID_CONTEXT" | "GENERAL";

/** Attributes of the subject of an evaluation; `targetingKey` identifies it (used by `fractional`). */
export interface EvaluationContext {
  targetingKey?: string;
  [attribute: string]: unknown;
}

/** The outcome of one evaluation. Results may be shared and are frozen: copy before changing. */
export interface EvaluationResult<T = FlagValue> {
  key: string;
  /** undefined exactly when reason is ERROR. */
  value: T | undefined;
  variant?: string;
  reason: EvaluationReason;
  errorCode?: EvaluationErrorCode;
  errorMessage?: string;
  metadata?: Record<string, string | number | boolean>;
  /** The prerequisite flag that did not hold (reason DEFAULT). */
  prerequisite?: string;
}

/** One problem of a flag set, at its place: `["flags", "checkout", "targeting", "if", 0]`. */
export interface FlagIssue {
  path: Array<string | number>;
  message: string;
}

const MetadataSchema = z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()]));

const PrerequisiteSchema = z.strictObject({ flag: z.string().min(1), variant: z.string().min(1) });

/** The structure of a flag (types and required fields); semantics are checked by `checkFlagSet`. */
export const FlagDefinitionSchema = z.strictObject({
  state: z.enum(["ENABLED", "DISABLED"]),
  variants: z.record(z.string().min(1), z.unknown()),
  defaultVariant: z.string().min(1),
  targeting: z.unknown().optional(),
  metadata: MetadataSchema.optional(),
  type: z.enum(FLAG_TYPES).optional(),
  owner: z.string().min(1).optional(),
  description: z.string().optional(),
  prerequisites: z.array(PrerequisiteSchema).optional(),
  safeVariant: z.string().min(1).optional(),
});

export const FlagSetSchema = z.strictObject({
  flags: z.record(z.string().min(1), FlagDefinitionSchema),
  $evaluators: z.record(z.string().min(1), z.unknown()).optional(),
  metadata: MetadataSchema.optional(),
});

/** Flag keys the flag service accepts (they appear in URLs, event subjects and OFREP requests). */
export const FLAG_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Field names of a flag, for hints on unknown keys. */
export const FLAG_FIELDS = Object.keys(FlagDefinitionSchema.shape);
