// Master keys of the secrets vault: from KEELSON_MASTER_KEY, or from a 0600 key file that
// is created with a random key on first start. Several keys can be held during a rotation.
import { randomBytes } from "node:crypto";
import { open, readFile, unlink } from "node:fs/promises";
import { KeelsonError } from "@keelson/protocol";
import { allowsGroupOrOther, fileMode, writePrivateFile } from "./private-file.js";

/** The master keys the vault may decrypt with; new secrets are encrypted with `current`. */
export interface KeyRing {
  readonly current: string;
  readonly keys: ReadonlyMap<string, Buffer>;
  /** Where the keys came from: the KEELSON_MASTER_KEY variable or a key file. */
  readonly source: "env" | "file";
  /** The key file, when `source` is "file". */
  readonly file?: string;
}

export interface LoadKeyRingOptions {
  /** The value of KEELSON_MASTER_KEY; unset or blank means "use the key file". */
  env?: string | undefined;
  /** The key file, created (mode 0600) when missing and `env` is unset. */
  keyFile: string;
}

/** The id a bare KEELSON_MASTER_KEY (one key without an id) gets. */
export const ENV_KEY_ID = "env";

const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const KEY_BYTES = 32;

function vaultError(message: string, details?: unknown): KeelsonError {
  return new KeelsonError("KEELSON_ERR_VAULT", message, details === undefined ? {} : { details });
}

/** Decodes a base64 key, naming `where` (never the key) when it is not 32 bytes. */
function decodeKey(text: string, where: string): Buffer {
  const trimmed = text.trim();
  if (!BASE64.test(trimmed)) throw vaultError(`${where}: expected a base64-encoded ${KEY_BYTES}-byte key, found characters that are not base64`);
  const key = Buffer.from(trimmed, "base64");
  if (key.length !== KEY_BYTES) {
    throw vaultError(`${where}: expected a base64-encoded ${KEY_BYTES}-byte key, got ${key.length} bytes (make one with: openssl rand -base64 32)`);
  }
  return key;
}

function checkId(id: string, where: string): void {
  if (!KEY_ID.test(id)) throw vaultError(`${where}: key id ${JSON.stringify(id.slice(0, 40))} must be 1-32 letters, digits, ".", "_" or "-"`);
}

/**
 * Parses KEELSON_MASTER_KEY: one base64 key (id "env"), or `id:base64,id:base64,...` where
 * the first is current and the others are kept for decrypting what they encrypted.
 */
export function parseMasterKeyEnv(value: string): KeyRing {
  const where = "KEELSON_MASTER_KEY";
  const text = value.trim();
  if (!text.includes(":") && !text.includes(",")) {
    return { current: ENV_KEY_ID, keys: new Map([[ENV_KEY_ID, decodeKey(text, where)]]), source: "env" };
  }
  const keys = new Map<string, Buffer>();
  const parts = text.split(",").map((part) => part.trim());
  parts.forEach((part, i) => {
    const at = `${where} entry ${i + 1}`;
    const colon = part.indexOf(":");
    if (colon <= 0) throw vaultError(`${at}: expected id:base64-key`);
    const id = part.slice(0, colon);
    checkId(id, at);
    if (keys.has(id)) throw vaultError(`${at}: key id "${id}" appears twice`);
    keys.set(id, decodeKey(part.slice(colon + 1), `${at} ("${id}")`));
  });
  const current = parts[0]?.slice(0, parts[0].indexOf(":")) ?? "";
  return { current, keys, source: "env" };
}

interface KeyFileContent {
  current: string;
  keys: Record<string, string>;
}

async function readKeyFile(file: string): Promise<KeyRing | undefined> {
  const mode = await fileMode(file);
  if (mode === undefined) return undefined;
  if (allowsGroupOrOther(mode)) {
    throw vaultError(`master key file ${file} may be read by other users (mode ${mode.toString(8).padStart(4, "0")}); fix it with: chmod 600 ${file}`, {
      path: file,
      mode: mode.toString(8),
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw vaultError(`master key file ${file}: not valid JSON`, { path: file });
  }
  const content = parsed as Partial<KeyFileContent> | null;
  const shape = `expected {"current": "<id>", "keys": {"<id>": "<base64 key>"}}`;
  if (typeof content !== "object" || content === null || typeof content.current !== "string" || typeof content.keys !== "object" || content.keys === null) {
    throw vaultError(`master key file ${file}: ${shape}`, { path: file });
  }
  const keys = new Map<string, Buffer>();
  for (const [id, text] of Object.entries(content.keys)) {
    checkId(id, `${file}: keys`);
    if (typeof text !== "string") throw vaultError(`${file}: keys.${id}: ${shape}`, { path: file });
    keys.set(id, decodeKey(text, `${file}: keys.${id}`));
  }
  if (!keys.has(content.current)) throw vaultError(`${file}: current: key "${content.current}" is not in keys`, { path: file });
  return { current: content.current, keys, source: "file", file };
}

function keyFileText(ring: { current: string; keys: ReadonlyMap<string, Buffer> }): string {
  const keys = Object.fromEntries([...ring.keys].map(([id, key]) => [id, key.toString("base64")]));
  return `${JSON.stringify({ current: ring.current, keys }, undefined, 2)}\n`;
}

/**
 * The vault's master keys: from `env` (KEELSON_MASTER_KEY) when set, else from `keyFile`,
 * which is created with a new random key "k1" (mode 0600) when missing. A key file that
 * group or others may read is refused with the `chmod` that fixes it.
 *
 * @example
 * const keys = await loadKeyRing({ env: process.env.KEELSON_MASTER_KEY, keyFile: ".keelson/master.key" });
 */
export async function loadKeyRing(options: LoadKeyRingOptions): Promise<KeyRing> {
  if (options.env !== undefined && options.env.trim() !== "") return parseMasterKeyEnv(options.env);
  const file = options.keyFile;
  const existing = await readKeyFile(file);
  if (existing !== undefined) return existing;
  const ring: KeyRing = { current: "k1", keys: new Map([["k1", randomBytes(KEY_BYTES)]]), source: "file", file };
  // Exclusive: if another process created the file first, its key is the one to use.
  if (await writePrivateFile(file, keyFileText(ring), { exclusive: true })) return ring;
  const raced = await readKeyFile(file);
  if (raced === undefined) throw vaultError(`master key file ${file} disappeared while it was being created`, { path: file });
  return raced;
}

/**
 * Adds a new random key to the key file and makes it current, keeping every key already
 * there (other projects' secrets may still use them). Holds `<file>.lock` meanwhile, so
 * two rotations cannot overwrite each other's new key.
 */
export async function addKeyToFile(file: string, known: ReadonlyMap<string, Buffer> = new Map()): Promise<KeyRing> {
  const lock = `${file}.lock`;
  let handle;
  try {
    handle = await open(lock, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw vaultError(`another key rotation holds ${lock}; if none is running, remove that file and retry`, { path: lock });
    }
    throw err;
  }
  try {
    await handle.close();
    const onDisk = await readKeyFile(file);
    const keys = new Map<string, Buffer>([...known, ...(onDisk?.keys ?? [])]);
    let n = 1;
    for (const id of keys.keys()) {
      const m = /^k(\d+)$/.exec(id);
      if (m !== null) n = Math.max(n, Number(m[1]) + 1);
    }
    const id = `k${n}`;
    keys.set(id, randomBytes(KEY_BYTES));
    const ring: KeyRing = { current: id, keys, source: "file", file };
    await writePrivateFile(file, keyFileText(ring));
    return ring;
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}
