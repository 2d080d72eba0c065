// Adds a service to keelson.yaml's text without touching the rest of it: the yaml Document API
// finds where `services` ends and renders the new entry, which is spliced into the original
// text, so every other byte (comments, blank lines, quoting, flow styles) stays as it was.
// The result is parsed again and must equal the old document plus the new service.
import { isDeepStrictEqual } from "node:util";
import { Document, isMap, isScalar, LineCounter, Pair, parseDocument, Scalar, YAMLMap } from "yaml";
import { KeelsonError } from "@keelson/protocol";

export interface AddServiceEntryInput {
  /** keelson.yaml as it is. */
  text: string;
  service: string;
  /** The service's entry (e.g. rendered from a template, comments and styles kept). */
  entry: YAMLMap;
}

const PARSE = { merge: true, uniqueKeys: false, logLevel: "silent" } as const;

/**
 * keelson.yaml's text with `services.<service>` added after the last service. Throws
 * KEELSON_ERR_CONFLICT when the service exists and KEELSON_ERR_INTERNAL when the edit would
 * change anything else (it is then not made).
 *
 * @example
 * const next = addServiceEntry({ text, service: "hello", entry: new Document({ owner: "web", path: "services/hello", start: "node server.mjs" }).contents as YAMLMap });
 */
export function addServiceEntry(input: AddServiceEntryInput): string {
  const { text, service, entry } = input;
  const lines = new LineCounter();
  const doc = parseDocument(text, { ...PARSE, keepSourceTokens: true, lineCounter: lines });
  if (doc.errors.length > 0 || !isMap(doc.contents)) throw new KeelsonError("KEELSON_ERR_MANIFEST_INVALID", `keelson.yaml cannot be read as a mapping: ${doc.errors[0]?.message ?? "no top-level mapping"}`);
  const servicesPair = doc.contents.items.find((p) => isScalar(p.key) && p.key.value === "services");
  const services = servicesPair?.value;
  if (servicesPair === undefined || !isMap(services)) throw new KeelsonError("KEELSON_ERR_MANIFEST_INVALID", "keelson.yaml has no services mapping to add the service to");
  if (services.items.some((p) => isScalar(p.key) && String(p.key.value) === service)) {
    throw new KeelsonError("KEELSON_ERR_CONFLICT", `services.${service} already exists in keelson.yaml`);
  }
  const columnOf = (offset: number) => lines.linePos(offset).col - 1;
  const servicesColumn = columnOf((servicesPair.key as Scalar).range?.[0] ?? 0);

  let next: string;
  if (!services.flow && services.items.length > 0) {
    const first = services.items[0] as Pair;
    const keyColumn = columnOf((first.key as Scalar).range?.[0] ?? 0);
    const step = indentStep(first, columnOf) ?? Math.max(1, keyColumn - servicesColumn);
    const lastKeyOffset = ((services.items.at(-1) as Pair).key as Scalar).range?.[0] ?? 0;
    const at = endOfEntry(text, lastKeyOffset, keyColumn);
    const blank = services.items.length === 1 || blankLineBetweenEntries(text, services, lines);
    const prefix = at > 0 && text[at - 1] !== "\n" ? "\n" : "";
    next = `${text.slice(0, at)}${prefix}${blank ? "\n" : ""}${renderEntry(service, entry, step, keyColumn)}${text.slice(at)}`;
  } else if (services.flow && services.items.length === 0 && services.range) {
    // `services: {}`: the braces go, the entry follows as a block under the key.
    const step = detectIndentStep(doc, columnOf) ?? 2;
    const [start, end] = services.range;
    const lineEnd = text.indexOf("\n", end);
    const before = text.slice(0, start).replace(/[ \t]+$/, "");
    const rest = text.slice(end, lineEnd === -1 ? text.length : lineEnd);
    const after = lineEnd === -1 ? "" : text.slice(lineEnd + 1);
    next = `${before}${rest.trim() === "" ? "" : ` ${rest.trim()}`}\n${renderEntry(service, entry, step, servicesColumn + step)}${after}`;
  } else {
    // A flow mapping with services in it: rare enough to let the Document API write the file
    // (comments are kept; the layout of the file may change).
    doc.setIn(["services", service], entry);
    next = doc.toString({ lineWidth: 0 });
  }
  verify(text, next, service, entry);
  return next;
}

/** The entry as block YAML, every line indented by `column` spaces. */
function renderEntry(service: string, entry: YAMLMap, step: number, column: number): string {
  const wrapper = new YAMLMap();
  wrapper.items.push(new Pair(new Scalar(service), entry));
  const doc = new Document();
  doc.contents = wrapper;
  const pad = " ".repeat(column);
  return doc
    .toString({ indent: step, lineWidth: 0 })
    .split("\n")
    .map((l) => (l === "" ? l : pad + l))
    .join("\n");
}

/**
 * The offset just after the last line of the entry whose key starts at `keyOffset`: its deeper
 * lines, comments among them, up to the first line at the key's indentation or less.
 */
function endOfEntry(text: string, keyOffset: number, keyColumn: number): number {
  let end = text.indexOf("\n", keyOffset);
  if (end === -1) return text.length;
  end += 1;
  let pos = end;
  while (pos < text.length) {
    const nl = text.indexOf("\n", pos);
    const line = text.slice(pos, nl === -1 ? text.length : nl);
    const next = nl === -1 ? text.length : nl + 1;
    if (line.trim() !== "") {
      const indent = line.length - line.trimStart().length;
      if (indent <= keyColumn) break;
      end = next;
    }
    pos = next;
  }
  return end;
}

/** Whether the author separates services with blank lines (then the new one gets one too). */
function blankLineBetweenEntries(text: string, services: YAMLMap, lines: LineCounter): boolean {
  return services.items.slice(1).some((p) => {
    const line = lines.linePos((p.key as Scalar).range?.[0] ?? 0).line;
    const lineStarts = lines.lineStarts;
    const prevStart = lineStarts[line - 2];
    const prevEnd = lineStarts[line - 1];
    return prevStart !== undefined && prevEnd !== undefined && text.slice(prevStart, prevEnd).trim() === "";
  });
}

/** The indentation step inside a service entry: its first field's column minus the key's. */
function indentStep(pair: Pair, columnOf: (offset: number) => number): number | undefined {
  const key = pair.key as Scalar;
  const value = pair.value;
  if (!isMap(value) || value.flow || value.items.length === 0 || !key.range) return undefined;
  const firstKey = (value.items[0] as Pair).key as Scalar;
  if (!firstKey.range) return undefined;
  const step = columnOf(firstKey.range[0]) - columnOf(key.range[0]);
  return step > 0 ? step : undefined;
}

/** The step the file indents nested mappings by, from its first nested block mapping. */
function detectIndentStep(doc: Document, columnOf: (offset: number) => number): number | undefined {
  if (!isMap(doc.contents)) return undefined;
  for (const pair of doc.contents.items) {
    const step = indentStep(pair as Pair, columnOf);
    if (step !== undefined) return step;
  }
  return undefined;
}

/** The new text must read as the old document plus exactly the new service. */
function verify(before: string, after: string, service: string, entry: YAMLMap): void {
  const old = parseDocument(before, PARSE).toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
  const parsed = parseDocument(after, PARSE);
  const expected = { ...old, services: { ...(old.services as Record<string, unknown>), [service]: new Document(entry).toJS() as unknown } };
  if (parsed.errors.length > 0 || !isDeepStrictEqual(parsed.toJS({ maxAliasCount: 100 }), expected)) {
    throw new KeelsonError("KEELSON_ERR_INTERNAL", `adding services.${service} would have changed other parts of keelson.yaml${parsed.errors[0] ? ` (${parsed.errors[0].message})` : ""}; nothing was written`);
  }
}
