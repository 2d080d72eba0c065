// A real PostgreSQL for tests: KEELSON_TEST_POSTGRES_URL when set, else a private cluster started
// for the test file (initdb into a temp folder, 127.0.0.1 on a free port, fsync off; as the
// postgres user when we run as root) and stopped by its pid. Each test takes a fresh database.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { chownSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, makeTempDir, waitFor } from "./index.js";

/** Whether tests can have a PostgreSQL, and if not, why (for requireComponent). */
export interface PostgresAvailability {
  available: boolean;
  reason: string;
}

/** A database of its own for one test. */
export interface TestDatabase {
  name: string;
  url: string;
  /** Drops the database, ending any connection a test left open. */
  drop(): Promise<void>;
}

/** A schema name of its own for one test, in a database the tests of the server share. */
export interface TestSchema {
  /** The shared database. */
  url: string;
  /** Not created yet: the store under test creates it. */
  schema: string;
  /** Drops the schema and everything in it. */
  drop(): Promise<void>;
}

export interface TestPostgres {
  /** URL of the server's maintenance database (postgres). */
  url: string;
  /** The postmaster we started; undefined for KEELSON_TEST_POSTGRES_URL. */
  pid: number | undefined;
  /** A fresh database (about half a second: PostgreSQL copies a template). */
  createDatabase(): Promise<TestDatabase>;
  /** A fresh schema name in a shared database (about a millisecond): for suites of many small tests. */
  createSchema(): Promise<TestSchema>;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

interface RunAs {
  uid: number;
  gid: number;
}

function findBinaries(): Binaries | undefined {
  const dirs: string[] = [];
  const config = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" });
  if (config.status === 0) dirs.push(config.stdout.trim());
  // Debian keeps the server binaries out of PATH, one folder per major version: newest first.
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    for (const major of readdirSync(debian).sort((a, b) => Number(b) - Number(a))) dirs.push(join(debian, major, "bin"));
  }
  dirs.push(...(process.env.PATH ?? "").split(":").filter((d) => d !== ""));
  for (const dir of dirs) {
    const initdb = join(dir, "initdb");
    const postgres = join(dir, "postgres");
    if (existsSync(initdb) && existsSync(postgres)) return { initdb, postgres };
  }
  return undefined;
}

/** initdb and postgres refuse to run as root: as root, run them as the postgres user. */
function runAs(): RunAs | undefined | "missing" {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) return "missing";
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Whether a PostgreSQL can be had: KEELSON_TEST_POSTGRES_URL is set, or the server binaries are
 * installed (and, as root, there is a postgres user to run them as).
 */
export function postgresAvailability(): PostgresAvailability {
  if (process.env.KEELSON_TEST_POSTGRES_URL !== undefined) return { available: true, reason: "KEELSON_TEST_POSTGRES_URL is set" };
  if (findBinaries() === undefined) {
    return { available: false, reason: "no initdb/postgres found (apt-get install postgresql, or set KEELSON_TEST_POSTGRES_URL)" };
  }
  if (runAs() === "missing") return { available: false, reason: "running as root and there is no postgres user to run initdb as" };
  return { available: true, reason: "PostgreSQL binaries found" };
}

/** The environment for initdb/postgres: none of the caller's PG* settings. */
function serverEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, LC_ALL: "C", TZ: "UTC" };
}

function run(binary: string, args: string[], user: RunAs | undefined): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env: serverEnv(), stdio: ["ignore", "pipe", "pipe"], ...(user ?? {}) });
    let output = "";
    const collect = (chunk: Buffer): void => {
      if (output.length < 20_000) output += chunk.toString();
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, output }));
  });
}

function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs one statement on the server with a short-lived connection. */
async function adminQuery(serverUrl: string, text: string): Promise<void> {
  const { Client } = await import("pg");
  const client = new Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function withDatabases(serverUrl: string): Pick<TestPostgres, "createDatabase" | "createSchema"> & { dropShared(): Promise<void> } {
  let n = 0;
  let shared: Promise<TestDatabase> | undefined;
  const createDatabase = async (): Promise<TestDatabase> => {
    const name = `keelson_test_${process.pid}_${++n}_${randomBytes(3).toString("hex")}`;
    await adminQuery(serverUrl, `CREATE DATABASE "${name}" TEMPLATE template0`);
    return {
      name,
      url: databaseUrl(serverUrl, name),
      drop: () => adminQuery(serverUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
    };
  };
  return {
    createDatabase,
    async createSchema(): Promise<TestSchema> {
      shared ??= createDatabase();
      const db = await shared;
      const schema = `t_${++n}_${randomBytes(3).toString("hex")}`;
      return { url: db.url, schema, drop: () => adminQuery(db.url, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`) };
    },
    async dropShared(): Promise<void> {
      if (shared !== undefined) await (await shared).drop();
    },
  };
}

/**
 * Finds or starts a PostgreSQL: KEELSON_TEST_POSTGRES_URL (a role that may create databases),
 * else a private cluster in a temp folder. Call `stop()` in afterAll.
 *
 * @example
 * let pg: TestPostgres;
 * beforeAll(async () => { pg = await startTestPostgres(); });
 * afterAll(() => pg.stop());
 * const db = await pg.createDatabase(); // db.url, then db.drop()
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const external = process.env.KEELSON_TEST_POSTGRES_URL;
  if (external !== undefined) {
    await adminQuery(external, "SELECT 1");
    const { dropShared, ...databases } = withDatabases(external);
    return { url: external, pid: undefined, ...databases, stop: dropShared };
  }
  const binaries = findBinaries();
  const user = runAs();
  if (binaries === undefined || user === "missing") throw new Error(`cannot start PostgreSQL: ${postgresAvailability().reason}`);

  const tmp = await makeTempDir("keelson-pg-");
  try {
    if (user !== undefined) chownSync(tmp.dir, user.uid, user.gid);
    const data = join(tmp.dir, "data");
    const init = await run(
      binaries.initdb,
      ["-D", data, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      user,
    );
    if (init.code !== 0) throw new Error(`initdb exited with ${String(init.code)}: ${init.output}`);
    // A port can be taken between freePort() and postgres binding it: try another one then.
    for (let attempt = 1; ; attempt++) {
      try {
        return await startServer(binaries.postgres, data, tmp, user);
      } catch (err) {
        if (attempt >= 3 || !String(err).includes("could not bind")) throw err;
      }
    }
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
}

async function startServer(binary: string, data: string, tmp: { dir: string; cleanup: () => Promise<void> }, user: RunAs | undefined): Promise<TestPostgres> {
  const port = await freePort();
  const settings = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: tmp.dir,
    // Test data is thrown away: no need to survive a power cut.
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    max_connections: "100",
    shared_buffers: "32MB",
  };
  const args = ["-D", data, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  const child: ChildProcess = spawn(binary, args, { env: serverEnv(), stdio: ["ignore", "ignore", "pipe"], ...(user ?? {}) });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (log.length < 20_000) log += chunk.toString();
  });
  let spawnError: Error | undefined;
  child.once("error", (err) => (spawnError = err));
  const exited = once(child, "exit");
  if (child.pid === undefined) {
    await new Promise((r) => setImmediate(r));
    throw new Error(`cannot start ${binary}: ${spawnError?.message ?? "no pid"}`);
  }
  const pid = child.pid;
  // A worker that dies without afterAll must not leave a server behind: SIGQUIT ends it at once.
  const onExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, "SIGQUIT");
  };
  process.once("exit", onExit);
  const stopServer = async (): Promise<void> => {
    process.removeListener("exit", onExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    // SIGINT is PostgreSQL's fast shutdown: ends the sessions, then stops cleanly.
    process.kill(pid, "SIGINT");
    const done = await Promise.race([exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 15_000).unref())]);
    if (!done) {
      process.kill(pid, "SIGQUIT");
      await exited;
    }
  };
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  // Stop waiting as soon as postgres exits (a taken port, a bad setting): its log says why.
  const exitedEarly = exited.then(() => Promise.reject(new Error(`postgres exited with ${String(child.exitCode ?? child.signalCode)}: ${log}`)));
  exitedEarly.catch(() => {});
  try {
    await Promise.race([
      waitFor(() => adminQuery(url, "SELECT 1").then(() => true), { timeoutMs: 30_000, intervalMs: 50, what: "PostgreSQL to accept connections" }),
      exitedEarly,
    ]);
  } catch (err) {
    await stopServer();
    throw err;
  }
  // The cluster is thrown away whole, so its databases need no dropping.
  const { dropShared: _dropShared, ...databases } = withDatabases(url);
  return {
    url,
    pid,
    ...databases,
    async stop() {
      await stopServer();
      await tmp.cleanup();
    },
  };
}
