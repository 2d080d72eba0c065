// The latest deploy and pipeline run of every service, folded from the event log. The log only
// grows, so the fold keeps a cursor and each read asks the store only for events after it: a
// catalog of a thousand services costs one small query per request, not one per service.
import type { EventKind, KeelsonEvent } from "@keelson/protocol";
import type { Store } from "../store/index.js";

export interface ServiceHistory {
  /** The latest successful rollout (not a rollback). */
  lastDeploy: { at: string; release: string | undefined } | undefined;
  /** The latest successful pipeline run and the stages it ran. */
  lastPipeline: { at: string; run: string | undefined; stages: string[] } | undefined;
}

export interface ServiceHistoryFold {
  /** Every service's history so far, by service name. */
  read(): Promise<ReadonlyMap<string, ServiceHistory>>;
}

const KINDS: EventKind[] = ["rollout.succeeded", "pipeline.succeeded"];
/** Events read per query while catching up, so a long log is not read into memory at once. */
const PAGE = 5000;

/** Adds one event to the histories (pure; exported for tests). */
export function foldServiceEvent(histories: Map<string, ServiceHistory>, e: KeelsonEvent): void {
  if (!e.subject.startsWith("service/")) return;
  const service = e.subject.slice("service/".length);
  const h = histories.get(service) ?? { lastDeploy: undefined, lastPipeline: undefined };
  if (e.kind === "rollout.succeeded") {
    h.lastDeploy = { at: e.at, release: typeof e.details.to === "string" ? e.details.to : undefined };
  } else if (e.kind === "pipeline.succeeded") {
    const stages = Array.isArray(e.details.stages) ? (e.details.stages as Array<{ name?: unknown }>).flatMap((s) => (typeof s?.name === "string" ? [s.name] : [])) : [];
    h.lastPipeline = { at: e.at, run: typeof e.details.run === "string" ? e.details.run : undefined, stages };
  }
  histories.set(service, h);
}

/**
 * Follows the project's event log for deploys and pipeline runs.
 *
 * @example
 * const history = createServiceHistory({ store, project: "shop" });
 * (await history.read()).get("orders")?.lastDeploy?.at;
 */
export function createServiceHistory(options: { store: Store; project: string }): ServiceHistoryFold {
  const { store, project } = options;
  const histories = new Map<string, ServiceHistory>();
  let cursor = 0;
  let pending: Promise<ReadonlyMap<string, ServiceHistory>> | undefined;

  async function catchUp(): Promise<ReadonlyMap<string, ServiceHistory>> {
    for (;;) {
      const events = await store.listEvents({ project, kinds: KINDS, afterSeq: cursor, limit: PAGE });
      for (const e of events) {
        foldServiceEvent(histories, e);
        cursor = Math.max(cursor, e.seq);
      }
      if (events.length < PAGE) return histories;
    }
  }

  return {
    read() {
      // Concurrent readers share one catch-up (the cursor must not move under a running one).
      pending ??= catchUp().finally(() => (pending = undefined));
      return pending;
    },
  };
}
