import { chmod, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { makeTempDir, rejection } from "#test-support";
import { createMemoryStore } from "../store/index.js";
import type { Store } from "../store/index.js";
import { bootstrapAdminToken, createTokenService, hashToken, readTokenFile, tokensSettingKey } from "./tokens.js";
import type { TokenService, TokenServiceOptions } from "./tokens.js";

const START = Date.parse("2025-03-01T12:00:00.000Z");

/** A store that counts setting writes and can be told to fail them. */
function instrumented(store: Store): Store & { settingWrites: number; failWrites: boolean } {
  const wrapper = Object.create(store) as Store & { settingWrites: number; failWrites: boolean };
  wrapper.settingWrites = 0;
  wrapper.failWrites = false;
  wrapper.setSetting = async (key, value) => {
    if (wrapper.failWrites) throw new KeelsonError("KEELSON_ERR_STORE", "disk full");
    wrapper.settingWrites += 1;
    return store.setSetting(key, value);
  };
  return wrapper;
}

describe("createTokenService", () => {
  let clock: number;
  let store: ReturnType<typeof instrumented>;
  let tokens: TokenService;
  const now = (): Date => new Date(clock);

  function service(extra: Partial<TokenServiceOptions> = {}): TokenService {
    return createTokenService({ store, project: "shop", now, ...extra });
  }

  beforeEach(() => {
    clock = START;
    store = instrumented(createMemoryStore({ now: () => clock }));
    tokens = service();
  });

  afterEach(async () => {
    await tokens.flush();
    await store.close();
  });

  describe("create", () => {
    it("returns a 256-bit ks_ token and a record without it", async () => {
      const { token, record } = await tokens.create({ name: "ci-web", role: "deployer", teams: ["web"], actor: "user:admin" });
      expect(token).toMatch(/^ks_[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(token.slice(3), "base64url")).toHaveLength(32);
      expect(record).toEqual({
        id: expect.stringMatching(/^tok_[0-9a-f]{8}$/) as unknown,
        name: "ci-web",
        role: "deployer",
        teams: ["web"],
        createdAt: "2025-03-01T12:00:00.000Z",
        createdBy: "user:admin",
      });
    });

    it("stores only the SHA-256 hash of the token", async () => {
      const { token, record } = await tokens.create({ name: "admin", role: "admin", actor: "cli" });
      const raw = await store.getSetting(tokensSettingKey("shop"));
      expect(raw).toBeDefined();
      expect(raw).not.toContain(token);
      expect(raw).not.toContain(token.slice(3));
      expect(JSON.parse(raw ?? "[]")).toEqual([expect.objectContaining({ id: record.id, hash: hashToken(token) })]);
    });

    it("gives different tokens and ids each time", async () => {
      const a = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      const b = await tokens.create({ name: "b", role: "viewer", actor: "cli" });
      expect(a.token).not.toBe(b.token);
      expect(a.record.id).not.toBe(b.record.id);
    });

    it("records a token.created event with name, role and teams only", async () => {
      const { token, record } = await tokens.create({ name: "ci-web", role: "deployer", teams: ["web", "api"], actor: "user:admin" });
      const events = await store.listEvents({ project: "shop", kinds: ["token.created"] });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ actor: "user:admin", subject: `token/${record.id}`, details: { name: "ci-web", role: "deployer", teams: ["web", "api"] } });
      expect(Object.keys(events[0]?.details ?? {}).sort()).toEqual(["name", "role", "teams"]);
      expect(JSON.stringify(events)).not.toContain(token);
      expect(JSON.stringify(events)).not.toContain(hashToken(token));
    });

    it("sets expiresAt from expiresInMs", async () => {
      const { record } = await tokens.create({ name: "short", role: "viewer", expiresInMs: 3_600_000, actor: "cli" });
      expect(record.expiresAt).toBe("2025-03-01T13:00:00.000Z");
    });

    it.each([
      ["", "name"],
      ["a".repeat(65), "name"],
      ["a/b", "name"],
      ["has space", "name"],
    ])("rejects the name %j", async (name, field) => {
      const err = await rejection(tokens.create({ name, role: "viewer", actor: "cli" }), "KEELSON_ERR_INVALID_INPUT");
      expect(err.message).toMatch(new RegExp(`^${field}:`));
    });

    it("accepts a 64-character name of every allowed character", async () => {
      const name = `Az09._@-${"x".repeat(56)}`;
      expect((await tokens.create({ name, role: "viewer", actor: "cli" })).record.name).toBe(name);
    });

    it("rejects an unknown role", async () => {
      const err = await rejection(tokens.create({ name: "x", role: "root" as "admin", actor: "cli" }), "KEELSON_ERR_INVALID_INPUT");
      expect(err.message).toContain('role: expected one of viewer, deployer, admin, got "root"');
    });

    it("requires teams for a deployer and refuses them for viewer and admin", async () => {
      expect((await rejection(tokens.create({ name: "d", role: "deployer", actor: "cli" }), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^teams: a deployer token needs/);
      expect((await rejection(tokens.create({ name: "v", role: "viewer", teams: ["web"], actor: "cli" }), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^teams: only a deployer/);
      expect((await rejection(tokens.create({ name: "a", role: "admin", teams: ["web"], actor: "cli" }), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^teams:/);
      expect((await rejection(tokens.create({ name: "d", role: "deployer", teams: ["web", "Bad Team"], actor: "cli" }), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^teams\[1\]:/);
      expect(await tokens.count()).toBe(0);
    });

    it.each([0, -5, 1.5, Number.NaN])("rejects expiresInMs %s", async (expiresInMs) => {
      const err = await rejection(tokens.create({ name: "x", role: "viewer", expiresInMs, actor: "cli" }), "KEELSON_ERR_INVALID_INPUT");
      expect(err.message).toMatch(/^expiresInMs:/);
    });

    it("refuses a name in use, and frees it when that token is revoked", async () => {
      const first = await tokens.create({ name: "ci", role: "viewer", actor: "cli" });
      const err = await rejection(tokens.create({ name: "ci", role: "admin", actor: "cli" }), "KEELSON_ERR_CONFLICT");
      expect(err.message).toContain(`"ci"`);
      expect(err.message).toContain(first.record.id);
      await tokens.revoke("ci", "cli");
      const second = await tokens.create({ name: "ci", role: "admin", actor: "cli" });
      expect(second.record.id).not.toBe(first.record.id);
    });

    it("gives concurrent creates of one name exactly one winner", async () => {
      const outcomes = await Promise.allSettled([1, 2, 3].map(() => tokens.create({ name: "race", role: "viewer", actor: "cli" })));
      expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
      expect(await tokens.count()).toBe(1);
    });
  });

  describe("list and count", () => {
    it("lists every token, revoked too, without hashes; counts the unrevoked", async () => {
      await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      await tokens.create({ name: "b", role: "admin", actor: "cli" });
      await tokens.revoke("a", "cli");
      const list = await tokens.list();
      expect(list.map((r) => r.name)).toEqual(["a", "b"]);
      expect(list.some((r) => "hash" in r)).toBe(false);
      expect(await tokens.count()).toBe(1);
    });

    it("reports a corrupt setting as a store error naming the key", async () => {
      await store.setSetting(tokensSettingKey("shop"), '{"not":"a list"}');
      const err = await rejection(tokens.list(), "KEELSON_ERR_STORE");
      expect(err.message).toContain("security.tokens/shop");
    });

    it("keeps projects apart", async () => {
      await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      const other = createTokenService({ store, project: "blog", now });
      expect(await other.count()).toBe(0);
      await other.create({ name: "a", role: "viewer", actor: "cli" });
      expect(await tokens.count()).toBe(1);
    });
  });

  describe("revoke", () => {
    it("revokes by id or by name and records token.revoked", async () => {
      const a = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      await tokens.create({ name: "b", role: "deployer", teams: ["web"], actor: "cli" });
      clock += 1000;
      const byId = await tokens.revoke(a.record.id, "user:root");
      expect(byId).toMatchObject({ id: a.record.id, revokedAt: "2025-03-01T12:00:01.000Z", revokedBy: "user:root" });
      const byName = await tokens.revoke("b", "user:root");
      expect(byName.name).toBe("b");
      const events = await store.listEvents({ project: "shop", kinds: ["token.revoked"] });
      expect(events.map((e) => [e.subject, e.actor, e.details])).toEqual([
        [`token/${a.record.id}`, "user:root", { name: "a", role: "viewer", teams: [] }],
        [`token/${byName.id}`, "user:root", { name: "b", role: "deployer", teams: ["web"] }],
      ]);
    });

    it("returns an already revoked token unchanged without a second event", async () => {
      const a = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      const first = await tokens.revoke("a", "cli");
      clock += 5000;
      const again = await tokens.revoke(a.record.id, "other");
      expect(again).toEqual(first);
      expect(await tokens.revoke("a", "other")).toEqual(first);
      expect(await store.listEvents({ project: "shop", kinds: ["token.revoked"] })).toHaveLength(1);
    });

    it("says NOT_FOUND for an unknown token", async () => {
      const err = await rejection(tokens.revoke("nope", "cli"), "KEELSON_ERR_NOT_FOUND");
      expect(err.message).toContain('"nope"');
    });
  });

  describe("authenticate", () => {
    it("accepts a bearer token, any case of the scheme, and names the principal", async () => {
      const { token, record } = await tokens.create({ name: "ci-web", role: "deployer", teams: ["web"], actor: "cli" });
      const expected = { ok: true, principal: { kind: "user", tokenId: record.id, name: "ci-web", role: "deployer", teams: ["web"] } };
      expect(await tokens.authenticate(`Bearer ${token}`)).toEqual(expected);
      expect(await tokens.authenticate(`bearer ${token}`)).toEqual(expected);
      expect(await tokens.authenticate(`BEARER  ${token} `)).toEqual(expected);
    });

    it.each([[undefined], [""], ["   "]])("says missing for %j", async (header) => {
      expect(await tokens.authenticate(header)).toEqual({ ok: false, reason: "missing" });
    });

    it("says malformed for anything but Bearer and a ks_ token", async () => {
      const { token } = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      for (const header of [token, `Basic ${token}`, "Bearer", "Bearer ", `Bearer ${token} extra`, "Bearer ks_short", `Bearer ${token}x`, `Token ${token}`]) {
        expect(await tokens.authenticate(header), header).toEqual({ ok: false, reason: "malformed" });
      }
    });

    it("says unknown for a well-formed token that was never issued", async () => {
      await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      expect(await tokens.authenticate(`Bearer ks_${"A".repeat(43)}`)).toEqual({ ok: false, reason: "unknown" });
    });

    it("says expired once expiresAt is reached", async () => {
      const { token } = await tokens.create({ name: "a", role: "viewer", expiresInMs: 60_000, actor: "cli" });
      clock += 59_999;
      expect((await tokens.authenticate(`Bearer ${token}`)).ok).toBe(true);
      clock += 1;
      expect(await tokens.authenticate(`Bearer ${token}`)).toEqual({ ok: false, reason: "expired" });
    });

    it("says revoked right after a revoke in the same process", async () => {
      const { token } = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      expect((await tokens.authenticate(`Bearer ${token}`)).ok).toBe(true);
      await tokens.revoke("a", "cli");
      expect(await tokens.authenticate(`Bearer ${token}`)).toEqual({ ok: false, reason: "revoked" });
    });

    it("sees tokens created and revoked by another process after refreshMs, or on reload", async () => {
      expect(await tokens.authenticate(`Bearer ks_${"B".repeat(43)}`)).toEqual({ ok: false, reason: "unknown" });
      const cli = service();
      const { token } = await cli.create({ name: "late", role: "viewer", actor: "cli" });
      // Within refreshMs the cached copy answers.
      expect(await tokens.authenticate(`Bearer ${token}`)).toEqual({ ok: false, reason: "unknown" });
      clock += 1000;
      expect((await tokens.authenticate(`Bearer ${token}`)).ok).toBe(true);
      await cli.revoke("late", "cli");
      await tokens.reload();
      expect(await tokens.authenticate(`Bearer ${token}`)).toEqual({ ok: false, reason: "revoked" });
    });

    it("answers from the cached copy when a refresh fails", async () => {
      const { token } = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      const errors: unknown[] = [];
      const flaky = Object.create(store) as Store;
      let fail = false;
      flaky.getSetting = async (key) => {
        if (fail) throw new KeelsonError("KEELSON_ERR_STORE", "locked");
        return store.getSetting(key);
      };
      const service2 = createTokenService({ store: flaky, project: "shop", now, onError: (err) => errors.push(err) });
      expect((await service2.authenticate(`Bearer ${token}`)).ok).toBe(true);
      fail = true;
      clock += 5000;
      expect((await service2.authenticate(`Bearer ${token}`)).ok).toBe(true);
      expect(errors).toHaveLength(1);
    });

    it("writes lastUsedAt behind the request, at most once a minute", async () => {
      const { token } = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      const writesAfterCreate = store.settingWrites;
      await tokens.authenticate(`Bearer ${token}`);
      await tokens.flush();
      expect((await tokens.list())[0]?.lastUsedAt).toBe("2025-03-01T12:00:00.000Z");
      expect(store.settingWrites).toBe(writesAfterCreate + 1);
      clock += 30_000;
      await tokens.authenticate(`Bearer ${token}`);
      await tokens.flush();
      expect(store.settingWrites).toBe(writesAfterCreate + 1);
      clock += 30_000;
      await tokens.authenticate(`Bearer ${token}`);
      await tokens.flush();
      expect((await tokens.list())[0]?.lastUsedAt).toBe("2025-03-01T12:01:00.000Z");
      expect(store.settingWrites).toBe(writesAfterCreate + 2);
    });

    it("still authenticates when the lastUsedAt write fails, and reports the failure", async () => {
      const errors: unknown[] = [];
      tokens = service({ onError: (err) => errors.push(err) });
      const { token } = await tokens.create({ name: "a", role: "viewer", actor: "cli" });
      store.failWrites = true;
      expect((await tokens.authenticate(`Bearer ${token}`)).ok).toBe(true);
      await tokens.flush();
      expect(errors).toHaveLength(1);
      expect((errors[0] as KeelsonError).message).toBe("disk full");
      store.failWrites = false;
    });
  });
});

describe("bootstrapAdminToken and readTokenFile", () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let store: Store;
  let tokens: TokenService;

  beforeEach(async () => {
    tmp = await makeTempDir("keelson-tokens-");
    store = createMemoryStore();
    tokens = createTokenService({ store, project: "shop" });
  });

  afterEach(async () => {
    await tokens.flush();
    await store.close();
    await tmp.cleanup();
  });

  it("creates an admin token in a 0600 file in a 0700 folder when there are no tokens", async () => {
    const file = join(tmp.dir, "state", "admin-token");
    const boot = await bootstrapAdminToken({ tokens, file, actor: "controlplane" });
    expect(boot.created).toBe(true);
    if (!boot.created) return;
    expect(boot.record).toMatchObject({ name: "admin", role: "admin", createdBy: "controlplane" });
    expect(await readFile(file, "utf8")).toBe(`${boot.token}\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(tmp.dir, "state"))).mode & 0o777).toBe(0o700);
    const read = await readTokenFile(file);
    expect(read).toBe(boot.token);
    expect(await tokens.authenticate(`Bearer ${read}`)).toMatchObject({ ok: true, principal: { role: "admin", name: "admin" } });
  });

  it("does nothing when tokens exist, saying whether the file is there", async () => {
    const file = join(tmp.dir, "admin-token");
    await bootstrapAdminToken({ tokens, file, actor: "cp" });
    const before = await readFile(file, "utf8");
    expect(await bootstrapAdminToken({ tokens, file, actor: "cp" })).toEqual({ created: false, fileExists: true });
    expect(await readFile(file, "utf8")).toBe(before);
    await rm(file);
    expect(await bootstrapAdminToken({ tokens, file, actor: "cp" })).toEqual({ created: false, fileExists: false });
    expect(await tokens.count()).toBe(1);
  });

  it("creates a fresh admin token once every token is revoked", async () => {
    const file = join(tmp.dir, "admin-token");
    const first = await bootstrapAdminToken({ tokens, file, actor: "cp" });
    await tokens.revoke("admin", "cli");
    const second = await bootstrapAdminToken({ tokens, file, actor: "cp" });
    expect(second.created).toBe(true);
    expect(second.created && first.created && second.token !== first.token).toBe(true);
    expect(await readTokenFile(file)).toBe(second.created ? second.token : "");
  });

  it("takes the token back when the file cannot be written", async () => {
    const blocker = join(tmp.dir, "not-a-dir");
    await writeFile(blocker, "x");
    await expect(bootstrapAdminToken({ tokens, file: join(blocker, "admin-token"), actor: "cp" })).rejects.toThrow();
    expect(await tokens.count()).toBe(0);
  });

  it("refuses a token file others may read, naming the fix", async () => {
    const file = join(tmp.dir, "admin-token");
    await bootstrapAdminToken({ tokens, file, actor: "cp" });
    await chmod(file, 0o644);
    const err = await rejection(readTokenFile(file), "KEELSON_ERR_UNAUTHENTICATED");
    expect(err.message).toContain(file);
    expect(err.message).toContain(`chmod 600 ${file}`);
    expect(err.message).toContain("0644");
  });

  it("refuses a missing file or one without a token", async () => {
    const missing = join(tmp.dir, "nope");
    expect((await rejection(readTokenFile(missing), "KEELSON_ERR_UNAUTHENTICATED")).message).toContain(missing);
    const junk = join(tmp.dir, "junk");
    await mkdir(tmp.dir, { recursive: true });
    await writeFile(junk, "hello\n", { mode: 0o600 });
    expect((await rejection(readTokenFile(junk), "KEELSON_ERR_UNAUTHENTICATED")).message).toContain("does not hold");
  });
});
