// Coordination of control-plane instances on one PostgreSQL store (ADR 0020):
// - leadership is a session-level advisory lock held on a connection of its own. PostgreSQL lets
//   it go the moment that session ends (a leader killed with -9 closes its socket), so a
//   candidate that retries every half second leads within about a second of the old leader's end;
// - the leader writes who it is (`controlplane.leader` in the settings table, with a term that
//   grows with every election) so the others know where to forward requests;
// - notices go through LISTEN/NOTIFY on one channel per schema; a NOTIFY sent inside a transaction
//   is delivered when it commits.
import { Client, Pool, escapeIdentifier } from "pg";
import { KeelsonError } from "@keelson/protocol";
import type { Coordination, LeaderRecord, Leadership } from "./coordination.js";
import { POSTGRES_ADVISORY_LOCK_CLASS } from "./postgres-store.js";

export interface PostgresCoordinationOptions {
  /** The store's database (postgres://...). */
  url: string;
  /** The store's schema (default "keelson"): the election and the channel are per schema. */
  schema?: string;
  self: { id: string; url: string };
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** How often a candidate tries for the lock, and a lost notice channel reconnects (default 500 ms). */
  retryMs?: number;
  /** How often the leader checks the connection holding the lock (default 1000 ms); a check may take twice that. */
  heartbeatMs?: number;
  now?: () => Date;
}

/** The setting the leader records itself in. */
export const LEADER_SETTING = "controlplane.leader";

export function createPostgresCoordination(options: PostgresCoordinationOptions): Coordination {
  const schema = options.schema ?? "keelson";
  const settings = `${escapeIdentifier(schema)}.settings`;
  // NOTIFY channels are identifiers: one per schema, so two installations in one database never hear each other.
  const channel = `keelson_${schema}`;
  const retryMs = options.retryMs ?? 500;
  const heartbeatMs = options.heartbeatMs ?? 1_000;
  const now = options.now ?? (() => new Date());
  const log = options.log ?? (() => {});
  const connection = { connectionString: options.url, connectionTimeoutMillis: 5_000, query_timeout: Math.max(2_000, heartbeatMs * 2) };
  // Short queries (publish, leader()) share a small pool; the lock and LISTEN have connections of their own.
  const pool = new Pool({ ...connection, max: 2, application_name: "keelson-coordination" });
  pool.on("error", () => {});
  const listeners = new Map<string, Set<(payload: string | undefined) => void>>();
  let closed = false;
  let lockClient: Client | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let listenClient: Client | undefined;
  let listening: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  const dispatch = (topic: string, payload: string | undefined) => {
    for (const l of listeners.get(topic) ?? []) {
      try {
        l(payload);
      } catch (err) {
        log("error", "a change-notice listener failed", { topic, err: String(err) });
      }
    }
  };

  /** Keeps one connection LISTENing; after a loss every subscriber hears `undefined` (read again). */
  const listen = (regained: boolean): Promise<void> =>
    (listening ??= (async () => {
      const client = new Client({ ...connection, application_name: "keelson-listen" });
      client.on("error", () => {});
      client.on("notification", (msg) => {
        if (msg.channel !== channel || msg.payload === undefined) return;
        try {
          const { topic, payload } = JSON.parse(msg.payload) as { topic: string; payload: string };
          dispatch(topic, payload);
        } catch {
          log("warn", "ignoring a change notice that is not Keelson's", { channel });
        }
      });
      client.on("end", () => {
        if (listenClient === client) listenClient = undefined;
        listening = undefined;
        if (closed) return;
        log("warn", "the change-notice connection to the store ended; reconnecting", { channel });
        scheduleListen();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${escapeIdentifier(channel)}`);
      } catch (err) {
        await client.end().catch(() => {});
        listening = undefined;
        if (!closed) {
          log("warn", "cannot listen for change notices yet; retrying", { channel, err: String(err) });
          scheduleListen();
        }
        return;
      }
      if (closed) {
        await client.end().catch(() => {});
        return;
      }
      listenClient = client;
      if (regained) for (const topic of listeners.keys()) dispatch(topic, undefined);
    })());
  const scheduleListen = () => {
    if (closed || retryTimer !== undefined) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void listen(true);
    }, retryMs);
    retryTimer.unref();
  };

  const readLeader = async (db: Pool | Client): Promise<LeaderRecord | undefined> => {
    const { rows } = await db.query<{ value: string }>(`SELECT value FROM ${settings} WHERE key = $1`, [LEADER_SETTING]);
    if (rows[0] === undefined) return undefined;
    try {
      return JSON.parse(rows[0].value) as LeaderRecord;
    } catch {
      return undefined;
    }
  };

  /** Tries for the lock once; on success records this instance as leader and returns its term. */
  const tryLead = async (): Promise<{ term: number; client: Client } | undefined> => {
    if (lockClient === undefined) {
      // "keelson-candidate" until it wins, then "keelson-leader": pg_stat_activity shows who leads.
      const client = new Client({ ...connection, application_name: "keelson-candidate" });
      client.on("error", () => {});
      try {
        await client.connect();
      } catch (err) {
        await client.end().catch(() => {});
        throw err;
      }
      lockClient = client;
    }
    const client = lockClient;
    try {
      const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok", [POSTGRES_ADVISORY_LOCK_CLASS, `leader:${schema}`]);
      if (rows[0]?.ok !== true) return undefined;
      await client.query("SET application_name = 'keelson-leader'");
      const term = ((await readLeader(client))?.term ?? 0) + 1;
      const record: LeaderRecord = { ...options.self, term, since: now().toISOString() };
      await client.query(`INSERT INTO ${settings} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [LEADER_SETTING, JSON.stringify(record)]);
      await client.query("SELECT pg_notify($1, $2)", [channel, JSON.stringify({ topic: "leader", payload: JSON.stringify(record) })]);
      return { term, client };
    } catch (err) {
      // A connection that failed mid-way may hold the lock without our knowing: end it, which frees it.
      lockClient = undefined;
      await client.end().catch(() => {});
      throw err;
    }
  };

  const watchLeadership = (client: Client): Promise<string> =>
    new Promise<string>((resolve) => {
      let done = false;
      const lose = (why: string) => {
        if (done) return;
        done = true;
        clearInterval(heartbeat);
        heartbeat = undefined;
        if (lockClient === client) lockClient = undefined;
        void client.end().catch(() => {});
        resolve(why);
      };
      client.on("end", () => lose("the connection holding leadership ended"));
      client.on("error", (err) => lose(`the connection holding leadership failed: ${err.message}`));
      let checking = false;
      heartbeat = setInterval(() => {
        if (checking) return;
        checking = true;
        client
          .query("SELECT 1")
          .catch((err: Error) => lose(`the connection holding leadership stopped answering: ${err.message}`))
          .finally(() => (checking = false));
      }, heartbeatMs);
      heartbeat.unref();
    });

  void listen(false);

  return {
    kind: "postgres",
    self: options.self,
    async campaign(signal) {
      let warned = false;
      for (;;) {
        if (closed) throw new KeelsonError("KEELSON_ERR_NO_LEADER", "coordination closed before this instance was elected");
        signal?.throwIfAborted();
        try {
          const won = await tryLead();
          if (won !== undefined) {
            log("info", "elected leader", { term: won.term, id: options.self.id });
            const leadership: Leadership = { term: won.term, lost: watchLeadership(won.client) };
            return leadership;
          }
        } catch (err) {
          if (!warned) log("warn", "cannot reach the store to campaign for leadership; retrying", { err: String(err) });
          warned = true;
        }
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          }, retryMs);
          const onAbort = () => {
            clearTimeout(timer);
            reject(signal?.reason);
          };
          signal?.addEventListener("abort", onAbort, { once: true });
        });
      }
    },
    leader: () => readLeader(pool),
    async publish(topic, payload) {
      await pool.query("SELECT pg_notify($1, $2)", [channel, JSON.stringify({ topic, payload })]);
    },
    subscribe(topic, listener) {
      const set = listeners.get(topic) ?? new Set();
      set.add(listener);
      listeners.set(topic, set);
      return () => set.delete(listener);
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      clearInterval(heartbeat);
      listeners.clear();
      await listening;
      // Ending the session frees the advisory lock: a candidate elsewhere takes over at its next try.
      await Promise.all([lockClient?.end().catch(() => {}), listenClient?.end().catch(() => {}), pool.end().catch(() => {})]);
      lockClient = undefined;
      listenClient = undefined;
    },
  };
}
