// `keelson tokens`, `whoami`, `audit` and `secrets` in this process against a real control plane
// (SQLite store in a temp folder, memory driver): tokens shown once and refused once revoked, the
// audit chain verified and found broken after an edit of the database, and secret values read from
// stdin, refused on the command line, and never printed.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import { main } from "./main.js";
import { parseDuration, parseSinceTime } from "./security-commands.js";
import { createApiSecurity, createControlPlane, type ApiSecurity, type ControlPlane } from "../api/index.js";
import { createReconciler } from "../delivery/index.js";
import { parseManifest } from "../manifest/index.js";
import { createMemoryDriver } from "../runtime/index.js";
import type { AuditRecord, TokenRecord } from "../security/index.js";
import { createSqliteStore, type Store } from "../store/index.js";

const yaml = `project: shop
services:
  web:
    owner: web
    path: services/web
    start: node server.mjs
    replicas: 0
`;
const SECRET = "pa55-Word-that-must-never-be-printed-7f3a";
const OTHER_SECRET = "second-Value-also-never-printed-91bc";
const ARGV_SECRET = "argv-Value-refused-never-stored-55de";
const TYPED_SECRET = "typed-Value-not-echoed-0c2e";

/** A terminal as readline sees one: a TTY in raw mode that delivers `typed` as keystrokes. */
function fakeTerminal(typed: string): PassThrough {
  const tty = Object.assign(new PassThrough(), { isTTY: true, isRaw: false, setRawMode: () => tty });
  setImmediate(() => tty.write(typed));
  return tty;
}

describe("keelson tokens, whoami, audit and secrets (CLI in process)", () => {
  let cp: ControlPlane;
  let url: string;
  let dir: string;
  let dbPath: string;
  let store: Store;
  let security: ApiSecurity;
  let cleanup: () => Promise<void>;
  /** Everything every command printed, to look for secret values in. */
  const printed: string[] = [];
  const silent = { info() {}, warn() {}, error() {} };

  /** Runs `keelson …` in this process against the test's control plane; its exit code and output. */
  async function keelson(args: string[], options: { stdin?: Readable; token?: string } = {}): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true));
    const stdin = Object.getOwnPropertyDescriptor(process, "stdin");
    if (options.stdin) Object.defineProperty(process, "stdin", { value: options.stdin, configurable: true });
    if (options.token !== undefined) vi.stubEnv("KEELSON_TOKEN", options.token);
    process.exitCode = undefined;
    try {
      const code = await main(["node", "keelson", ...args, "-C", dir]);
      return { code, out, err };
    } finally {
      process.exitCode = undefined;
      vi.unstubAllEnvs();
      if (options.stdin && stdin) Object.defineProperty(process, "stdin", stdin);
      stdout.mockRestore();
      stderr.mockRestore();
      printed.push(out, err);
    }
  }
  const auditCount = async () => (await security.audit.list({ limit: 1000 })).length;

  beforeAll(async () => {
    const tmp = await makeTempDir("keelson-security-cli-");
    cleanup = tmp.cleanup;
    dir = tmp.dir;
    const stateDir = join(dir, ".keelson");
    await mkdir(join(dir, "services", "web"), { recursive: true });
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(dir, "keelson.yaml"), yaml);
    await writeFile(join(dir, "services", "web", "server.mjs"), "// never started: replicas 0\n");
    dbPath = join(stateDir, "state.db");
    store = await createSqliteStore({ path: dbPath });
    const { manifest } = parseManifest(yaml, join(dir, "keelson.yaml"), { checkPaths: false });
    await store.applyDesiredState({
      project: { name: "shop", manifestPath: join(dir, "keelson.yaml"), manifestHash: "h", appliedAt: new Date().toISOString() },
      upsert: Object.entries(manifest.services).map(([name, spec]) => ({ project: "shop", name, spec: JSON.parse(JSON.stringify(spec)) as Record<string, unknown>, release: undefined })),
      remove: [],
      events: [],
    });
    security = await createApiSecurity({ store, project: "shop", stateDir });
    const { token } = await security.tokens.create({ name: "ana", role: "admin", actor: "test" });
    const driver = createMemoryDriver();
    const vault = security.vault;
    const reconciler = createReconciler({
      store,
      driver,
      project: "shop",
      stateDir,
      gatewayUrl: "http://127.0.0.1:1",
      log: silent,
      // As `keelson serve` wires it: a changed secret makes a new release.
      secretsVersion: async (service) => ((await vault.list(service)).length === 0 ? undefined : vault.digest(service)),
    });
    cp = createControlPlane({ project: "shop", dir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security });
    url = await cp.listen("127.0.0.1", 0);
    // What `keelson up` writes, so that the CLI finds this control plane and has its token.
    await writeFile(join(stateDir, "controlplane.json"), JSON.stringify({ pid: process.pid, url, project: "shop" }));
    await writeFile(join(stateDir, "token"), `${token}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await cp.close();
    await store.close();
    await cleanup();
  });

  it("parses --expires and --since durations", () => {
    expect(parseDuration("30d")).toBe(30 * 86_400_000);
    expect(parseDuration("90m")).toBe(90 * 60_000);
    expect(() => parseDuration("30")).toThrow(/30d, 12h/);
    expect(() => parseDuration("0d")).toThrow(/30d, 12h/);
    expect(parseSinceTime("1h", Date.parse("2026-03-01T12:00:00Z"))).toBe("2026-03-01T11:00:00.000Z");
    expect(parseSinceTime("2026-03-01T12:00:00+01:00")).toBe("2026-03-01T11:00:00.000Z");
    expect(() => parseSinceTime("yesterday")).toThrow(/ISO time or a duration/);
  });

  it("creates a token shown once, lists it, and refuses it with 401 once revoked", async () => {
    const created = await keelson(["tokens", "create", "ci-web", "--role", "deployer", "--team", "web", "--expires", "30d"]);
    expect(created.code, created.err).toBe(0);
    const token = /^ {2}(ks_\S+)$/m.exec(created.out)?.[1];
    expect(token).toBeDefined();
    expect(created.out).toContain("cannot be shown again");
    expect(created.out).toMatch(/token ci-web \(tok_[0-9a-f]{8}\) created: deployer for teams web, expires \d{4}-/);

    const json = await keelson(["tokens", "create", "watcher", "--role", "viewer", "--json"]);
    const viewer = JSON.parse(json.out) as { token: string; record: TokenRecord };
    expect(viewer.record).toMatchObject({ name: "watcher", role: "viewer", teams: [] });
    expect(viewer.token).toMatch(/^ks_/);

    const list = JSON.parse((await keelson(["tokens", "list", "--json"])).out) as TokenRecord[];
    expect(list.map((t) => [t.name, t.role, t.teams, t.expiresAt !== undefined])).toEqual([
      ["ana", "admin", [], false],
      ["ci-web", "deployer", ["web"], true],
      ["watcher", "viewer", [], false],
    ]);
    expect(JSON.stringify(list)).not.toContain(token);
    const table = await keelson(["tokens", "list"]);
    expect(table.out).toMatch(/^ID +NAME +ROLE +TEAMS +CREATED +LAST USED +EXPIRES +REVOKED$/m);
    expect(table.out).toMatch(/^tok_[0-9a-f]{8} +ci-web +deployer +web +\d{4}-\d\d-\d\d \d\d:\d\d user:ana +never +\d{4}-\d\d-\d\d \d\d:\d\d +-$/m);

    const who = await keelson(["whoami"], { token: token as string });
    expect(who.out).toContain(`token "ci-web" (deployer for teams web)`);
    // A deployer may not manage tokens: 403, printed, exit 1.
    const forbidden = await keelson(["tokens", "list"], { token: token as string });
    expect(forbidden.code).toBe(1);
    expect(forbidden.err).toContain("KEELSON_ERR_FORBIDDEN");
    expect((await keelson(["tokens", "create", "x", "--role", "root"])).code).toBe(2);

    const revoked = await keelson(["tokens", "revoke", "ci-web"]);
    expect(revoked.code, revoked.err).toBe(0);
    expect(revoked.out).toMatch(/token ci-web \(tok_[0-9a-f]{8}\) revoked at /);
    const raw = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
    expect(raw.status).toBe(401);
    const refused = await keelson(["whoami"], { token: token as string });
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/revoked/);
    expect(refused.err).toContain("KEELSON_ERR_UNAUTHENTICATED");
    const after = JSON.parse((await keelson(["tokens", "list", "--json"])).out) as TokenRecord[];
    expect(after.find((t) => t.name === "ci-web")).toMatchObject({ revokedBy: "user:ana", revokedAt: expect.any(String) });
    expect((await keelson(["tokens", "revoke", "nobody"])).err).toContain("KEELSON_ERR_NOT_FOUND");
  });

  it("sets a secret from piped stdin, lists its name and version, and never prints its value", async () => {
    const set = await keelson(["secrets", "set", "web", "DB_PASSWORD", "--no-deploy"], { stdin: Readable.from([`${SECRET}\n`]) });
    expect(set.code, set.err).toBe(0);
    expect(set.out).toContain("secret DB_PASSWORD of web set (version 1)");
    expect(set.out).toContain("running replicas keep the old value until the next deploy");
    // Only the one trailing newline was dropped: the vault has the exact value.
    expect(await security.vault.values("web")).toEqual({ DB_PASSWORD: SECRET });
    const again = await keelson(["secrets", "set", "web", "DB_PASSWORD", "--no-deploy"], { stdin: Readable.from([OTHER_SECRET]) });
    expect(again.out).toContain("(version 2)");

    const list = await keelson(["secrets", "list", "web"]);
    expect(list.out).toMatch(/^NAME +VERSION +UPDATED +BY +KEY$/m);
    expect(list.out).toMatch(/^DB_PASSWORD +2 +\d{4}-\d\d-\d\d \d\d:\d\d +user:ana +\S+$/m);
    const json = JSON.parse((await keelson(["secrets", "list", "web", "--json"])).out) as { service: string; secrets: Array<Record<string, unknown>> };
    expect(json).toMatchObject({ service: "web", secrets: [{ name: "DB_PASSWORD", version: 2, updatedBy: "user:ana" }] });
    expect(Object.keys(json.secrets[0] ?? {}).sort()).toEqual(["keyId", "name", "updatedAt", "updatedBy", "version"]);

    const empty = await keelson(["secrets", "set", "web", "EMPTY", "--no-deploy"], { stdin: Readable.from([]) });
    expect(empty.code).toBe(1);
    expect(empty.err).toContain("no value on stdin");
    expect((await keelson(["secrets", "list", "nope"])).err).toContain("KEELSON_ERR_NOT_FOUND");

    const rotated = await keelson(["secrets", "rotate-key"]);
    expect(rotated.code, rotated.err).toBe(0);
    expect(rotated.out).toMatch(/vault key rotated: \S+ → \S+, 1 secret re-encrypted/);
    expect(await security.vault.values("web")).toEqual({ DB_PASSWORD: OTHER_SECRET });

    await keelson(["audit", "--json", "--limit", "1000"]);
    for (const text of printed) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(OTHER_SECRET);
    }
  });

  it("asks for the value on a terminal without echoing what is typed", async () => {
    const typed = await keelson(["secrets", "set", "web", "SESSION_KEY", "--no-deploy"], { stdin: fakeTerminal(`${TYPED_SECRET}\r`) });
    expect(typed.code, typed.err).toBe(0);
    expect(typed.err).toContain("value of SESSION_KEY for web (not shown): ");
    expect(typed.err + typed.out).not.toContain(TYPED_SECRET);
    expect(typed.out).toContain("secret SESSION_KEY of web set (version 1)");
    expect((await security.vault.values("web")).SESSION_KEY).toBe(TYPED_SECRET);
    const nothing = await keelson(["secrets", "set", "web", "SESSION_KEY", "--no-deploy"], { stdin: fakeTerminal("\r") });
    expect(nothing.code).toBe(1);
    expect(nothing.err).toContain("no value given for SESSION_KEY; the secret was not set");
  });

  it("refuses a value given on the command line with exit 2, saying why and how, and stores nothing", async () => {
    const before = await security.vault.list("web");
    const refused = await keelson(["secrets", "set", "web", "API_KEY", ARGV_SECRET]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("shell history");
    expect(refused.err).toContain("process list");
    expect(refused.err).toContain('printf %s "$VALUE" | keelson secrets set web API_KEY');
    expect(refused.err + refused.out).not.toContain(ARGV_SECRET);
    expect(await security.vault.list("web")).toEqual(before);
  });

  it("deploys the service after a secret changes unless --no-deploy, and deletes secrets", async () => {
    const set = await keelson(["secrets", "set", "web", "API_KEY"], { stdin: Readable.from([`${SECRET}\n`]) });
    expect(set.code, set.err + set.out).toBe(0);
    expect(set.out).toContain("keelson deploy web");
    expect(set.out).toMatch(/✓ web: release r-[0-9a-f]{12} serves all traffic/);
    const [release] = await store.listReleases("shop", "web");
    expect(release).toBeDefined();

    const removed = await keelson(["secrets", "delete", "web", "API_KEY"]);
    expect(removed.code, removed.err + removed.out).toBe(0);
    expect(removed.out).toContain("secret API_KEY of web deleted");
    expect(removed.out).toMatch(/web: new release r-[0-9a-f]{12} \(config changed/);
    expect((await security.vault.list("web")).map((s) => s.name)).toEqual(["DB_PASSWORD", "SESSION_KEY"]);
    for (const text of printed) expect(text).not.toContain(SECRET);
  });

  it("lists audit records with filters, verifies the chain, and names the first edited record", async () => {
    // Audit records are written as answers finish: wait for all 12 changes above (2 token creates,
    // 2 revokes, 4 secret sets, the rotation, the deletion and 2 deploys) to have landed.
    await waitFor(async () => (await auditCount()) >= 12, { what: "the audit records of the changes above" });
    const records = JSON.parse((await keelson(["audit", "--json", "--action", "POST /v1/tokens"])).out) as AuditRecord[];
    // Newest first: watcher, then ci-web.
    expect(records.map((r) => [r.actor, r.action, r.target, r.result, r.status, (r.after as { name?: string } | undefined)?.name])).toEqual([
      ["user:ana", "POST /v1/tokens", "/v1/tokens", "ok", 201, "watcher"],
      ["user:ana", "POST /v1/tokens", "/v1/tokens", "ok", 201, "ci-web"],
    ]);
    const denied = JSON.parse((await keelson(["audit", "--json", "--target", "service/web", "--since", "1h", "--limit", "2"])).out) as AuditRecord[];
    expect(denied).toHaveLength(2);
    expect(denied.every((r) => r.target === "service/web")).toBe(true);
    const table = await keelson(["audit", "--actor", "user:ana"]);
    expect(table.out).toMatch(/^SEQ +TIME \(UTC\) +ACTOR +ACTION +TARGET +RESULT +FROM$/m);
    expect(table.out).toMatch(/^\d+ +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +user:ana +DELETE \/v1\/tokens\/:id +tokens\/ci-web +ok 200 +127\.0\.0\.1$/m);
    expect((await keelson(["audit", "--since", "soon"])).code).toBe(2);
    const mixed = await keelson(["audit", "--verify", "--actor", "user:ana"]);
    expect(mixed.code).toBe(2);
    expect(mixed.err).toContain("--verify checks the whole chain");

    const intact = await keelson(["audit", "--verify"]);
    expect(intact.code, intact.err).toBe(0);
    expect(intact.out).toContain(`audit chain intact: ${await auditCount()} records`);

    // Someone with the database file in hand turns a token creation into a denial.
    const victim = records.find((r) => r.result === "ok");
    const db = new Database(dbPath);
    try {
      db.exec("DROP TRIGGER IF EXISTS events_append_only_update; DROP TRIGGER IF EXISTS events_append_only_delete;");
      db.prepare("UPDATE events SET details = json_set(details, '$.result', 'denied') WHERE seq = ?").run(victim?.seq);
    } finally {
      db.close();
    }
    const broken = await keelson(["audit", "--verify"]);
    expect(broken.code).toBe(1);
    expect(broken.out).toContain(`audit chain broken at record ${victim?.seq}: its content does not match its hash (edited)`);
    const json = JSON.parse((await keelson(["audit", "--verify", "--json"])).out) as { ok: boolean; firstBad: { seq: number } };
    expect(json).toMatchObject({ ok: false, firstBad: { seq: victim?.seq } });
    for (const text of printed) for (const value of [SECRET, OTHER_SECRET, TYPED_SECRET, ARGV_SECRET]) expect(text).not.toContain(value);
  });
});
