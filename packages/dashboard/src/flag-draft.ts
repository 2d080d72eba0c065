// The flag editor's draft: the editable fields as text (variants and targeting as JSON), checked
// for JSON syntax in the browser before anything is sent, and turned back into a definition that
// keeps every field the editor does not show (type, owner, prerequisites, safeVariant, metadata
// but the kill switch's marks).
import type { FlagDefinition } from "@keelson/protocol";
import type { FieldIssue } from "./flags-api.js";

export interface FlagDraft {
  state: "ENABLED" | "DISABLED";
  defaultVariant: string;
  /** JSON: variant name → value. */
  variants: string;
  /** JSON (JsonLogic); empty for no targeting. */
  targeting: string;
  description: string;
}

/** "No targeting" as flagd reads it: absent, null or `{}`. */
export function isNoTargeting(targeting: unknown): boolean {
  return targeting === undefined || targeting === null || (typeof targeting === "object" && !Array.isArray(targeting) && Object.keys(targeting).length === 0);
}

/** JSON with object keys sorted, so two values compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]])) : v,
  );
}

export function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** The draft of a stored definition. */
export function draftOf(flag: FlagDefinition): FlagDraft {
  return {
    state: flag.state,
    defaultVariant: flag.defaultVariant,
    variants: JSON.stringify(flag.variants, null, 2),
    targeting: isNoTargeting(flag.targeting) ? "" : JSON.stringify(flag.targeting, null, 2),
    description: flag.description ?? "",
  };
}

export type JsonField = { ok: true; value: unknown } | { ok: false; message: string };

/** Line and column (1-based) of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split("\n");
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 };
}

/**
 * Where and why `text` is not JSON: a small scanner for the browser's sake, since engines word
 * JSON.parse's errors differently and V8 often names no position. Undefined for valid JSON.
 */
export function jsonSyntaxError(text: string): { offset: number; message: string } | undefined {
  let i = 0;
  const fail = (message: string, at = i): never => {
    throw new JsonSyntax(message, at);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i] as string)) i++;
  };
  const describe = () => (i >= text.length ? "the end" : JSON.stringify(text[i]));
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(`expected a value, found ${describe()}`);
  };
  const string = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) fail("a string cannot span lines (use \\n)");
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail("expected four hex digits after \\u");
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail(`unknown escape \\${text[i] ?? ""}`);
      }
      i++;
    }
    if (i >= text.length) fail("unterminated string", start);
    i++;
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (m === null || m[0] === "" || m[0] === "-") return fail(`expected a value, found ${describe()}`);
    i += m[0].length;
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === "{") {
      i++;
      space();
      if (text[i] === "}") return void i++;
      for (;;) {
        space();
        if (text[i] !== '"') fail(text[i] === "}" ? "a trailing comma before }" : `expected a "quoted" property name, found ${describe()}`);
        string();
        space();
        if (text[i] !== ":") fail(`expected ":" after the property name, found ${describe()}`);
        i++;
        value();
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return void i++;
        else fail(`expected "," or "}", found ${describe()}`);
      }
    }
    if (c === "[") {
      i++;
      space();
      if (text[i] === "]") return void i++;
      for (;;) {
        space();
        if (text[i] === "]") fail("a trailing comma before ]");
        value();
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return void i++;
        else fail(`expected "," or "]", found ${describe()}`);
      }
    }
    if (c === '"') return string();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    return number();
  };
  try {
    value();
    space();
    if (i < text.length) fail(`unexpected ${describe()} after the value`);
    return undefined;
  } catch (err) {
    if (err instanceof JsonSyntax) return { offset: err.offset, message: err.message };
    throw err;
  }
}

class JsonSyntax extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/**
 * Parses a JSON field; empty text is `undefined`. A syntax error says where, as line and column.
 *
 * @example
 * parseJsonField('{"if": [}'); // { ok: false, message: "not valid JSON at line 1, column 9: expected a value, found \"}\"" }
 */
export function parseJsonField(text: string): JsonField {
  if (text.trim() === "") return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    const found = jsonSyntaxError(text);
    if (found === undefined) return { ok: false, message: `not valid JSON: ${(err as Error).message}` };
    const at = lineColumn(text, found.offset);
    return { ok: false, message: `not valid JSON at line ${at.line}, column ${at.column}: ${found.message}` };
  }
}

/** The variant names the draft offers for the default variant: its own if its JSON reads, else the stored ones. */
export function variantNames(draft: FlagDraft, flag: FlagDefinition): string[] {
  const parsed = parseJsonField(draft.variants);
  const source = parsed.ok && isPlainObject(parsed.value) ? parsed.value : flag.variants;
  const names = Object.keys(source);
  return names.includes(draft.defaultVariant) || draft.defaultVariant === "" ? names : [...names, draft.defaultVariant];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * The definition to PUT: `flag` with the draft's fields, or the problems the browser can see
 * (JSON syntax, variants not an object). Everything else is the API's to judge.
 */
export function definitionFromDraft(flag: FlagDefinition, draft: FlagDraft): { ok: true; definition: FlagDefinition } | { ok: false; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  const variants = parseJsonField(draft.variants);
  if (!variants.ok) issues.push({ field: "variants", path: "variants", message: variants.message });
  else if (!isPlainObject(variants.value)) issues.push({ field: "variants", path: "variants", message: 'expected a JSON object of variant name → value, e.g. {"on": true, "off": false}' });
  const targeting = parseJsonField(draft.targeting);
  if (!targeting.ok) issues.push({ field: "targeting", path: "targeting", message: targeting.message });
  if (issues.length > 0 || !variants.ok || !targeting.ok) return { ok: false, issues };

  const definition: FlagDefinition = { ...flag, state: draft.state, defaultVariant: draft.defaultVariant, variants: variants.value as FlagDefinition["variants"] };
  // Empty means no targeting; a stored "no targeting" ({} or null) stays as it was, so it is no change.
  if (targeting.value !== undefined) definition.targeting = targeting.value;
  else if (!isNoTargeting(flag.targeting)) delete definition.targeting;
  if (draft.description.trim() !== "") definition.description = draft.description;
  else if (flag.description !== "") delete definition.description;
  // An edit ends a kill: the marks the kill switch left would claim the flag is still killed.
  if (isKilled(flag)) {
    const { killedAt: _at, killedBy: _by, ...rest } = flag.metadata ?? {};
    if (Object.keys(rest).length > 0) definition.metadata = rest;
    else delete definition.metadata;
  }
  return { ok: true, definition };
}

/** The kill switch's marks are on the flag (metadata killedAt, killedBy). */
export function isKilled(flag: FlagDefinition): boolean {
  return flag.metadata?.killedAt !== undefined || flag.metadata?.killedBy !== undefined;
}
