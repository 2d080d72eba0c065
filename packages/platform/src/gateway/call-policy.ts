// Zero-trust service-to-service calls: which verified callers may reach a service on the mesh
// listener, compiled from the routing table's `callers` into a lookup that costs well under a
// microsecond per request (bench/call-policy.mjs).
import type { CallerRule } from "@keelson/protocol";

interface CompiledRule {
  /** Path prefixes; undefined: every path. */
  readonly paths: readonly string[] | undefined;
  /** Upper-case methods; undefined: every method. */
  readonly methods: ReadonlySet<string> | undefined;
}

/** Who may call one service. Nobody, unless the table lists them. */
export class CallPolicy {
  static readonly DENY_ALL = new CallPolicy(new Map());

  private constructor(private readonly byCaller: ReadonlyMap<string, readonly CompiledRule[] | true>) {}

  /** Compiles a service's caller rules; a rule without paths and methods lets that caller do anything. */
  static compile(rules: readonly CallerRule[] | undefined): CallPolicy {
    if (rules === undefined || rules.length === 0) return CallPolicy.DENY_ALL;
    const byCaller = new Map<string, CompiledRule[] | true>();
    for (const r of rules) {
      if (byCaller.get(r.service) === true) continue;
      if (r.paths === undefined && r.methods === undefined) {
        byCaller.set(r.service, true);
        continue;
      }
      const list = (byCaller.get(r.service) as CompiledRule[] | undefined) ?? [];
      list.push({ paths: r.paths, methods: r.methods === undefined ? undefined : new Set(r.methods.map((m) => m.toUpperCase())) });
      byCaller.set(r.service, list);
    }
    return new CallPolicy(byCaller);
  }

  /**
   * Whether `caller` may send `method` to `path` (the request target; a query is ignored).
   * A path prefix matches at a segment boundary: "/charges" allows "/charges" and "/charges/1", not "/chargesX".
   */
  allows(caller: string, method: string, path: string): boolean {
    const rules = this.byCaller.get(caller);
    if (rules === undefined) return false;
    if (rules === true) return true;
    for (const rule of rules) {
      if (rule.methods !== undefined && !rule.methods.has(method)) continue;
      if (rule.paths === undefined) return true;
      for (const prefix of rule.paths) if (pathHasPrefix(path, prefix)) return true;
    }
    return false;
  }

  /** The callers listed (for admin state and denial messages). */
  callers(): string[] {
    return [...this.byCaller.keys()].sort();
  }
}

function pathHasPrefix(target: string, prefix: string): boolean {
  if (!target.startsWith(prefix)) return false;
  if (target.length === prefix.length || prefix.endsWith("/")) return true;
  const next = target.charCodeAt(prefix.length);
  return next === 47 /* / */ || next === 63 /* ? */;
}
