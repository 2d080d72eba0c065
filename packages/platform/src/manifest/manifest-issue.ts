// One problem found in a keelson.yaml, and how it is written for people:
// `keelson.yaml:14:7 services.orders.port: expected integer 1-65535, got "80a"`.

/** A problem in a manifest, with its place. Lines and columns count from 1. */
export interface ManifestIssue {
  /** The file as shown to the user: relative to the working directory, or as given. */
  file: string;
  line: number;
  column: number;
  /** Where in the document, e.g. `services.orders.port` or `services.orders.routes[0].path`; "" for the whole file. */
  path: string;
  /** What is wrong, e.g. `expected integer 1-65535, got "80a"`. */
  message: string;
  /** What the schema wanted, in words, e.g. `integer 1-65535`. */
  expected?: string;
  /** The value found, as written in messages, e.g. `"80a"`. */
  found?: string;
  /** How to fix it, e.g. "did you mean `readiness`?". */
  hint?: string;
}

/** One step into a document: a mapping key or a list index. */
export type PathSegment = string | number;

/**
 * An issue placed by its path in the document only; the loader turns the path into a line
 * and column. `at: "key"` points at the key itself (unknown or duplicate keys, bad names)
 * rather than its value.
 */
export interface PathIssue {
  path: readonly PathSegment[];
  at?: "key" | "value";
  message: string;
  expected?: string;
  found?: string;
  hint?: string;
}

const PLAIN_KEY = /^[A-Za-z_$][\w$-]*$/;

/**
 * A path as people read it: keys joined with ".", list indexes in brackets, keys that are not
 * plain names quoted.
 *
 * @example
 * formatIssuePath(["services", "orders", "routes", 0, "path"]); // "services.orders.routes[0].path"
 */
export function formatIssuePath(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** The one-line form of an issue, as listed in the error message. */
export function formatManifestIssue(issue: ManifestIssue): string {
  const place = `${issue.file}:${issue.line}:${issue.column}`;
  const what = issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`;
  return `${place} ${what}${issue.hint === undefined ? "" : `; ${issue.hint}`}`;
}

const MAX_SHOWN = 60;

/**
 * A value found in the document as shown in messages: strings quoted (and shortened when
 * long), numbers and booleans as written, collections by their kind.
 */
export function formatFoundValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") {
    const shown = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value;
    return JSON.stringify(shown);
  }
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}
