// API tokens: created with a role (and a deployer's teams), stored only as SHA-256 hashes in
// one store setting per project, and checked on every API request from an in-memory map.
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { KeelsonError } from "@keelson/protocol";
import type { Store } from "../store/index.js";
import { ROLES } from "./authorize.js";
import type { Principal, Role } from "./authorize.js";
import { allowsGroupOrOther, fileMode, writePrivateFile } from "./private-file.js";

/** A token as listed: everything but the secret and its hash. */
export interface TokenRecord {
  /** "tok_" + 8 hex digits. */
  id: string;
  /** Unique among the project's tokens that are not revoked. */
  name: string;
  role: Role;
  /** The teams a deployer may change services of; empty for viewer and admin. */
  teams: string[];
  createdAt: string;
  createdBy: string;
  expiresAt?: string;
  revokedAt?: string;
  revokedBy?: string;
  /** Updated at most once a minute, after the request that used the token. */
  lastUsedAt?: string;
}

export interface CreateTokenInput {
  name: string;
  role: Role;
  /** Required (at least one) for a deployer; not allowed for viewer and admin. */
  teams?: string[];
  /** Lifetime; without it the token lasts until revoked. */
  expiresInMs?: number;
  /** Who creates it, e.g. "user:admin" (recorded in the event). */
  actor: string;
}

/** Why a request could not be authenticated. */
export type AuthFailure = "missing" | "malformed" | "unknown" | "expired" | "revoked";

export type AuthResult = { ok: true; principal: Principal } | { ok: false; reason: AuthFailure };

export interface TokenServiceOptions {
  store: Store;
  project: string;
  now?: () => Date;
  /**
   * How old the in-memory copy may get before `authenticate` re-reads the store setting,
   * so a token created or revoked by another process (the CLI) takes effect. Default 1000 ms.
   */
  refreshMs?: number;
  /** Told about failures of background work (lastUsedAt writes, refreshes); default: ignored. */
  onError?: (err: unknown) => void;
}

export interface TokenService {
  /** Creates a token; the secret is returned only here. */
  create(input: CreateTokenInput): Promise<{ token: string; record: TokenRecord }>;
  /** Every token of the project, revoked ones included, oldest first. */
  list(): Promise<TokenRecord[]>;
  /** Revokes a token by id or (active) name; revoking a revoked token returns it unchanged. */
  revoke(idOrName: string, actor: string): Promise<TokenRecord>;
  /** Checks an Authorization header value. Never throws for a bad credential. */
  authenticate(header: string | undefined): Promise<AuthResult>;
  /** How many tokens are not revoked. */
  count(): Promise<number>;
  /** Re-reads the tokens from the store. */
  reload(): Promise<void>;
  /** Waits for pending background writes (lastUsedAt). */
  flush(): Promise<void>;
}

type StoredToken = TokenRecord & { hash: string };

interface Loaded {
  raw: string | undefined;
  records: StoredToken[];
  byHash: Map<string, StoredToken>;
  loadedAt: number;
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;
const TEAM = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TOKEN = /^ks_[A-Za-z0-9_-]{43}$/;
const BEARER = /^bearer +(\S+) *$/i;
const LAST_USED_INTERVAL_MS = 60_000;
const DEFAULT_REFRESH_MS = 1000;

/** The store setting that holds a project's tokens. */
export function tokensSettingKey(project: string): string {
  return `security.tokens/${project}`;
}

/** A new random API token: "ks_" + base64url of 32 random bytes. */
export function generateToken(): string {
  return `ks_${randomBytes(32).toString("base64url")}`;
}

/** The SHA-256 hex of a token: the only form in which tokens are stored. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

function invalid(message: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message);
}

function publicRecord(stored: StoredToken): TokenRecord {
  const { hash: _hash, ...record } = stored;
  return { ...record, teams: [...record.teams] };
}

function validateInput(input: CreateTokenInput): { teams: string[]; expiresInMs: number | undefined } {
  if (typeof input.name !== "string" || !NAME.test(input.name)) {
    throw invalid(`name: expected 1-64 characters of letters, digits, ".", "_", "@" and "-", got ${JSON.stringify(input.name)}`);
  }
  if (!ROLES.includes(input.role)) {
    throw invalid(`role: expected one of ${ROLES.join(", ")}, got ${JSON.stringify(input.role)}`);
  }
  const teams = input.teams ?? [];
  if (!Array.isArray(teams)) throw invalid(`teams: expected a list of team names`);
  teams.forEach((team, i) => {
    if (typeof team !== "string" || !TEAM.test(team)) {
      throw invalid(`teams[${i}]: expected a team name (lowercase letters, digits and "-"), got ${JSON.stringify(team)}`);
    }
  });
  if (input.role === "deployer" && teams.length === 0) {
    throw invalid(`teams: a deployer token needs at least one team (the teams whose services it may change)`);
  }
  if (input.role !== "deployer" && teams.length > 0) {
    throw invalid(`teams: only a deployer token has teams; a ${input.role} token acts on every service`);
  }
  const expiresInMs = input.expiresInMs;
  if (expiresInMs !== undefined && (!Number.isSafeInteger(expiresInMs) || expiresInMs <= 0)) {
    throw invalid(`expiresInMs: expected a positive whole number of milliseconds, got ${String(expiresInMs)}`);
  }
  if (typeof input.actor !== "string" || input.actor.length === 0) throw invalid(`actor: expected who creates the token`);
  return { teams: [...new Set(teams)], expiresInMs };
}

function parseStored(raw: string | undefined, key: string): StoredToken[] {
  if (raw === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new KeelsonError("KEELSON_ERR_STORE", `setting "${key}": not valid JSON`, { cause: err });
  }
  if (!Array.isArray(parsed)) throw new KeelsonError("KEELSON_ERR_STORE", `setting "${key}": expected a list of tokens`);
  parsed.forEach((entry: unknown, i) => {
    const t = entry as Partial<StoredToken> | null;
    if (typeof t !== "object" || t === null || typeof t.id !== "string" || typeof t.hash !== "string" || typeof t.name !== "string" || !ROLES.includes(t.role as Role) || !Array.isArray(t.teams)) {
      throw new KeelsonError("KEELSON_ERR_STORE", `setting "${key}"[${i}]: not a token record`);
    }
  });
  return parsed as StoredToken[];
}

/**
 * The API tokens of one project.
 *
 * @example
 * const tokens = createTokenService({ store, project: "shop" });
 * const { token } = await tokens.create({ name: "ci-web", role: "deployer", teams: ["web"], actor: "user:admin" });
 * await tokens.authenticate(`Bearer ${token}`) // { ok: true, principal: { kind: "user", role: "deployer", ... } }
 */
export function createTokenService(options: TokenServiceOptions): TokenService {
  const { store, project } = options;
  const now = options.now ?? (() => new Date());
  const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
  const onError = options.onError ?? (() => undefined);
  const key = tokensSettingKey(project);
  let state: Loaded | undefined;
  // Bumped on every write, so a read that started before a write cannot replace what it wrote.
  let writes = 0;
  let refreshing: Promise<Loaded> | undefined;
  // Mutations (and lastUsedAt writes) run one at a time: each re-reads, changes, writes.
  let chain: Promise<unknown> = Promise.resolve();
  // When each token's lastUsedAt was last queued for writing, to write at most once a minute.
  const touched = new Map<string, number>();

  async function load(): Promise<Loaded> {
    const before = writes;
    const raw = await store.getSetting(key);
    const loadedAt = now().getTime();
    if (state !== undefined && state.raw === raw) {
      state.loadedAt = loadedAt;
      return state;
    }
    const records = parseStored(raw, key);
    const loaded: Loaded = { raw, records, byHash: new Map(records.map((r) => [r.hash, r])), loadedAt };
    if (writes === before) state = loaded;
    return loaded;
  }

  async function fresh(): Promise<Loaded> {
    if (state !== undefined && now().getTime() - state.loadedAt < refreshMs) return state;
    refreshing ??= load().finally(() => {
      refreshing = undefined;
    });
    if (state === undefined) return refreshing;
    const current = state;
    // A store hiccup must not lock everyone out: keep answering from the last copy.
    return refreshing.catch((err: unknown) => {
      onError(err);
      return current;
    });
  }

  function serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = chain.then(work, work);
    chain = run.catch(() => undefined);
    return run;
  }

  async function write(records: StoredToken[]): Promise<void> {
    const raw = JSON.stringify(records);
    await store.setSetting(key, raw);
    writes += 1;
    state = { raw, records, byHash: new Map(records.map((r) => [r.hash, r])), loadedAt: now().getTime() };
  }

  function isActive(record: TokenRecord): boolean {
    return record.revokedAt === undefined;
  }

  function touch(record: StoredToken, at: Date): void {
    const last = touched.get(record.id) ?? (record.lastUsedAt === undefined ? undefined : Date.parse(record.lastUsedAt));
    if (last !== undefined && at.getTime() - last < LAST_USED_INTERVAL_MS) return;
    touched.set(record.id, at.getTime());
    const lastUsedAt = at.toISOString();
    serialized(async () => {
      const { records } = await load();
      const target = records.find((r) => r.id === record.id);
      if (target === undefined || (target.lastUsedAt !== undefined && target.lastUsedAt >= lastUsedAt)) return;
      await write(records.map((r) => (r === target ? { ...r, lastUsedAt } : r)));
    }).catch(onError);
  }

  return {
    async create(input) {
      const { teams, expiresInMs } = validateInput(input);
      return serialized(async () => {
        const { records } = await load();
        const taken = records.find((r) => r.name === input.name && isActive(r));
        if (taken !== undefined) {
          throw new KeelsonError("KEELSON_ERR_CONFLICT", `name: a token named "${input.name}" already exists (${taken.id}); revoke it first or choose another name`);
        }
        let id: string;
        do id = `tok_${randomBytes(4).toString("hex")}`;
        while (records.some((r) => r.id === id));
        const token = generateToken();
        const at = now();
        const stored: StoredToken = {
          id,
          name: input.name,
          role: input.role,
          teams,
          createdAt: at.toISOString(),
          createdBy: input.actor,
          ...(expiresInMs === undefined ? {} : { expiresAt: new Date(at.getTime() + expiresInMs).toISOString() }),
          hash: hashToken(token),
        };
        await write([...records, stored]);
        await store.appendEvent({
          project,
          kind: "token.created",
          actor: input.actor,
          subject: `token/${id}`,
          details: { name: stored.name, role: stored.role, teams },
        });
        return { token, record: publicRecord(stored) };
      });
    },

    async list() {
      const { records } = await load();
      return records.map(publicRecord);
    },

    async revoke(idOrName, actor) {
      if (typeof actor !== "string" || actor.length === 0) throw invalid(`actor: expected who revokes the token`);
      return serialized(async () => {
        const { records } = await load();
        const target =
          records.find((r) => r.id === idOrName) ??
          records.find((r) => r.name === idOrName && isActive(r)) ??
          records.findLast((r) => r.name === idOrName);
        if (target === undefined) {
          throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `token "${idOrName}" does not exist (give its name or its id, like tok_1a2b3c4d)`);
        }
        if (!isActive(target)) return publicRecord(target);
        const revoked: StoredToken = { ...target, revokedAt: now().toISOString(), revokedBy: actor };
        await write(records.map((r) => (r === target ? revoked : r)));
        await store.appendEvent({
          project,
          kind: "token.revoked",
          actor,
          subject: `token/${target.id}`,
          details: { name: target.name, role: target.role, teams: target.teams },
        });
        return publicRecord(revoked);
      });
    },

    async authenticate(header) {
      if (header === undefined || header.trim() === "") return { ok: false, reason: "missing" };
      const token = BEARER.exec(header)?.[1];
      if (token === undefined || !TOKEN.test(token)) return { ok: false, reason: "malformed" };
      const { byHash } = await fresh();
      const record = byHash.get(hashToken(token));
      if (record === undefined) return { ok: false, reason: "unknown" };
      if (record.revokedAt !== undefined) return { ok: false, reason: "revoked" };
      const at = now();
      if (record.expiresAt !== undefined && Date.parse(record.expiresAt) <= at.getTime()) return { ok: false, reason: "expired" };
      touch(record, at);
      return { ok: true, principal: { kind: "user", tokenId: record.id, name: record.name, role: record.role, teams: [...record.teams] } };
    },

    async count() {
      const { records } = await load();
      return records.filter(isActive).length;
    },

    async reload() {
      await load();
    },

    async flush() {
      await chain;
    },
  };
}

/**
 * Makes sure an admin can get in on first start: when the project has no (unrevoked)
 * token, creates an admin token named "admin" and writes it to `file` (mode 0600, its
 * folder 0700). Otherwise changes nothing and says whether the file is still there.
 *
 * @example
 * const boot = await bootstrapAdminToken({ tokens, file: ".keelson/admin-token", actor: "controlplane" });
 * if (boot.created) log.info(`admin token written to ${boot.file}`);
 */
export async function bootstrapAdminToken(options: {
  tokens: TokenService;
  file: string;
  actor: string;
}): Promise<{ created: true; token: string; record: TokenRecord; file: string } | { created: false; fileExists: boolean }> {
  const { tokens, file, actor } = options;
  if ((await tokens.count()) > 0) return { created: false, fileExists: (await fileMode(file)) !== undefined };
  const { token, record } = await tokens.create({ name: "admin", role: "admin", actor });
  try {
    await writePrivateFile(file, `${token}\n`);
  } catch (err) {
    // A token nobody can read would block the next bootstrap: take it back.
    await tokens.revoke(record.id, actor).catch(() => undefined);
    throw err;
  }
  return { created: true, token, record, file };
}

/**
 * Reads an API token from a file written by {@link bootstrapAdminToken} (or by hand).
 * Refuses a file that group or others may access, with the command that fixes it.
 */
export async function readTokenFile(file: string): Promise<string> {
  const mode = await fileMode(file);
  if (mode === undefined) {
    throw new KeelsonError("KEELSON_ERR_UNAUTHENTICATED", `token file ${file} does not exist`, { details: { path: file } });
  }
  if (allowsGroupOrOther(mode)) {
    throw new KeelsonError(
      "KEELSON_ERR_UNAUTHENTICATED",
      `token file ${file} may be read by other users (mode ${mode.toString(8).padStart(4, "0")}); fix it with: chmod 600 ${file}`,
      { details: { path: file, mode: mode.toString(8) } },
    );
  }
  const token = (await readFile(file, "utf8")).trim();
  if (!TOKEN.test(token)) {
    throw new KeelsonError("KEELSON_ERR_UNAUTHENTICATED", `token file ${file} does not hold a Keelson API token (ks_ followed by 43 characters)`, {
      details: { path: file },
    });
  }
  return token;
}
