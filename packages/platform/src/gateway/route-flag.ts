// Routing by feature flag: the flags a routing table carries, checked and compiled once per table
// with the same engine the control plane uses, and each flagged route's evaluator, which reads
// only the headers and cookies its context names and answers the variant's service and version,
// with the cell that measures the request's outcome and duration under its variant.
import type { CompiledFlagSet, EvaluationContext, FlagIssue, RouteFlag, RoutingTable } from "@keelson/protocol";
import { checkFlagSet, compileFlagSet } from "@keelson/protocol";
import type { FlagRouteCell, FlagVariantCell, GatewayMetrics } from "./gateway-metrics.js";
import type { GatewayLogger } from "./logger.js";
import { readCookie, sameHeaderName } from "./traffic-split.js";

/** Where a variant sends a request. */
export interface FlagRouteChoice {
  readonly variant: string;
  /** Service instead of the route's; undefined: the route's own. */
  readonly service: string | undefined;
  /** Release id or split label to pin to; undefined: the usual release choice. */
  readonly version: string | undefined;
  /** Counts the requests the choice was applied to. */
  readonly cell: FlagRouteCell;
  /** Measures their outcomes and durations. */
  readonly measure: FlagVariantCell;
}

/** What a route's flag decided for one request. */
export interface FlagDecision<S> {
  readonly variant: string;
  /** Where to count the request's outcome and duration (`GatewayMetrics.recordFlag`). */
  readonly measure: FlagVariantCell;
  /** Where the variant sends the request; undefined: the plain route (a variant the route does not list). */
  readonly target: { readonly service: S; readonly choice: FlagRouteChoice } | undefined;
}

/** The compiled flags of one table, handed to the next table so an unchanged set is not compiled (or reported) again. */
export interface TableFlags {
  /** The table's `flags.set` as JSON; undefined without flags. */
  readonly source: string | undefined;
  /** Undefined when the table has none, or none of them could be used. */
  readonly compiled: CompiledFlagSet | undefined;
}

const NO_FLAGS: TableFlags = { source: undefined, compiled: undefined };
/** Rounds of dropping unusable flags: dropping one can break a flag that has it as prerequisite. */
const MAX_REPAIR_ROUNDS = 4;

/**
 * Checks and compiles the flags of a table. A flag that fails the check (a table written by a
 * newer control plane, or edited by hand) is left out with one warning: routes naming it act as
 * if they had no flag, and the rest of the table is served. Never throws.
 */
export function compileTableFlags(table: Pick<RoutingTable, "flags">, previous: TableFlags | undefined, log: GatewayLogger): TableFlags {
  const flags = table.flags;
  if (flags === undefined) return NO_FLAGS;
  let source: string;
  try {
    source = JSON.stringify(flags.set);
  } catch {
    return NO_FLAGS;
  }
  if (previous !== undefined && previous.source === source) return previous;
  const set: { flags: Record<string, unknown>; $evaluators?: Record<string, unknown>; metadata?: Record<string, unknown> } = { ...flags.set, flags: { ...flags.set.flags } };
  const dropped: Array<{ flag: string; problem: string }> = [];
  for (let round = 0; round <= MAX_REPAIR_ROUNDS; round++) {
    const checked = checkFlagSet(set);
    if (checked.ok) {
      if (dropped.length > 0) log.warn({ revision: flags.revision, dropped }, "ignoring flags of the routing table that are not valid; routes naming them route as without a flag");
      try {
        return { source, compiled: compileFlagSet(checked.set, { checked: true }) };
      } catch (err) {
        log.warn({ revision: flags.revision, err: (err as Error).message }, "cannot compile the routing table's flags; flagged routes route as without a flag");
        return { source, compiled: undefined };
      }
    }
    const bad = flagsAt(checked.issues);
    if (bad === undefined || round === MAX_REPAIR_ROUNDS) break;
    for (const [flag, problem] of bad) {
      delete set.flags[flag];
      dropped.push({ flag, problem });
    }
  }
  log.warn({ revision: flags.revision }, "the routing table's flag set is not valid; flagged routes route as without a flag");
  return { source, compiled: undefined };
}

/** The flags the issues are about, with the first problem of each; undefined when an issue is about the set as a whole. */
function flagsAt(issues: readonly FlagIssue[]): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const i of issues) {
    if (i.path[0] !== "flags" || i.path.length < 2) return undefined;
    const key = String(i.path[1]);
    if (!out.has(key)) out.set(key, `${i.path.join(".")}: ${i.message}`);
  }
  return out.size === 0 ? undefined : out;
}

/** A flagged route, compiled per table. `choose` never throws. */
export class RouteFlagEvaluator {
  /** Context attribute of each header source, and the header's lower-case name. */
  private readonly headerAttrs: readonly string[];
  private readonly headerNames: readonly string[];
  private readonly cookieAttrs: readonly string[];
  private readonly cookieNames: readonly string[];
  private readonly choices: ReadonlyMap<string, FlagRouteChoice>;

  /**
   * Undefined when the route has no flag or the table's flags cannot serve it (the flag is
   * missing or was left out): the route then costs nothing per request.
   */
  static compile(options: { route: string; flag: RouteFlag | undefined; flags: CompiledFlagSet | undefined; metrics: GatewayMetrics }): RouteFlagEvaluator | undefined {
    const { flag, flags } = options;
    if (flag === undefined || flags === undefined || !flags.keys().includes(flag.key)) return undefined;
    const choices = new Map<string, FlagRouteChoice>();
    for (const [variant, target] of Object.entries(flag.variants)) {
      choices.set(variant, {
        variant,
        service: target.service,
        version: target.version,
        cell: options.metrics.flagRoute(options.route, flag.key, variant),
        measure: options.metrics.flagVariant(options.route, flag.key, variant),
      });
    }
    return new RouteFlagEvaluator(flag, flags, choices, (variant) => options.metrics.flagVariant(options.route, flag.key, variant));
  }

  /** Cells of the variants the route does not list (they take the plain route), made on first use. */
  private readonly unlisted = new Map<string, FlagVariantCell>();

  private constructor(
    readonly flag: RouteFlag,
    private readonly flags: CompiledFlagSet,
    choices: Map<string, FlagRouteChoice>,
    private readonly measureCell: (variant: string) => FlagVariantCell,
  ) {
    const headerAttrs: string[] = [];
    const headerNames: string[] = [];
    const cookieAttrs: string[] = [];
    const cookieNames: string[] = [];
    for (const [attr, source] of Object.entries(flag.context)) {
      if (source.header !== undefined) {
        headerAttrs.push(attr);
        headerNames.push(source.header.toLowerCase());
      } else if (source.cookie !== undefined) {
        cookieAttrs.push(attr);
        cookieNames.push(source.cookie);
      }
    }
    this.headerAttrs = headerAttrs;
    this.headerNames = headerNames;
    this.cookieAttrs = cookieAttrs;
    this.cookieNames = cookieNames;
    this.choices = choices;
  }

  get key(): string {
    return this.flag.key;
  }

  /**
   * Where the request goes by the flag: the listed variant it evaluates to. Undefined (route as
   * without a flag) when the flag errs, is disabled, or gives a variant the route does not list.
   * `rawHeaders` is node's flat [name, value, …] list (the first of repeated headers counts);
   * `cookies` the joined Cookie header.
   */
  choose(rawHeaders: readonly string[], cookies: string | undefined): FlagRouteChoice | undefined {
    const variant = this.variantOf(rawHeaders, cookies);
    return variant === undefined ? undefined : this.choices.get(variant);
  }

  /** The variant the flag gives the request; undefined when it errs or is disabled. Never throws. */
  private variantOf(rawHeaders: readonly string[], cookies: string | undefined): string | undefined {
    const context: EvaluationContext = {};
    const names = this.headerNames;
    const wanted = names.length;
    if (wanted > 0) {
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = rawHeaders[i]!;
        for (let k = 0; k < wanted; k++) {
          if (!sameHeaderName(name, names[k]!)) continue;
          const attr = this.headerAttrs[k]!;
          if (!Object.hasOwn(context, attr)) context[attr] = rawHeaders[i + 1]!;
        }
      }
    }
    if (cookies !== undefined) {
      for (let k = 0; k < this.cookieNames.length; k++) {
        const value = readCookie(cookies, this.cookieNames[k]!);
        const attr = this.cookieAttrs[k]!;
        if (value !== undefined && !Object.hasOwn(context, attr)) context[attr] = value;
      }
    }
    try {
      const result = this.flags.evaluate(this.flag.key, context);
      if (result.reason === "ERROR" || result.reason === "DISABLED") return undefined;
      return result.variant;
    } catch {
      // The engine answers errors as results; this is for a bug, which must not cost the request.
      return undefined;
    }
  }

  /**
   * `route`, and also for a variant the route does not list (the request takes the plain route,
   * measured under that variant, as an experiment's control usually is). Undefined, neither
   * routed nor measured, when the flag errs or is disabled, or when a listed variant's service has
   * no ready endpoint (the plain route serves it, so its outcome says nothing of the variant).
   */
  decide<S extends { readonly endpoints: readonly unknown[] }>(
    services: ReadonlyMap<string, S>,
    own: S | undefined,
    rawHeaders: readonly string[],
    cookies: string | undefined,
  ): FlagDecision<S> | undefined {
    const variant = this.variantOf(rawHeaders, cookies);
    if (variant === undefined) return undefined;
    const choice = this.choices.get(variant);
    if (choice === undefined) {
      let measure = this.unlisted.get(variant);
      if (measure === undefined) this.unlisted.set(variant, (measure = this.measureCell(variant)));
      return { variant, measure, target: undefined };
    }
    const service = choice.service === undefined ? own : services.get(choice.service);
    if (service === undefined || service.endpoints.length === 0) return undefined;
    choice.cell.count++;
    return { variant, measure: choice.measure, target: { service, choice } };
  }

  /**
   * `choose`, resolved against the table's services: the service the request goes to (`own`,
   * the route's, when the variant names none) with the version to pin, counted. Undefined, so
   * the route acts as without a flag, also when the variant's service has no ready endpoint.
   */
  route<S extends { readonly endpoints: readonly unknown[] }>(
    services: ReadonlyMap<string, S>,
    own: S | undefined,
    rawHeaders: readonly string[],
    cookies: string | undefined,
  ): { service: S; choice: FlagRouteChoice } | undefined {
    const choice = this.choose(rawHeaders, cookies);
    if (choice === undefined) return undefined;
    const service = choice.service === undefined ? own : services.get(choice.service);
    if (service === undefined || service.endpoints.length === 0) return undefined;
    choice.cell.count++;
    return { service, choice };
  }
}
