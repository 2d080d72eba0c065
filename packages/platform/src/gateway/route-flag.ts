// Routing by feature flag: the flags a routing table carries, checked and compiled once per table
// with the same engine the control plane uses, and each flagged route's evaluator, which reads
// only the headers and cookies its context names and answers the variant's service and version,
// with the cell that measures the request's outcome and duration under its variant.
import type { CompiledFlagSet, EvaluationContext, FlagIssue, RouteFlag, RoutingTable } from "@keelson/protocol";
import { checkFlagSet, compileFlagSet } from "@keelson/protocol";
import type { FlagRouteCell, FlagVariantCell, GatewayMetrics } from "./gateway-metrics.js";
import { NONE_LABEL } from "./gateway-metrics.js";
import type { GatewayLogger } from "./logger.js";
import { readCookie, sameHeaderName } from "./traffic-split.js";

/** Where a variant sends a request; made once per variant and table, so deciding allocates nothing. */
export interface FlagRouteChoice {
  readonly variant: string;
  /** False for a variant the route does not list: the plain route serves it (measured under the variant). */
  readonly listed: boolean;
  /** Service instead of the route's; undefined: the route's own. */
  readonly service: string | undefined;
  /** Release id or split label to pin to; undefined: the usual release choice. */
  readonly version: string | undefined;
  /** Counts the requests the choice was applied to (sent to a listed variant's target). */
  readonly cell: FlagRouteCell;
  /** Counts their outcomes and times them (`GatewayMetrics.recordFlag`). */
  readonly measure: FlagVariantCell;
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

/** A flagged route, compiled per table. `choose` and `decide` never throw. */
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
    const { metrics, route } = options;
    const choices = new Map<string, FlagRouteChoice>();
    for (const [variant, target] of Object.entries(flag.variants)) {
      choices.set(variant, {
        variant,
        listed: true,
        service: target.service,
        version: target.version,
        cell: metrics.flagRoute(route, flag.key, variant),
        measure: metrics.flagVariant(route, flag.key, variant),
      });
    }
    // A variant the route does not list: the plain route, measured under the variant.
    const unlisted = (variant: string): FlagRouteChoice => ({
      variant,
      listed: false,
      service: undefined,
      version: undefined,
      cell: metrics.flagRoute(route, flag.key, variant),
      measure: metrics.flagVariant(route, flag.key, variant),
    });
    return new RouteFlagEvaluator(flag, flags, choices, unlisted, metrics.flagVariant(route, flag.key, NONE_LABEL));
  }

  /** Choices of the variants the route does not list, made on first use. */
  private readonly unlisted = new Map<string, FlagRouteChoice>();

  private constructor(
    readonly flag: RouteFlag,
    private readonly flags: CompiledFlagSet,
    choices: Map<string, FlagRouteChoice>,
    private readonly unlistedChoice: (variant: string) => FlagRouteChoice,
    /** Where requests the flag gave no variant are counted (`unassigned`, under the variant `none`). */
    private readonly noVariant: FlagVariantCell,
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
   * Decides one request (or WebSocket upgrade) by the flag. Every decided request counts once in
   * the flag's `keelson_gateway_flag_requests_total`, which is also how the control plane counts
   * the gateway's evaluations of the flag (stale flags):
   * - a listed variant whose service has a ready endpoint: its choice, counted; the caller sends
   *   the request to `serviceOf(choice)`, pins `choice.version` and records the outcome in
   *   `choice.measure`;
   * - a variant the route does not list: its choice (`listed: false`); the plain route serves
   *   the request, measured under the variant (as an experiment's control usually is);
   * - a listed variant whose service is unknown or has no ready endpoint: undefined, counted as an
   *   `error` of the variant (it could not take the request; the plain route serves it, and that
   *   outcome, which says nothing of the variant, is not measured);
   * - no variant (the flag is disabled, or its evaluation failed): undefined, counted as
   *   `unassigned`; the plain route serves it.
   * Allocates nothing but the evaluation context; never throws.
   */
  decide<S extends { readonly endpoints: readonly unknown[] }>(
    services: ReadonlyMap<string, S>,
    own: S | undefined,
    rawHeaders: readonly string[],
    cookies: string | undefined,
  ): FlagRouteChoice | undefined {
    const variant = this.variantOf(rawHeaders, cookies);
    if (variant === undefined) {
      this.noVariant.unassigned++;
      return undefined;
    }
    const choice = this.choices.get(variant);
    if (choice === undefined) {
      let other = this.unlisted.get(variant);
      if (other === undefined) this.unlisted.set(variant, (other = this.unlistedChoice(variant)));
      return other;
    }
    const service = this.serviceOf(choice, services, own);
    if (service === undefined || service.endpoints.length === 0) {
      choice.measure.error++;
      return undefined;
    }
    choice.cell.count++;
    return choice;
  }

  /** The service a choice sends requests to: the variant's, else the route's own (`own`). */
  serviceOf<S>(choice: FlagRouteChoice, services: ReadonlyMap<string, S>, own: S | undefined): S | undefined {
    return choice.service === undefined ? own : services.get(choice.service);
  }
}
