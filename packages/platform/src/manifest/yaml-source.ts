// Parses YAML text into plain data while keeping where every node sits, so that problems
// found later (by path) can be reported with a line and column; also finds what YAML itself
// lets through silently: duplicate keys, non-scalar keys, aliases to nowhere.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from "yaml";
import { formatIssuePath, type ManifestIssue, type PathSegment } from "./manifest-issue.js";

/** An issue with its place but without the file name, which the caller knows. */
export type PlacedIssue = Omit<ManifestIssue, "file">;

export interface SourcePosition {
  line: number;
  column: number;
}

export interface YamlSource {
  /** The document as plain data; undefined when the YAML could not be read. */
  data: unknown;
  /** True when the text is not usable YAML; `issues` then says why and `data` is undefined. */
  fatal: boolean;
  /** True when the document holds nothing but (maybe) comments. */
  empty: boolean;
  /** Problems in the YAML itself (syntax, duplicate keys…), with their places. */
  issues: PlacedIssue[];
  /**
   * The place of the node at `path`: its key with `at: "key"`, otherwise its value (or its key
   * when the value is empty). When the path does not exist, the deepest mapping or list that
   * does, which for a missing field is the mapping it belongs in.
   */
  locate(path: readonly PathSegment[], at?: "key" | "value"): SourcePosition;
}

/**
 * Reads YAML text. Merge keys (`<<: *base`) are allowed so that services can share settings.
 *
 * @example
 * const src = parseYamlSource("a:\n  b: 1\n");
 * src.data; // { a: { b: 1 } }
 * src.locate(["a", "b"]); // { line: 2, column: 6 }
 */
export function parseYamlSource(text: string): YamlSource {
  const lineCounter = new LineCounter();
  // uniqueKeys off: duplicate keys are found below, with a better message naming the first.
  // logLevel silent: yaml would otherwise print process warnings; every problem is an issue here.
  const doc = parseDocument(text, { keepSourceTokens: true, lineCounter, prettyErrors: false, uniqueKeys: false, merge: true, logLevel: "silent" });
  const at = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const issues: PlacedIssue[] = [];
  const errorLines = new Set<number>();
  for (const e of doc.errors) {
    // One broken line often yields several follow-on errors; the first says what is wrong.
    const place = at(e.pos[0]);
    if (errorLines.has(place.line)) continue;
    errorLines.add(place.line);
    issues.push({ ...place, path: "", message: e.message });
  }
  // Warnings (an unknown tag, say) mean the value is not what the author wrote; report them too.
  for (const w of doc.warnings) issues.push({ ...at(w.pos[0]), path: "", message: w.message });
  let fatal = doc.errors.length > 0;

  const structural = findStructuralIssues(doc, at);
  issues.push(...structural.issues);
  fatal ||= structural.fatal;

  let data: unknown;
  if (!fatal) {
    try {
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // toJS throws on alias bombs and similar; the document is then unusable.
      fatal = true;
      issues.push({ line: 1, column: 1, path: "", message: err instanceof Error ? err.message : String(err) });
    }
  }

  /** The entry of `node` at `seg`: a mapping's pair (merged-in ones too) or a list item. */
  const child = (node: unknown, seg: PathSegment): { key?: Node; value: unknown } | undefined => {
    if (isAlias(node)) return child(node.resolve(doc), seg);
    if (isSeq(node)) return typeof seg === "number" && seg < node.items.length ? { value: node.items[seg] } : undefined;
    if (!isMap(node)) return undefined;
    // The last of duplicate keys wins in the data, so point at the last.
    const own = node.items.findLast((p) => isScalar(p.key) && typeof p.key.value !== "symbol" && String(p.key.value) === String(seg));
    if (own !== undefined) return { key: own.key as Node, value: own.value };
    // Not written here: maybe merged in with `<<: *base`, then it sits where the anchor is.
    for (const merge of node.items.filter((p) => isScalar(p.key) && typeof p.key.value === "symbol")) {
      const sources = isSeq(merge.value) ? merge.value.items : [merge.value];
      for (const source of sources) {
        const found = child(source, seg);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  };

  const locate = (path: readonly PathSegment[], want: "key" | "value" = "value"): SourcePosition => {
    const place = (node: unknown): SourcePosition | undefined => {
      const range = (node as Node | null | undefined)?.range;
      // An empty value ("start:" with nothing after) has no text of its own to point at.
      return range && !(isScalar(node) && range[0] === range[1]) ? at(range[0]) : undefined;
    };
    let entry: { key?: Node; value: unknown } = { value: doc.contents };
    let container = place(doc.contents) ?? { line: 1, column: 1 };
    for (const seg of path) {
      const next = child(entry.value, seg);
      if (next === undefined) return container;
      entry = next;
      container = place(entry.value) ?? place(entry.key) ?? container;
    }
    if (want === "key" && entry.key !== undefined) return place(entry.key) ?? container;
    return place(entry.value) ?? place(entry.key) ?? container;
  };

  return { data: fatal ? undefined : data, fatal, empty: doc.contents === null, issues, locate };
}

function findStructuralIssues(doc: Document, at: (offset: number) => SourcePosition): { issues: PlacedIssue[]; fatal: boolean } {
  const issues: PlacedIssue[] = [];
  let fatal = false;

  const walk = (node: unknown, path: PathSegment[]): void => {
    if (isAlias(node)) {
      if (node.resolve(doc) === undefined) {
        fatal = true;
        issues.push({ ...at(node.range?.[0] ?? 0), path: formatIssuePath(path), message: `alias *${node.source} refers to no anchor &${node.source} before it` });
      }
      // Aliased nodes are walked where they are defined.
      return;
    }
    if (isMap(node)) {
      const seen = new Map<string, Pair>();
      for (const pair of node.items) {
        const k = pair.key;
        if (isScalar(k) && typeof k.value === "symbol") {
          walk(pair.value, path); // a merge key: its value is merged into this mapping
          continue;
        }
        if (!isScalar(k) || k.value === null) {
          fatal = true;
          const where = (k as Node | null)?.range?.[0] ?? node.range?.[0] ?? 0;
          issues.push({ ...at(where), path: formatIssuePath(path), message: "keys must be plain names, not lists, mappings or empty" });
          continue;
        }
        const name = String(k.value);
        const first = seen.get(name);
        if (first !== undefined) {
          const firstAt = at((first.key as Node).range?.[0] ?? 0);
          issues.push({
            ...at(k.range?.[0] ?? 0),
            path: formatIssuePath([...path, name]),
            message: `duplicate key "${name}", first defined at line ${firstAt.line}`,
          });
        }
        seen.set(name, pair);
        walk(pair.value, [...path, name]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
  };
  walk(doc.contents, []);
  return { issues, fatal };
}
