// Coordination between control-plane instances that share a store: who leads (runs the
// reconciler, the autoscaler, the analysis and notification loops and supervises replicas), and
// change notices every instance hears. One instance on SQLite always leads; on PostgreSQL the
// instances elect a leader with an advisory lock and hear each other through LISTEN/NOTIFY.

/** Who leads, as the leader recorded it when elected. */
export interface LeaderRecord {
  /** The instance's id (host:pid:random). */
  id: string;
  /** Its API URL, where the other instances forward requests. */
  url: string;
  /** Increases with every election: a fencing number for anything the leader writes. */
  term: number;
  /** ISO time it was elected. */
  since: string;
}

/** This instance leads until `lost` settles (with why). */
export interface Leadership {
  term: number;
  /** Settles when leadership can no longer be trusted (the connection holding it broke). */
  lost: Promise<string>;
}

export interface Coordination {
  /** "single" (this instance always leads) or "postgres". */
  readonly kind: string;
  /** This instance, as it would be recorded when it leads. */
  readonly self: { id: string; url: string };
  /**
   * Campaigns until this instance leads; resolves then. Keeps trying through database outages.
   * Rejects with an AbortError when `signal` aborts first.
   */
  campaign(signal?: AbortSignal): Promise<Leadership>;
  /** The leader as last recorded (it may have died since: its successor overwrites the record). */
  leader(): Promise<LeaderRecord | undefined>;
  /** Tells every instance (this one too) about a change; `payload` is short text (< 8000 bytes). */
  publish(topic: string, payload: string): Promise<void>;
  /**
   * Calls `listener` for each notice on `topic`, and with `undefined` after the notice channel
   * was lost and regained (notices may have been missed: read the state again).
   */
  subscribe(topic: string, listener: (payload: string | undefined) => void): () => void;
  /** Gives up leadership (if held) and stops listening. */
  close(): Promise<void>;
}

/**
 * The coordination of a control plane alone on its store (SQLite, or memory in tests): it leads
 * at once and for good; notices reach its own subscribers.
 */
export function createSingleCoordination(self: { id: string; url: string }, now: () => Date = () => new Date()): Coordination {
  const listeners = new Map<string, Set<(payload: string | undefined) => void>>();
  let record: LeaderRecord | undefined;
  return {
    kind: "single",
    self,
    async campaign() {
      record = { ...self, term: 1, since: now().toISOString() };
      return { term: 1, lost: new Promise<string>(() => {}) };
    },
    async leader() {
      return record;
    },
    async publish(topic, payload) {
      for (const l of listeners.get(topic) ?? []) l(payload);
    },
    subscribe(topic, listener) {
      const set = listeners.get(topic) ?? new Set();
      set.add(listener);
      listeners.set(topic, set);
      return () => set.delete(listener);
    },
    async close() {
      listeners.clear();
    },
  };
}
