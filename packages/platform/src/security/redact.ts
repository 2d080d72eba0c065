// Redaction: replaces secret values (as given, JSON-escaped and base64-encoded) with
// "[redacted]" in logs, events and API answers before they leave the control plane.

/** What a redacted value is replaced with. */
export const REDACTED = "[redacted]";

/**
 * Values shorter than this are not redacted: a 3-letter secret such as "dev" or "yes"
 * also occurs in ordinary text, so redacting it would mangle logs without protecting
 * anything. Secrets that matter are longer than this.
 */
export const MIN_REDACTED_LENGTH = 6;

export interface Redactor {
  /** `text` with every occurrence of a secret replaced; the same string when none occurs. */
  redact(text: string): string;
  /** A copy of `value` with every string inside (arrays and plain objects, any depth) redacted. Keys are kept. */
  redactDeep(value: unknown): unknown;
  /** How many distinct secret values are redacted (short ones are not counted). */
  readonly size: number;
}

/**
 * A redactor for a set of secret values. Each value is also matched in its JSON-escaped
 * form (as it appears inside a JSON document) and its base64 and base64url forms (as in a
 * basic-auth header). Occurrences that overlap are redacted together, so no part of an
 * overlapping secret survives. Values shorter than {@link MIN_REDACTED_LENGTH} are ignored.
 *
 * @example
 * const { redact } = createRedactor(["hunter2-long"]);
 * redact("password=hunter2-long") // "password=[redacted]"
 */
export function createRedactor(values: Iterable<string>): Redactor {
  const secrets = new Set<string>();
  for (const value of values) {
    if (typeof value === "string" && value.length >= MIN_REDACTED_LENGTH) secrets.add(value);
  }
  const patterns = new Set<string>();
  for (const secret of secrets) {
    for (const form of formsOf(secret)) patterns.add(form);
  }
  if (patterns.size === 0) {
    return { redact: (text) => text, redactDeep: (value) => value, size: 0 };
  }
  // Longest first: at one position the regex takes the first alternative that matches.
  const alternatives = [...patterns].sort((a, b) => b.length - a.length).map(escapeRegExp);
  // A lookahead finds a match at every position, including ones inside an earlier match,
  // so overlapping secrets are both found; their spans are merged below.
  const finder = new RegExp(`(?=(${alternatives.join("|")}))`, "g");
  const shortest = Math.min(...[...patterns].map((p) => p.length));

  function redact(text: string): string {
    if (text.length < shortest) return text;
    let out = "";
    let spanStart = -1;
    let spanEnd = -1;
    let copied = 0;
    for (const match of text.matchAll(finder)) {
      const start = match.index;
      const end = start + (match[1] ?? "").length;
      if (start <= spanEnd) {
        spanEnd = Math.max(spanEnd, end);
        continue;
      }
      if (spanStart >= 0) {
        out += text.slice(copied, spanStart) + REDACTED;
        copied = spanEnd;
      }
      spanStart = start;
      spanEnd = end;
    }
    if (spanStart < 0) return text;
    return out + text.slice(copied, spanStart) + REDACTED + text.slice(spanEnd);
  }

  function redactDeep(value: unknown): unknown {
    return walk(value, redact, new WeakMap());
  }

  return { redact, redactDeep, size: secrets.size };
}

function formsOf(secret: string): string[] {
  const bytes = Buffer.from(secret, "utf8");
  const base64 = bytes.toString("base64");
  const escaped = JSON.stringify(secret).slice(1, -1);
  return [
    secret,
    escaped,
    // A JSON log line (the SDK's logger) sent inside a JSON answer is escaped twice.
    JSON.stringify(escaped).slice(1, -1),
    base64,
    base64.replace(/=+$/, ""),
    bytes.toString("base64url"),
  ];
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

function walk(value: unknown, redact: (text: string) => string, seen: WeakMap<object, unknown>): unknown {
  if (typeof value === "string") return redact(value);
  if (typeof value !== "object" || value === null) return value;
  const known = seen.get(value);
  if (known !== undefined) return known;
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    seen.set(value, copy);
    for (const item of value) copy.push(walk(item, redact, seen));
    return copy;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  // Class instances (Date, Buffer, Map, ...) are passed through: walking their fields would
  // lose what they are, and their text form is produced (and redacted) by whoever logs them.
  if (proto !== Object.prototype && proto !== null) return value;
  const copy: Record<string, unknown> = {};
  seen.set(value, copy);
  for (const [key, item] of Object.entries(value)) {
    // defineProperty keeps a "__proto__" key as data instead of setting the prototype.
    Object.defineProperty(copy, key, { value: walk(item, redact, seen), enumerable: true, writable: true, configurable: true });
  }
  return copy;
}
