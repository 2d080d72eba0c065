// Benchmark: the store's hot paths (event append, release read by id, a service's release list),
// in operations per second on SQLite (a file in a temp folder, WAL) and PostgreSQL (a private
// server started here, or KEELSON_TEST_POSTGRES_URL), each beside a reference measured in the same
// run on the same tables: the same statement through the raw driver (better-sqlite3 prepared
// statement; a pg Client), so the ratio is what the Store adds (validation, canonical JSON,
// transactions, row mapping, the pool). Calls run one after another, as the control plane makes them.
// Store and reference alternate run by run; the figure is the median of the runs.
// PostgreSQL runs with synchronous_commit=off by default, the durability SQLite's WAL with
// synchronous=NORMAL has (a power cut may lose the last commits, never corrupts); --pg-sync on
// waits for the WAL flush on every commit, PostgreSQL's default.
// Usage: node bench/store.mjs [--seconds 1] [--runs 3] [--releases 20] [--only sqlite|postgres] [--pg-sync off|on]  (after `npx tsc -b`)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import pg from "pg";
import { canonicalJson, createPostgresStore, createSqliteStore } from "../packages/platform/dist/store/index.js";
import { startPostgres } from "./postgres.mjs";
import { rng } from "./seeded-random.mjs";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const SECONDS = Number(args.seconds ?? 1);
const RUNS = Number(args.runs ?? 3);
const RELEASES = Number(args.releases ?? 20);
const SERVICES = 10;
const ONLY = args.only;
const PG_SYNC = args["pg-sync"] ?? "off";
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const random = rng(11);

/** Calls `op` one after another for SECONDS; returns operations per second. */
async function rate(op) {
  const until = performance.now() + SECONDS * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < until) {
    for (let i = 0; i < 50; i++) await op(n++);
  }
  return n / ((performance.now() - start) / 1000);
}

/** Store and reference, alternating, RUNS times each after a short warm-up: medians and the ratio. */
async function compare(name, store, reference) {
  for (let i = 0; i < 300; i++) {
    await store(i);
    await reference(i);
  }
  const s = [];
  const r = [];
  for (let run = 0; run < RUNS; run++) {
    s.push(await rate(store));
    r.push(await rate(reference));
  }
  const row = { op: name, store: Math.round(median(s)), reference: Math.round(median(r)) };
  row.ratio = +(row.store / row.reference).toFixed(2);
  row.storeUs = +(1e6 / row.store).toFixed(1);
  row.referenceUs = +(1e6 / row.reference).toFixed(1);
  return row;
}

const EVENT = { project: "shop", kind: "rollout.step", actor: "reconciler", subject: "service/orders", details: { step: 2, weight: 25, release: "r-orders-0007" } };
const releaseId = (s, i) => `r-svc${s}-${String(i).padStart(4, "0")}`;

async function seed(store) {
  for (let s = 0; s < SERVICES; s++) {
    for (let i = 0; i < RELEASES; i++) {
      await store.putRelease({
        id: releaseId(s, i), project: "shop", service: `svc${s}`, sourceHash: `s${i}`, configHash: "c", gitCommit: "0123456789abcdef0123456789abcdef01234567",
        createdAt: new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString(),
        details: { build: "npm run build", durationMs: 4200 + i, spec: { start: "node main.js", replicas: 2, env: { LOG_LEVEL: "info" } } },
      });
    }
  }
}
const anyRelease = () => releaseId(Math.floor(random() * SERVICES), Math.floor(random() * RELEASES));
const anyService = () => `svc${Math.floor(random() * SERVICES)}`;

async function benchSqlite() {
  const dir = await mkdtemp(join(tmpdir(), "keelson-bench-store-"));
  const path = join(dir, "state.db");
  const store = await createSqliteStore({ path });
  await seed(store);
  // The reference: a connection of its own with the store's settings and the store's statements.
  const db = new Database(path, { timeout: 5000 });
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  const insert = db.prepare("INSERT INTO events (at, project, kind, actor, subject, details) VALUES (@at, @project, @kind, @actor, @subject, @details)");
  const details = canonicalJson(EVENT.details);
  const append = db.transaction((row) => insert.run(row));
  const get = db.prepare("SELECT id, project, service, source_hash, config_hash, git_commit, created_at, details FROM releases WHERE id = ?");
  const list = db.prepare("SELECT id, project, service, source_hash, config_hash, git_commit, created_at, details FROM releases WHERE project = ? AND service = ? ORDER BY created_at DESC, rowid DESC");
  const rows = [];
  try {
    rows.push(await compare("appendEvent", () => store.appendEvent(EVENT), () => append.immediate({ ...EVENT, details, at: new Date().toISOString() })));
    rows.push(await compare("getRelease", () => store.getRelease(anyRelease()), async () => get.get(anyRelease())));
    rows.push(await compare(`listReleases (${RELEASES})`, () => store.listReleases("shop", anyService()), async () => list.all("shop", anyService())));
  } finally {
    db.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

async function benchPostgres() {
  const server = await startPostgres({ synchronousCommit: PG_SYNC });
  try {
    const store = await createPostgresStore({ url: server.url });
    await seed(store);
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    const details = canonicalJson(EVENT.details);
    const insertText = "INSERT INTO keelson.events (at, project, kind, actor, subject, details) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq";
    const params = () => [new Date().toISOString(), EVENT.project, EVENT.kind, EVENT.actor, EVENT.subject, details];
    const getText = "SELECT id, project, service, source_hash, config_hash, git_commit, created_at, details FROM keelson.releases WHERE id = $1";
    const listText = "SELECT id, project, service, source_hash, config_hash, git_commit, created_at, details FROM keelson.releases WHERE project = $1 AND service = $2 ORDER BY created_at DESC, stored_seq DESC";
    const rows = [];
    try {
      rows.push(await compare("appendEvent", () => store.appendEvent(EVENT), () => client.query(insertText, params())));
      rows.push(
        await compare("appendEvent vs BEGIN/INSERT/COMMIT", () => store.appendEvent(EVENT), async () => {
          await client.query("BEGIN");
          await client.query(insertText, params());
          await client.query("COMMIT");
        }),
      );
      rows.push(await compare("getRelease", () => store.getRelease(anyRelease()), () => client.query(getText, [anyRelease()])));
      rows.push(await compare(`listReleases (${RELEASES})`, () => store.listReleases("shop", anyService()), () => client.query(listText, ["shop", anyService()])));
    } finally {
      await client.end();
      await store.close();
    }
    return rows;
  } finally {
    await server.stop();
  }
}

const results = {};
if (ONLY !== "postgres") results.sqlite = await benchSqlite();
if (ONLY !== "sqlite") results.postgres = await benchPostgres();
for (const [engine, rows] of Object.entries(results)) {
  console.log(`\n${engine}${engine === "postgres" ? ` (synchronous_commit=${PG_SYNC})` : " (WAL, synchronous=NORMAL)"}: ops/s, median of ${RUNS} runs of ${SECONDS} s, one call at a time`);
  console.table(rows);
}
