// Which release of a service a request goes to: a weighted choice across releases (canary,
// blue-green), unless the request pins one with the x-keelson-version header (a label such as
// "canary" or a release id) or, for sticky splits, with the cookie it got the first time.
import type { TrafficSplit } from "@keelson/protocol";
import { VERSION_COOKIE_PREFIX } from "@keelson/protocol";
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
    const x = random() * this.total;
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
