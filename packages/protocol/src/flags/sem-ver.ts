// Semantic versions for flagd's `sem_ver` operator: lenient parsing as flagd does (a leading v/V,
// "1" and "1.2" shorthands, numbers from the context) and semver 2.0 precedence.

/** A parsed version; numeric parts stay strings so huge numbers compare exactly. */
export interface SemVer {
  readonly major: string;
  readonly minor: string;
  readonly patch: string;
  readonly prerelease: readonly string[];
}

export const SEM_VER_OPERATORS = ["=", "!=", "<", "<=", ">", ">=", "^", "~"] as const;
export type SemVerOperator = (typeof SEM_VER_OPERATORS)[number];

const NUM = "(0|[1-9]\\d*)";
const PRE_ID = "(?:0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*)";
const FULL = new RegExp(`^${NUM}\\.${NUM}\\.${NUM}(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$`);
const SHORT = new RegExp(`^${NUM}(?:\\.${NUM})?$`);

/**
 * Parses a version the way flagd's `sem_ver` accepts it: strings or numbers, an optional leading
 * "v"/"V", "1" and "1.2" as shorthands for "1.0.0" and "1.2.0" (without pre-release or build),
 * build metadata ignored. Anything else (e.g. "2.0.0.0", "01.2.3", booleans) is undefined.
 */
export function parseSemVer(raw: unknown): SemVer | undefined {
  let text: string;
  if (typeof raw === "string") text = raw;
  else if (typeof raw === "number" && Number.isFinite(raw)) text = String(raw);
  else return undefined;
  if (text.length > 256) return undefined;
  const cached = cache.get(text);
  if (cached !== undefined) return cached === null ? undefined : cached;
  const parsed = parseText(text);
  if (cache.size >= CACHE_SIZE) cache.clear(); // bounded: a flood of distinct versions only costs re-parsing
  cache.set(text, parsed === undefined ? null : Object.freeze(parsed));
  return parsed;
}

/** Versions seen in contexts repeat (a few app versions per fleet): parse each once. */
const CACHE_SIZE = 1024;
const cache = new Map<string, Readonly<SemVer> | null>();

function parseText(input: string): SemVer | undefined {
  let text = input;
  const first = text.charCodeAt(0);
  if (first === 118 /* v */ || first === 86 /* V */) text = text.slice(1);
  const full = FULL.exec(text);
  if (full) {
    return { major: full[1] as string, minor: full[2] as string, patch: full[3] as string, prerelease: full[4] === undefined ? [] : full[4].split(".") };
  }
  const short = SHORT.exec(text);
  if (short) return { major: short[1] as string, minor: short[2] ?? "0", patch: "0", prerelease: [] };
  return undefined;
}

/** Compares two numeric identifiers without leading zeros, exactly, whatever their size. */
function compareNumeric(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const DIGITS = /^\d+$/;

function comparePrerelease(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 0 : a.length === 0 ? 1 : -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (x === y) continue;
    const xNum = DIGITS.test(x);
    const yNum = DIGITS.test(y);
    if (xNum && yNum) return compareNumeric(x, y);
    if (xNum !== yNum) return xNum ? -1 : 1; // numeric identifiers have lower precedence
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Semver 2.0 precedence: negative, zero or positive. Build metadata never counts. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  return compareNumeric(a.major, b.major) || compareNumeric(a.minor, b.minor) || compareNumeric(a.patch, b.patch) || comparePrerelease(a.prerelease, b.prerelease);
}

export function isSemVerOperator(op: unknown): op is SemVerOperator {
  return typeof op === "string" && (SEM_VER_OPERATORS as readonly string[]).includes(op);
}

/** Each `sem_ver` operator as a test; "^" is same major, "~" same major and minor. */
export const SEM_VER_TESTS: Readonly<Record<SemVerOperator, (a: SemVer, b: SemVer) => boolean>> = Object.freeze({
  "=": (a, b) => compareSemVer(a, b) === 0,
  "!=": (a, b) => compareSemVer(a, b) !== 0,
  "<": (a, b) => compareSemVer(a, b) < 0,
  "<=": (a, b) => compareSemVer(a, b) <= 0,
  ">": (a, b) => compareSemVer(a, b) > 0,
  ">=": (a, b) => compareSemVer(a, b) >= 0,
  "^": (a, b) => a.major === b.major,
  "~": (a, b) => a.major === b.major && a.minor === b.minor,
});

/** Applies a `sem_ver` operator. */
export function testSemVer(a: SemVer, op: SemVerOperator, b: SemVer): boolean {
  return SEM_VER_TESTS[op](a, b);
}
