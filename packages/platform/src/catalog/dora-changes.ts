// The commits each deployment brought, as `keelson dora import-git` read them from git: checked
// (every field named when wrong), tied to deployments the event log knows, and kept as
// "dora.changes" documents (one per deployment, so importing again replaces, never duplicates).
import { KeelsonError } from "@keelson/protocol";
import { z } from "zod";
import type { Store } from "../store/index.js";
import type { DoraChangeSet } from "./dora.js";

export const DORA_CHANGES_COLLECTION = "dora.changes";

/** Most deployments one request may carry, and most commits one deployment may list. */
export const MAX_IMPORT_DEPLOYMENTS = 500;
export const MAX_DEPLOYMENT_COMMITS = 5_000;

const Sha = z.string({ error: "expected a commit sha (40 or 64 hex digits)" }).regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/, { error: "expected a commit sha (40 or 64 lowercase hex digits)" });
const IsoTime = z
  .string({ error: "expected an ISO 8601 time with a zone, e.g. 2026-03-02T09:30:00Z" })
  .refine((t) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(t) && !Number.isNaN(Date.parse(t)), {
    error: "expected an ISO 8601 time with a zone, e.g. 2026-03-02T09:30:00Z",
  });

/** The body of POST /v1/services/:name/dora/changes. */
export const DoraChangesRequestSchema = z.strictObject({
  deployments: z
    .array(
      z.strictObject({
        id: z.string({ error: "expected the deployment's rollout id" }).regex(/^[A-Za-z0-9._-]{1,100}$/, { error: "expected the deployment's rollout id, e.g. ro-1a2b3c4d" }),
        commit: Sha.optional(),
        previousCommit: Sha.optional(),
        commits: z.array(z.strictObject({ sha: Sha, authorTime: IsoTime })).max(MAX_DEPLOYMENT_COMMITS, { error: `at most ${MAX_DEPLOYMENT_COMMITS} commits per deployment` }),
      }),
      { error: "expected a list of deployments" },
    )
    .min(1, { error: "expected at least one deployment" })
    .max(MAX_IMPORT_DEPLOYMENTS, { error: `at most ${MAX_IMPORT_DEPLOYMENTS} deployments per request` }),
});
export type DoraChangesRequest = z.infer<typeof DoraChangesRequestSchema>;

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}

function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = body;
  for (const p of path) v = typeof v === "object" && v !== null ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/**
 * Checks an import body; a bad one is a KEELSON_ERR_INVALID_INPUT naming the first bad field.
 *
 * @example
 * parseDoraChanges({ deployments: [{ id: "ro-1", commits: [{ sha: "…", authorTime: "yesterday" }] }] });
 * // throws: deployments[0].commits[0].authorTime: expected an ISO 8601 time with a zone, …, got "yesterday"
 */
export function parseDoraChanges(body: unknown): DoraChangesRequest {
  const parsed = DoraChangesRequestSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.path ?? [];
  const where = path.length > 0 ? fieldPath(path) : "body";
  const got = issue?.code === "unrecognized_keys" ? "" : `, got ${JSON.stringify(valueAt(body, path))?.slice(0, 80) ?? "nothing"}`;
  throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${where}: ${issue?.message ?? "invalid"}${got}`);
}

/**
 * Stores the change sets of one service's deployments (replacing those imported before). Every
 * deployment must be a rollout of that service in the event log that reached traffic, and the
 * commit named must be the one it deployed; otherwise nothing is stored.
 */
export async function importDoraChanges(input: { store: Store; project: string; service: string; request: DoraChangesRequest; actor: string; now: Date }): Promise<{ deployments: number; commits: number }> {
  const { store, project, service, request } = input;
  const events = await store.listEvents({ project, subject: `service/${service}`, kinds: ["rollout.succeeded", "rollout.failed", "rollback.started"] });
  const known = new Map<string, { commit: string | undefined; at: string }>();
  for (const e of events) {
    const id = e.kind === "rollback.started" ? e.details.replaced : e.details.rollout;
    if (typeof id === "string" && !known.has(id)) known.set(id, { commit: typeof e.details.commit === "string" ? e.details.commit : undefined, at: e.at });
  }
  const seen = new Set<string>();
  request.deployments.forEach((d, i) => {
    const found = known.get(d.id);
    if (found === undefined) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `deployments[${i}].id: service "${service}" has no finished rollout "${d.id}"`);
    if (seen.has(d.id)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `deployments[${i}].id: "${d.id}" is listed twice`);
    seen.add(d.id);
    if (d.commit !== undefined && found.commit !== undefined && d.commit !== found.commit) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `deployments[${i}].commit: rollout ${d.id} deployed ${found.commit}, not ${d.commit}`);
    }
  });
  const importedAt = input.now.toISOString();
  await store.putDocuments(
    request.deployments.map((d) => ({
      collection: DORA_CHANGES_COLLECTION,
      project,
      id: d.id,
      tag: service,
      at: new Date(known.get(d.id)?.at ?? importedAt).toISOString(),
      body: {
        service,
        ...(d.commit !== undefined ? { commit: d.commit } : {}),
        ...(d.previousCommit !== undefined ? { previousCommit: d.previousCommit } : {}),
        commits: d.commits.map((c) => ({ sha: c.sha, authorTime: new Date(c.authorTime).toISOString() })),
        importedAt,
        importedBy: input.actor,
      },
    })),
  );
  return { deployments: request.deployments.length, commits: request.deployments.reduce((n, d) => n + d.commits.length, 0) };
}

/** The imported change sets of a project (all services). */
export async function listDoraChanges(store: Store, project: string): Promise<DoraChangeSet[]> {
  const docs = await store.listDocuments({ collection: DORA_CHANGES_COLLECTION, project });
  return docs.map((doc) => ({
    deployment: doc.id,
    service: typeof doc.body.service === "string" ? doc.body.service : doc.tag,
    commits: Array.isArray(doc.body.commits)
      ? (doc.body.commits as Array<{ sha?: unknown; authorTime?: unknown }>).flatMap((c) => (typeof c.sha === "string" && typeof c.authorTime === "string" ? [{ sha: c.sha, authorTime: c.authorTime }] : []))
      : [],
  }));
}
