// Compiles a validated flag set once into an evaluator: targeting becomes closures, every result
// that does not depend on the context is built (and frozen) ahead, so a call allocates little.
// Evaluation never throws: every failure is a result with reason ERROR and an error code.
import { KeelsonError } from "../errors.js";
import { flagSetIssues, formatIssues, isNoTargeting, valueTypeOf } from "./check-flag-set.js";
import type { EvaluationContext, EvaluationErrorCode, EvaluationResult, FlagDefinition, FlagSet, FlagValue, FlagValueType } from "./flag-set.js";
import { BudgetExceededError, compileRule, NO_SPLIT, variantName, type EvalState, type Rule } from "./targeting.js";

export interface CompileFlagSetOptions {
  /** Clock for `$flagd.timestamp`, in milliseconds (default Date.now). */
  now?: () => number;
  /** Array elements one evaluation may visit in map/filter/reduce/all/some/none/merge/missing (default 10,000). */
  maxIterations?: number;
  /**
   * The set was checked already (by `checkFlagSet`, or by the control plane that sent it): skip
   * checking it again, the larger part of compiling. A set that cannot be compiled still throws.
   */
  checked?: boolean;
}

export interface CompiledFlagSet {
  /** Flag keys, in the set's order. */
  keys(): string[];
  /**
   * Evaluates one flag; never throws. With `expectedType`, a flag of another type answers
   * TYPE_MISMATCH (reason ERROR, value undefined); an unknown key answers FLAG_NOT_FOUND.
   */
  evaluate(key: string, context: EvaluationContext, expectedType?: FlagValueType): EvaluationResult;
  /** Every flag of the set, in order (disabled ones with reason DISABLED). */
  evaluateAll(context: EvaluationContext): EvaluationResult[];
}

interface VariantResults {
  match: EvaluationResult;
  split: EvaluationResult;
}

interface CompiledFlag {
  key: string;
  type: FlagValueType;
  disabled: boolean;
  metadata: Readonly<Record<string, string | number | boolean>> | undefined;
  variants: Map<string, VariantResults>;
  targeting: Rule | undefined;
  prerequisites: Array<{ key: string; variant: string; failed: EvaluationResult }>;
  disabledResult: EvaluationResult;
  staticResult: EvaluationResult;
  defaultResult: EvaluationResult;
}

const VALUE_TYPES: ReadonlySet<unknown> = new Set(["boolean", "string", "number", "object"]);

function deepFreezeCopy(v: unknown): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return Object.freeze(v.map(deepFreezeCopy));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = deepFreezeCopy(x);
  return Object.freeze(out);
}

function result(fields: EvaluationResult): EvaluationResult {
  const out: EvaluationResult = { key: fields.key, value: fields.value, reason: fields.reason };
  if (fields.variant !== undefined) out.variant = fields.variant;
  if (fields.errorCode !== undefined) out.errorCode = fields.errorCode;
  if (fields.errorMessage !== undefined) out.errorMessage = fields.errorMessage;
  if (fields.metadata !== undefined) out.metadata = fields.metadata;
  if (fields.prerequisite !== undefined) out.prerequisite = fields.prerequisite;
  return Object.freeze(out);
}

function failure(key: string, errorCode: EvaluationErrorCode, errorMessage: string, metadata?: EvaluationResult["metadata"]): EvaluationResult {
  return result({ key, value: undefined, reason: "ERROR", errorCode, errorMessage, metadata });
}

function compileFlag(key: string, def: FlagDefinition, set: FlagSet): CompiledFlag {
  const merged = { ...set.metadata, ...def.metadata };
  const metadata = Object.keys(merged).length > 0 ? Object.freeze(merged) : undefined;
  const variants = new Map<string, VariantResults>();
  const values = new Map<string, FlagValue>();
  for (const [name, raw] of Object.entries(def.variants)) {
    const value = deepFreezeCopy(raw) as FlagValue;
    values.set(name, value);
    variants.set(name, {
      match: result({ key, value, variant: name, reason: "TARGETING_MATCH", metadata }),
      split: result({ key, value, variant: name, reason: "SPLIT", metadata }),
    });
  }
  const fixed = (variant: string, reason: EvaluationResult["reason"], prerequisite?: string): EvaluationResult =>
    result({ key, value: values.get(variant), variant, reason, metadata, prerequisite });
  const targeting = isNoTargeting(def.targeting)
    ? undefined
    : compileRule(def.targeting, ["flags", key, "targeting"], true, { issues: [], evaluators: set.$evaluators, variants: undefined, report: false, refStack: [], refSite: undefined });
  return {
    key,
    type: valueTypeOf(values.get(def.defaultVariant)) ?? "object",
    disabled: def.state === "DISABLED",
    metadata,
    variants,
    targeting,
    prerequisites: (def.prerequisites ?? []).map((p) => ({ key: p.flag, variant: p.variant, failed: fixed(def.defaultVariant, "DEFAULT", p.flag) })),
    disabledResult: fixed(def.safeVariant ?? def.defaultVariant, "DISABLED"),
    staticResult: fixed(def.defaultVariant, "STATIC"),
    defaultResult: fixed(def.defaultVariant, "DEFAULT"),
  };
}

/**
 * Compiles a flag set once; evaluation is then allocation-light (no JSON walking, shared frozen
 * results). Throws KeelsonError KEELSON_ERR_INVALID_INPUT listing the issues if the set is invalid.
 *
 * Semantics follow flagd, with these choices: a DISABLED flag answers reason DISABLED with the
 * value of `safeVariant` (else `defaultVariant`) rather than flagd's code default; a variant picked
 * by `fractional` answers reason SPLIT (flagd says TARGETING_MATCH).
 *
 * @example
 * const flags = compileFlagSet(set);
 * flags.evaluate("new-checkout", { targetingKey: "user-42", plan: "pro" }, "boolean");
 */
export function compileFlagSet(set: FlagSet, options: CompileFlagSetOptions = {}): CompiledFlagSet {
  const issues = options.checked ? [] : flagSetIssues(set);
  if (issues.length > 0) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `invalid flag set: ${formatIssues(issues)}`, { details: { issues } });
  }
  const now = options.now ?? Date.now;
  const maxIterations = options.maxIterations ?? 10_000;
  const flags = new Map<string, CompiledFlag>();
  for (const [key, def] of Object.entries(set.flags)) flags.set(key, compileFlag(key, def, set));
  const order = [...flags.values()];

  // One state object serves every evaluation; a re-entrant call (a context getter evaluating a
  // flag) finds it taken and gets its own.
  let spare: EvalState | undefined;
  const newState = (): EvalState => ({ ctx: EMPTY, flagKey: "", timestamp: -1, now, budget: 0, split: NO_SPLIT });
  spare = newState();

  const runTargeting = (flag: CompiledFlag, targeting: Rule, context: object): EvaluationResult => {
    const s = spare ?? newState();
    spare = undefined;
    s.ctx = context;
    s.flagKey = flag.key;
    s.timestamp = -1;
    s.budget = maxIterations;
    s.split = NO_SPLIT;
    let raw: unknown;
    try {
      raw = targeting(context, s);
    } catch (e) {
      const why = e instanceof BudgetExceededError ? e.message : `targeting failed on this context: ${e instanceof Error ? e.message : String(e)}`;
      return failure(flag.key, "GENERAL", why, flag.metadata);
    } finally {
      s.ctx = EMPTY;
      spare = s;
    }
    if (raw === null || raw === undefined) return flag.defaultResult;
    const name = variantName(raw);
    const entry = name === undefined ? undefined : flag.variants.get(name);
    if (entry === undefined) {
      const shown = name === undefined ? (Array.isArray(raw) ? "an array" : `a ${typeof raw}`) : `"${name}"`;
      return failure(flag.key, "GENERAL", `targeting returned unknown variant ${shown} for flag "${flag.key}"`, flag.metadata);
    }
    return raw === s.split ? entry.split : entry.match;
  };

  const evaluateFlag = (flag: CompiledFlag, context: unknown): EvaluationResult => {
    if (flag.disabled) return flag.disabledResult;
    const targeting = flag.targeting;
    if (targeting === undefined && flag.prerequisites.length === 0) return flag.staticResult; // reads no context
    const ctx = context ?? EMPTY; // a missing context is an empty one
    if (typeof ctx !== "object" || Array.isArray(ctx)) {
      return failure(flag.key, "INVALID_CONTEXT", `the evaluation context must be an object, got ${Array.isArray(ctx) ? "an array" : typeof ctx}`, flag.metadata);
    }
    for (const p of flag.prerequisites) {
      const other = flags.get(p.key);
      const r = other === undefined ? undefined : evaluateFlag(other, ctx);
      if (r === undefined || r.reason === "ERROR" || r.reason === "DISABLED" || r.variant !== p.variant) return p.failed;
    }
    return targeting === undefined ? flag.staticResult : runTargeting(flag, targeting, ctx);
  };

  const evaluate = (key: string, context: EvaluationContext, expectedType?: FlagValueType): EvaluationResult => {
    const flag = flags.get(key);
    if (flag === undefined) return failure(String(key), "FLAG_NOT_FOUND", `no flag "${String(key)}"`);
    try {
      if (expectedType !== undefined && expectedType !== flag.type) {
        const asked = VALUE_TYPES.has(expectedType) ? expectedType : `an unknown type (${String(expectedType)})`;
        return failure(key, "TYPE_MISMATCH", `flag "${key}" is a ${flag.type} flag, asked for ${asked}`, flag.metadata);
      }
      return evaluateFlag(flag, context);
    } catch (e) {
      return failure(key, "GENERAL", `evaluation failed: ${e instanceof Error ? e.message : String(e)}`, flag.metadata);
    }
  };

  return Object.freeze({
    keys: () => [...flags.keys()],
    evaluate,
    evaluateAll: (context: EvaluationContext) => {
      const out = new Array<EvaluationResult>(order.length);
      for (let i = 0; i < order.length; i++) {
        const flag = order[i] as CompiledFlag;
        out[i] = evaluate(flag.key, context);
      }
      return out;
    },
  });
}

const EMPTY: object = Object.freeze({});
