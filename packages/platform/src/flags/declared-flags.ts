// Flags declared in the manifest are desired state: `keelson up` sets each to its declared
// definition and deletes those dropped from the manifest since the last apply, leaving flags
// managed live (`keelson flags`) alone. The keys of the last apply are kept in a store setting.
import type { FlagSet } from "@keelson/protocol";
import type { Store } from "../store/index.js";
import { createFlagService, diffFlag, type FlagService } from "./flag-service.js";

/** What the manifest declared at the last apply: flag keys and flagEvaluators names. */
export interface DeclaredFlags {
  flags: string[];
  evaluators: string[];
}

/** The flags part of a manifest: key → definition, and the shared rules (flagd's $evaluators). */
export interface FlagDeclaration {
  flags?: Readonly<Record<string, unknown>>;
  evaluators?: Readonly<Record<string, unknown>>;
}

/** The stored side of a flag plan: the current set and what the last apply declared. */
export interface FlagState {
  set: FlagSet;
  declared: DeclaredFlags;
}

/** What applying the declaration changed; `revision` is the set's revision afterwards. */
export interface DeclaredFlagsResult {
  revision: number;
  created: string[];
  changed: string[];
  removed: string[];
  /** flagEvaluators entries set or removed. */
  evaluators: string[];
}

const settingKey = (project: string) => `flags-declared.${project}`;
const NOTHING_DECLARED: DeclaredFlags = { flags: [], evaluators: [] };

/**
 * What the last apply declared (flag keys and evaluator names); nothing before the first apply.
 *
 * @example
 * (await readDeclaredFlags({ store, project: "shop" })).flags.includes("new-checkout"); // set by `keelson up`
 */
export async function readDeclaredFlags(options: { store: Store; project: string }): Promise<DeclaredFlags> {
  return readDeclared(options.store, options.project);
}

async function readDeclared(store: Store, project: string): Promise<DeclaredFlags> {
  const text = await store.getSetting(settingKey(project));
  if (text === undefined) return NOTHING_DECLARED;
  const parsed = JSON.parse(text) as Partial<DeclaredFlags>;
  return { flags: parsed.flags ?? [], evaluators: parsed.evaluators ?? [] };
}

/**
 * The stored flag set and what the last apply declared, read from the store directly (no
 * control plane needed; a read-only store will do).
 *
 * @example
 * const state = await readFlagState({ store, project: "shop" });
 * Object.keys(state.set.flags); // every flag, declared or live
 */
export async function readFlagState(options: { store: Store; project: string }): Promise<FlagState> {
  const { store, project } = options;
  const [snapshot, declared] = await Promise.all([createFlagService({ store, project }).snapshot(), readDeclared(store, project)]);
  return { set: snapshot.set, declared };
}

/** `current` with the declared entries set and those declared last time but no longer removed. */
function merge<T>(current: Readonly<Record<string, T>> | undefined, declared: Readonly<Record<string, unknown>>, before: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...current };
  for (const key of before) if (!Object.hasOwn(declared, key)) delete out[key];
  for (const [key, value] of Object.entries(declared)) out[key] = value;
  return out;
}

/**
 * The set the flag service should hold after an apply: `current` with every declared flag and
 * evaluator set to its declaration, and those declared at the last apply but not now removed.
 */
export function desiredFlagSet(current: FlagSet, declaration: FlagDeclaration, before: DeclaredFlags): FlagSet {
  const evaluators = merge(current.$evaluators, declaration.evaluators ?? {}, before.evaluators);
  const next: FlagSet = { ...current, flags: merge(current.flags, declaration.flags ?? {}, before.flags) as FlagSet["flags"] };
  // None left: leave the field out (as it was, if it was an empty mapping, so nothing changes).
  const emptyBefore = current.$evaluators !== undefined && Object.keys(current.$evaluators).length === 0;
  if (Object.keys(evaluators).length > 0 || emptyBefore) next.$evaluators = evaluators;
  else delete next.$evaluators;
  return next;
}

/**
 * Sets the declared flags through the flag service, in one revision (none when nothing differs),
 * with `source: "manifest"` in each event, and records the declared keys for the next apply.
 * Throws KEELSON_ERR_INVALID_INPUT when the result would not be a valid set (a live flag with a
 * prerequisite on a flag removed from the manifest, say).
 *
 * @example
 * await applyDeclaredFlags({ flags, store, project: "shop", declaration: { flags: manifest.flags }, actor: "ana" });
 */
export async function applyDeclaredFlags(options: { flags: FlagService; store: Store; project: string; declaration: FlagDeclaration; actor: string }): Promise<DeclaredFlagsResult> {
  const { flags, store, project, declaration, actor } = options;
  const before = await readDeclared(store, project);
  const now: DeclaredFlags = { flags: Object.keys(declaration.flags ?? {}).sort(), evaluators: Object.keys(declaration.evaluators ?? {}).sort() };
  let prior: FlagSet = { flags: {} };
  const snap = await flags.update(
    (current) => {
      prior = current;
      return desiredFlagSet(current, declaration, before);
    },
    actor,
    { source: "manifest" },
  );
  if (JSON.stringify(now) !== JSON.stringify(before)) await store.setSetting(settingKey(project), JSON.stringify(now));
  const after = snap.set;
  const differ = (a: unknown, b: unknown) => diffFlag(a, b).length > 0;
  const union = (a: object | undefined, b: object | undefined) => [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])].sort();
  const keys = union(prior.flags, after.flags);
  return {
    revision: snap.revision,
    created: keys.filter((k) => !Object.hasOwn(prior.flags, k)),
    changed: keys.filter((k) => Object.hasOwn(prior.flags, k) && Object.hasOwn(after.flags, k) && differ(prior.flags[k], after.flags[k])),
    removed: keys.filter((k) => !Object.hasOwn(after.flags, k)),
    evaluators: union(prior.$evaluators, after.$evaluators).filter((k) => differ(prior.$evaluators?.[k], after.$evaluators?.[k])),
  };
}
