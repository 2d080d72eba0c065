// A private PostgreSQL for the benchmarks, like test/support/postgres.ts starts one: initdb into a
// temp folder (as the postgres user when root), listening on 127.0.0.1 on a free port, fsync on.
// With KEELSON_TEST_POSTGRES_URL set, a fresh database on that server instead (dropped by stop()).
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chownSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

/**
 * Starts a server (or creates a database on KEELSON_TEST_POSTGRES_URL's) and resolves once it
 * accepts connections.
 * @param {{ synchronousCommit?: "on" | "off", name?: string }} [options] synchronous_commit of a
 *   private server (default "on", PostgreSQL's own); name: prefix of the external database's name.
 * @returns {Promise<{ url: string, pid?: number, stop: () => Promise<void> }>}
 * @example
 *   const server = await startPostgres({ synchronousCommit: "off" });
 *   try { ... server.url ... } finally { await server.stop(); }
 */
export async function startPostgres(options = {}) {
  const external = process.env.KEELSON_TEST_POSTGRES_URL;
  if (external !== undefined) {
    const name = `${options.name ?? "keelson_bench"}_${process.pid}`;
    const admin = async (text) => {
      const c = new pg.Client({ connectionString: external });
      await c.connect();
      try {
        await c.query(text);
      } finally {
        await c.end();
      }
    };
    await admin(`CREATE DATABASE "${name}" TEMPLATE template0`);
    const url = new URL(external);
    url.pathname = `/${name}`;
    return { url: url.toString(), stop: () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
  }
  const base = "/usr/lib/postgresql";
  const dirs = [spawnSync("pg_config", ["--bindir"], { encoding: "utf8" }).stdout?.trim(), ...(existsSync(base) ? readdirSync(base).sort((a, b) => b - a).map((v) => join(base, v, "bin")) : [])];
  const bin = dirs.find((d) => d && existsSync(join(d, "initdb")) && existsSync(join(d, "postgres")));
  if (bin === undefined) throw new Error("no initdb/postgres found: apt-get install postgresql, or set KEELSON_TEST_POSTGRES_URL");
  let user = {};
  if (process.getuid() === 0) {
    const [, , uid, gid] = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"))?.split(":") ?? [];
    if (uid === undefined) throw new Error("running as root and there is no postgres user to run initdb as");
    user = { uid: Number(uid), gid: Number(gid) };
  }
  const dir = await mkdtemp(join(tmpdir(), "keelson-bench-pg-"));
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid);
  const env = { PATH: process.env.PATH, LC_ALL: "C", TZ: "UTC" };
  const init = spawnSync(join(bin, "initdb"), ["-D", join(dir, "data"), "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-instructions"], { env, ...user, encoding: "utf8" });
  if (init.status !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr}`);
  }
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const settings = { listen_addresses: "127.0.0.1", unix_socket_directories: dir, synchronous_commit: options.synchronousCommit ?? "on", shared_buffers: "64MB" };
  const child = spawn(join(bin, "postgres"), ["-D", join(dir, "data"), "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])], { env, ...user, stdio: "ignore" });
  const exited = once(child, "exit");
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, "SIGINT");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      await c.end();
      return { url, pid: child.pid, stop };
    } catch (err) {
      await c.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null) {
        await stop();
        throw new Error(`PostgreSQL did not start: ${err.message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
