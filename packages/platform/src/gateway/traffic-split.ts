// Which release of a service a request goes to (canary, blue-green, A/B). The first of these
// that names a release with an available endpoint wins: the x-keelson-version pin (a label such
// as "canary" or a release id) > the version its route's flag chose (route-flag.ts) > the
// split's match rules (headers, cookies) > the sticky cookie
// it got the first time > a weighted choice from the hash of its affinity header or cookie >
// a weighted random choice.
import type { Affinity, MatchRule, StringMatch, TrafficSplit } from "@keelson/protocol";
import { VERSION_COOKIE_PREFIX } from "@keelson/protocol";
import type { GatewayLogger } from "./logger.js";
import type { Random } from "./random.js";

/** The endpoints of one release, as far as the split cares. */
export interface ReleaseGroupLike {
  readonly release: string;
  /** Endpoints that take traffic now (not ejected). */
  readonly available: { readonly items: readonly unknown[] };
}

/**
 * The weighted choice of a split, over the releases that have an available endpoint: a
 * release whose endpoints are all gone or ejected gives its share to the others. Rebuild the
 * sums with `refresh()` whenever availability changes; picks are then O(releases).
 */
export class ReleasePicker<G extends ReleaseGroupLike> {
  private chosen: G[] = [];
  private cumulative: number[] = [];
  private total = 0;
  private readonly pins = new Map<string, G>();

  constructor(
    private readonly weights: ReadonlyArray<{ group: G; weight: number }>,
    groups: Iterable<G>,
    labels: ReadonlyMap<string, string>,
  ) {
    const byRelease = new Map<string, G>();
    for (const g of groups) byRelease.set(g.release, g);
    // Labels first, so a release id that happens to equal a label of another release loses.
    for (const [label, release] of labels) {
      const g = byRelease.get(release);
      if (g !== undefined) this.pins.set(label, g);
    }
    for (const [release, g] of byRelease) if (!this.pins.has(release)) this.pins.set(release, g);
    this.refresh();
  }

  refresh(): void {
    this.chosen = [];
    this.cumulative = [];
    let sum = 0;
    for (const { group, weight } of this.weights) {
      if (weight <= 0 || group.available.items.length === 0) continue;
      sum += weight;
      this.chosen.push(group);
      this.cumulative.push(sum);
    }
    this.total = sum;
  }

  /** A release by weight; undefined when no weighted release has an available endpoint. */
  pick(random: Random): G | undefined {
    const n = this.chosen.length;
    if (n <= 1) return this.chosen[0];
    return this.at(random());
  }

  /**
   * The release at `fraction` (in [0, 1)) of the weights, walked in the split's order: with the
   * canary listed first, a fraction that lands on it at weight 10 still does at weight 50.
   */
  at(fraction: number): G | undefined {
    const n = this.chosen.length;
    if (n <= 1) return this.chosen[0];
    const x = fraction * this.total;
    for (let i = 0; i < n - 1; i++) if (x < this.cumulative[i]!) return this.chosen[i];
    return this.chosen[n - 1];
  }

  /** The release a pin names (label or release id), if it has an available endpoint. */
  pinned(name: string): G | undefined {
    const g = this.pins.get(name);
    return g !== undefined && g.available.items.length > 0 ? g : undefined;
  }
}

/** Name of the sticky cookie of a service. */
export function stickyCookieName(service: string): string {
  return `${VERSION_COOKIE_PREFIX}${encodeURIComponent(service)}`;
}

/** The Set-Cookie value that pins a client to `release` of `service`. */
export function stickyCookie(service: string, release: string): string {
  return `${stickyCookieName(service)}=${encodeURIComponent(release)}; Path=/; HttpOnly; SameSite=Lax`;
}

/**
 * The value of cookie `name` in a Cookie header (`a=1; keelson-v-web=r-2`), or undefined.
 * Allocates only for a hit.
 */
export function readCookie(header: string, name: string): string | undefined {
  let from = 0;
  for (;;) {
    const i = header.indexOf(name, from);
    if (i === -1) return undefined;
    from = i + name.length;
    if (header.charCodeAt(from) !== 61 /* = */) continue;
    // Must start a cookie: at the beginning, or after ";" and optional spaces.
    let k = i - 1;
    while (k >= 0 && header.charCodeAt(k) === 32) k--;
    if (k >= 0 && header.charCodeAt(k) !== 59 /* ; */) continue;
    const end = header.indexOf(";", from);
    let value = header.slice(from + 1, end === -1 ? header.length : end).trim();
    if (value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34) value = value.slice(1, -1);
    try {
      return decodeURIComponent(value);
    } catch {
      return undefined;
    }
  }
}

/** Labels of a split (label → release). */
export function splitLabels(split: TrafficSplit | undefined): Map<string, string> {
  const labels = new Map<string, string>();
  for (const w of split?.weights ?? []) if (w.label !== undefined && w.label.length > 0) labels.set(w.label, w.release);
  return labels;
}

// --- A/B match rules ---

const EXACT = 0;
const PREFIX = 1;
const REGEX = 2;

/** A compiled `StringMatch`. */
class ValueMatch {
  constructor(
    private readonly kind: typeof EXACT | typeof PREFIX | typeof REGEX,
    private readonly text: string,
    private readonly regex: RegExp | undefined,
  ) {}

  test(value: string): boolean {
    switch (this.kind) {
      case EXACT:
        return value === this.text;
      case PREFIX:
        return value.startsWith(this.text);
      case REGEX:
        return this.regex!.test(value);
    }
  }
}

interface CompiledRule<G> {
  readonly group: G;
  /** Index into `MatchRules.headers` of each header condition. */
  readonly headerSlots: readonly number[];
  readonly headerMatches: readonly ValueMatch[];
  readonly cookieNames: readonly string[];
  readonly cookieMatches: readonly ValueMatch[];
}

/**
 * Regular expressions of a service's rules, compiled once and carried from one routing table
 * to the next, so a pattern is compiled (and an invalid one reported) once, not per table.
 */
export class PatternCache {
  private readonly compiled = new Map<string, RegExp | undefined>();

  constructor(private previous: PatternCache | undefined) {}

  /** Forgets the previous table's cache (so caches do not chain across tables); call once compiled. */
  seal(): void {
    this.previous = undefined;
  }

  /** The anchored expression of `pattern`; undefined (after one warning) when it does not compile. */
  get(pattern: string, log: GatewayLogger, facts: object): RegExp | undefined {
    if (this.compiled.has(pattern)) return this.compiled.get(pattern);
    let regex: RegExp | undefined;
    if (this.previous?.compiled.has(pattern) === true) {
      regex = this.previous.compiled.get(pattern);
    } else {
      try {
        // Anchored, as in Envoy and Istio: `beta` does not match "not-beta".
        regex = new RegExp(`^(?:${pattern})$`);
      } catch (err) {
        log.warn({ ...facts, regex: pattern, err: (err as Error).message }, "ignoring a traffic match rule whose regex does not compile");
      }
    }
    this.compiled.set(pattern, regex);
    return regex;
  }
}

/**
 * The match rules of a split, compiled when the routing table is loaded. A request reads only
 * the headers the rules name (one pass over its raw headers, into a reused scratch array).
 */
export class MatchRules<G extends ReleaseGroupLike> {
  /** Lower-case names of the headers the rules read, each once. */
  readonly headers: readonly string[];
  private readonly rules: ReadonlyArray<CompiledRule<G>>;
  /** Header values of the request being matched, by slot; reused (matching is synchronous). */
  private readonly values: Array<string | undefined>;

  /** Undefined when no rule is usable (none, or all name a release without endpoints or hold a bad regex). */
  static compile<G extends ReleaseGroupLike>(options: {
    service: string;
    rules: readonly MatchRule[];
    group(release: string): G | undefined;
    patterns: PatternCache;
    log: GatewayLogger;
  }): MatchRules<G> | undefined {
    const headers: string[] = [];
    const rules: Array<CompiledRule<G>> = [];
    options.rules.forEach((rule, index) => {
      // A release with no endpoint in this table cannot take the traffic; the next table may bring it.
      const group = options.group(rule.release);
      if (group === undefined) return;
      const compile = (m: StringMatch, facts: object): ValueMatch | undefined => {
        if (m.exact !== undefined) return new ValueMatch(EXACT, m.exact, undefined);
        if (m.prefix !== undefined) return new ValueMatch(PREFIX, m.prefix, undefined);
        if (m.regex === undefined) return undefined;
        const regex = options.patterns.get(m.regex, options.log, { service: options.service, rule: index, ...facts });
        return regex === undefined ? undefined : new ValueMatch(REGEX, m.regex, regex);
      };
      const headerSlots: number[] = [];
      const headerMatches: ValueMatch[] = [];
      for (const [name, m] of Object.entries(rule.headers ?? {})) {
        const lower = name.toLowerCase();
        const match = compile(m, { header: lower });
        if (match === undefined) return;
        let slot = headers.indexOf(lower);
        if (slot === -1) slot = headers.push(lower) - 1;
        headerSlots.push(slot);
        headerMatches.push(match);
      }
      const cookieNames: string[] = [];
      const cookieMatches: ValueMatch[] = [];
      for (const [name, m] of Object.entries(rule.cookies ?? {})) {
        const match = compile(m, { cookie: name });
        if (match === undefined) return;
        cookieNames.push(name);
        cookieMatches.push(match);
      }
      if (headerSlots.length + cookieNames.length === 0) return;
      rules.push({ group, headerSlots, headerMatches, cookieNames, cookieMatches });
    });
    return rules.length === 0 ? undefined : new MatchRules(headers, rules);
  }

  private constructor(headers: string[], rules: Array<CompiledRule<G>>) {
    this.headers = headers;
    this.rules = rules;
    this.values = new Array<string | undefined>(headers.length).fill(undefined);
  }

  /**
   * The release of the first rule the request satisfies whose release has an available
   * endpoint. `rawHeaders` is node's flat [name, value, …] list; `cookies` the joined Cookie header.
   */
  choose(rawHeaders: readonly string[], cookies: string | undefined): G | undefined {
    const names = this.headers;
    const values = this.values;
    const wanted = names.length;
    if (wanted > 0) {
      values.fill(undefined);
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = rawHeaders[i]!;
        for (let k = 0; k < wanted; k++) {
          if (!sameHeaderName(name, names[k]!)) continue;
          const value = rawHeaders[i + 1]!;
          const seen = values[k];
          // Repeated headers are one comma-separated value (RFC 9110 §5.3), as node joins them.
          values[k] = seen === undefined ? value : `${seen}, ${value}`;
          break;
        }
      }
    }
    const rules = this.rules;
    next: for (let r = 0; r < rules.length; r++) {
      const rule = rules[r]!;
      if (rule.group.available.items.length === 0) continue;
      const slots = rule.headerSlots;
      for (let c = 0; c < slots.length; c++) {
        const value = values[slots[c]!];
        if (value === undefined || !rule.headerMatches[c]!.test(value)) continue next;
      }
      const cookieNames = rule.cookieNames;
      if (cookieNames.length > 0) {
        if (cookies === undefined) continue;
        for (let c = 0; c < cookieNames.length; c++) {
          const value = readCookie(cookies, cookieNames[c]!);
          if (value === undefined || !rule.cookieMatches[c]!.test(value)) continue next;
        }
      }
      return rule.group;
    }
    return undefined;
  }
}

/** Whether raw header name `name` equals `lower` (already lower-case), ignoring ASCII case, without allocating. */
export function sameHeaderName(name: string, lower: string): boolean {
  const n = name.length;
  if (n !== lower.length) return false;
  for (let i = 0; i < n; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

// --- user affinity ---

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** Feeds the UTF-8 bytes of `text` into a 32-bit FNV-1a state, without encoding it into a buffer. */
function fnv1a(state: number, text: string): number {
  let h = state;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
    } else {
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
        const low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low < 0xe000) {
          i++;
          c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
          h = Math.imul(h ^ (0xf0 | (c >> 18)), FNV_PRIME);
          h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), FNV_PRIME);
          h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
          h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
          continue;
        }
      }
      // A lone surrogate is encoded as U+FFFD, as TextEncoder does.
      if (c >= 0xd800 && c < 0xe000) c = 0xfffd;
      h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return h;
}

/** murmur3's finalizer: spreads FNV's weakly mixed high bits, which decide the release. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The affinity hash of a user: FNV-1a (32-bit) over the UTF-8 bytes of `service + "\0" + value`,
 * finished with murmur3's fmix32. Stable across processes, restarts and machines.
 *
 * @example
 * affinityHash("web", "user-42") / 2 ** 32 // the user's place in [0, 1) along the weights
 */
export function affinityHash(service: string, value: string): number {
  return fmix32(fnv1a(affinitySeed(service), value));
}

/** The FNV-1a state after `service + "\0"`, computed once per service and table. */
function affinitySeed(service: string): number {
  return fnv1a(fnv1a(FNV_OFFSET, service), "\0");
}

/** A split's `affinity`, compiled per routing table: where a request's user key comes from. */
export class UserAffinity {
  /** Lower-case header name, or undefined for a cookie. */
  private readonly header: string | undefined;
  private readonly cookie: string | undefined;
  private readonly seed: number;

  constructor(service: string, affinity: Affinity) {
    this.header = affinity.header?.toLowerCase();
    this.cookie = affinity.header === undefined ? affinity.cookie : undefined;
    this.seed = affinitySeed(service);
  }

  /** The request's place in [0, 1) along the weights; undefined when it carries no (or an empty) key. */
  fraction(rawHeaders: readonly string[], cookies: string | undefined): number | undefined {
    let key: string | undefined;
    const header = this.header;
    if (header !== undefined) {
      for (let i = 0; i < rawHeaders.length; i += 2) {
        if (sameHeaderName(rawHeaders[i]!, header)) {
          key = rawHeaders[i + 1]!;
          break;
        }
      }
    } else if (cookies !== undefined) {
      key = readCookie(cookies, this.cookie!);
    }
    if (key === undefined || key.length === 0) return undefined;
    return fmix32(fnv1a(this.seed, key)) / 4_294_967_296;
  }
}
