// Traffic splits per service, kept in the store: set by `keelson traffic` now, by
// canary and blue-green rollouts later; the routing publisher puts them on the table.
import { KeelsonError, TrafficSplitSchema, type TrafficSplit } from "@keelson/protocol";
import type { Store } from "../store/index.js";

const key = (project: string, service: string) => `traffic.${project}.${service}`;

export async function readTrafficSplit(store: Store, project: string, service: string): Promise<TrafficSplit | undefined> {
  const text = await store.getSetting(key(project, service));
  if (!text) return undefined;
  const parsed = TrafficSplitSchema.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : undefined;
}

/**
 * Validates and stores a split (or clears it with `undefined`), recording who changed
 * what. Weights must add up to 100; every release (of a weight or a match rule) must be one
 * of the service's; a match rule's regex must compile.
 */
export async function writeTrafficSplit(options: { store: Store; project: string; service: string; split: unknown; actor: string }): Promise<TrafficSplit | undefined> {
  const { store, project, service, actor } = options;
  const before = await readTrafficSplit(store, project, service);
  if (options.split === undefined) {
    await store.setSetting(key(project, service), "");
    await store.appendEvent({ project, kind: "traffic.changed", actor, subject: `service/${service}`, details: { before, after: undefined } });
    return undefined;
  }
  const parsed = TrafficSplitSchema.safeParse(options.split);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `traffic split${issue?.path.length ? `.${issue.path.join(".")}` : ""}: ${issue?.message ?? "invalid"}`);
  }
  const split = parsed.data;
  const total = split.weights.reduce((n, w) => n + w.weight, 0);
  if (Math.abs(total - 100) > 1e-6) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `traffic split weights: must add up to 100, got ${total}`);
  const releases = new Set((await store.listReleases(project, service)).map((r) => r.id));
  const seen = new Set<string>();
  for (const w of split.weights) {
    if (!releases.has(w.release)) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `traffic split: service "${service}" has no release "${w.release}"`);
    if (seen.has(w.release)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `traffic split: release "${w.release}" is listed twice`);
    seen.add(w.release);
    if (w.label !== undefined) {
      if (seen.has(`label:${w.label}`)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `traffic split: label "${w.label}" is used twice`);
      seen.add(`label:${w.label}`);
    }
  }
  split.match?.forEach((rule, i) => {
    if (!releases.has(rule.release)) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `traffic split match.${i}: service "${service}" has no release "${rule.release}"`);
  });
  await store.setSetting(key(project, service), JSON.stringify(split));
  await store.appendEvent({ project, kind: "traffic.changed", actor, subject: `service/${service}`, details: { before, after: split } });
  return split;
}
