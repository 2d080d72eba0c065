// A trace as a tree with timings (offset from the trace's start, self time), and its text
// rendering for `keelson trace <id>`: indented tree, service, name, duration, status, a bar.
import { TRACE_ATTRIBUTES } from "@keelson/protocol";
import { bySpanStart } from "./trace-store.js";
import { replicaOf } from "./trace-span.js";
import type { SpanRecord } from "./trace-span.js";

export interface TraceNode {
  span: SpanRecord;
  /** By start time. */
  children: TraceNode[];
  depth: number;
  /** Start relative to the trace's start. */
  offsetUs: number;
  /** Time inside this span not covered by any child. */
  selfUs: number;
  /** The span names a parent that is not among the spans (not received, or dropped). */
  missingParent: boolean;
}

export interface TraceTree {
  traceId: string;
  /** The root span first, then spans whose parent is missing, by start time. */
  roots: TraceNode[];
  startTimeUs: number;
  durationUs: number;
  spanCount: number;
  errorCount: number;
  /** Sorted. */
  services: string[];
}

/**
 * Builds the tree of one trace's spans; undefined when there are none. Never loops: a
 * parent cycle (a broken sender) is cut and its earliest span becomes a root.
 *
 * @example
 * const tree = buildTraceTree(await traces.getTrace(id));
 * if (tree) process.stdout.write(renderTraceTree(tree) + "\n");
 */
export function buildTraceTree(spans: readonly SpanRecord[]): TraceTree | undefined {
  if (spans.length === 0) return undefined;
  const sorted = [...spans].sort(bySpanStart);
  const first = sorted[0] as SpanRecord;
  let start = Infinity;
  let end = -Infinity;
  for (const s of sorted) {
    start = Math.min(start, s.startTimeUs);
    end = Math.max(end, s.startTimeUs + s.durationUs);
  }
  const nodes = new Map<string, TraceNode>();
  for (const span of sorted) {
    nodes.set(span.spanId, { span, children: [], depth: 0, offsetUs: span.startTimeUs - start, selfUs: span.durationUs, missingParent: false });
  }
  const roots: TraceNode[] = [];
  for (const node of nodes.values()) {
    const parentId = node.span.parentSpanId;
    const parent = parentId === undefined || parentId === node.span.spanId ? undefined : nodes.get(parentId);
    if (parent) parent.children.push(node);
    else {
      node.missingParent = parentId !== undefined;
      roots.push(node);
    }
  }
  // Walk from the roots; whatever is left unvisited sits on a cycle.
  const visited = new Set<TraceNode>();
  const walk = (root: TraceNode) => {
    const stack: TraceNode[] = [root];
    root.depth = 0;
    while (stack.length > 0) {
      const node = stack.pop() as TraceNode;
      visited.add(node);
      node.children = node.children.filter((c) => !visited.has(c));
      for (const child of node.children) {
        child.depth = node.depth + 1;
        stack.push(child);
      }
    }
  };
  for (const root of roots) walk(root);
  for (const node of nodes.values()) {
    if (visited.has(node)) continue;
    node.missingParent = true;
    roots.push(node);
    walk(node);
  }
  for (const node of nodes.values()) node.selfUs = selfTime(node);
  // Real roots before orphans, each group by start time.
  roots.sort((a, b) => Number(a.missingParent) - Number(b.missingParent) || bySpanStart(a.span, b.span));
  const services = [...new Set(sorted.map((s) => s.service))].sort();
  return {
    traceId: first.traceId,
    roots,
    startTimeUs: start,
    durationUs: end - start,
    spanCount: sorted.length,
    errorCount: sorted.filter((s) => s.status === "error").length,
    services,
  };
}

/** The nodes in display order (depth first, children by start), each with its tree prefix. */
export function flattenTraceTree(tree: TraceTree): Array<{ node: TraceNode; prefix: string }> {
  const out: Array<{ node: TraceNode; prefix: string }> = [];
  const stack: Array<{ node: TraceNode; lead: string; last: boolean; top: boolean }> = [];
  for (let i = tree.roots.length - 1; i >= 0; i--) stack.push({ node: tree.roots[i] as TraceNode, lead: "", last: true, top: true });
  while (stack.length > 0) {
    const { node, lead, last, top } = stack.pop() as { node: TraceNode; lead: string; last: boolean; top: boolean };
    out.push({ node, prefix: top ? "" : `${lead}${last ? "└─ " : "├─ "}` });
    const childLead = top ? "" : `${lead}${last ? "   " : "│  "}`;
    for (let i = node.children.length - 1; i >= 0; i--) {
      stack.push({ node: node.children[i] as TraceNode, lead: childLead, last: i === node.children.length - 1, top: false });
    }
  }
  return out;
}

export interface RenderTraceOptions {
  /** Characters of the timeline bar; default 30. */
  barWidth?: number;
  /** The tree/service/name column is cut to this many characters; default 64. */
  labelWidth?: number;
}

/**
 * Renders a trace for a terminal, one line per span:
 * `├─ orders  POST /api/orders   9.0 ms  ERROR  │   ███████     │  card declined`.
 */
export function renderTraceTree(tree: TraceTree, options: RenderTraceOptions = {}): string {
  const barWidth = Math.max(1, options.barWidth ?? 30);
  const labelWidth = Math.max(8, options.labelWidth ?? 64);
  const rows = flattenTraceTree(tree).map(({ node, prefix }) => {
    const s = node.span;
    const detail = detailOf(s);
    const label = cut(`${prefix}${s.service}  ${s.name}${detail ? `  (${detail})` : ""}`, labelWidth);
    const note = [s.status === "error" ? s.statusMessage : undefined, node.missingParent ? "parent span not received" : undefined].filter(Boolean).join("; ");
    return { label, duration: formatDuration(s.durationUs), status: s.status === "error" ? "ERROR" : "ok", bar: bar(node, tree, barWidth), note };
  });
  const lw = Math.max(...rows.map((r) => r.label.length));
  const dw = Math.max(...rows.map((r) => r.duration.length));
  const head = `trace ${tree.traceId} · ${formatDuration(tree.durationUs)} · ${plural(tree.spanCount, "span")} · ${plural(tree.services.length, "service")} · ${plural(tree.errorCount, "error")}`;
  const lines = rows.map((r) => `${r.label.padEnd(lw)}  ${r.duration.padStart(dw)}  ${r.status.padEnd(5)}  │${r.bar}│${r.note ? `  ${cut(r.note, 80)}` : ""}`);
  return [head, ...lines].join("\n");
}

/** Human duration from microseconds: "420 µs", "12.4 ms", "1.25 s". */
export function formatDuration(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

function selfTime(node: TraceNode): number {
  const start = node.span.startTimeUs;
  const end = start + node.span.durationUs;
  const intervals = node.children
    .map((c) => [Math.max(start, c.span.startTimeUs), Math.min(end, c.span.startTimeUs + c.span.durationUs)] as const)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let covered = 0;
  let reach = start;
  for (const [a, b] of intervals) {
    if (b <= reach) continue;
    covered += b - Math.max(a, reach);
    reach = b;
  }
  return node.span.durationUs - covered;
}

function bar(node: TraceNode, tree: TraceTree, width: number): string {
  if (tree.durationUs <= 0) return "█".repeat(width);
  const from = Math.min(width - 1, Math.floor((node.offsetUs / tree.durationUs) * width));
  const to = Math.max(from + 1, Math.min(width, Math.ceil(((node.offsetUs + node.span.durationUs) / tree.durationUs) * width)));
  return " ".repeat(from) + "█".repeat(to - from) + " ".repeat(width - to);
}

/** Gateway tries say which try and which replica; that is what a reader of a slow trace wants. */
function detailOf(span: SpanRecord): string {
  const parts: string[] = [];
  const attempt = span.attributes[TRACE_ATTRIBUTES.ATTEMPT];
  if (typeof attempt === "number" && attempt > 0) parts.push(`retry ${attempt}`);
  if (span.attributes[TRACE_ATTRIBUTES.TARGET_REPLICA] !== undefined) parts.push(`→ ${replicaOf(span) ?? "?"}`);
  return parts.join(", ");
}

function cut(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
