// The secrets vault: per-service secrets encrypted with AES-256-GCM under a master key,
// stored in one store setting per service; values leave it only to be injected into replicas.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { KeelsonError } from "@keelson/protocol";
import { canonicalJson } from "../store/index.js";
import type { Store } from "../store/index.js";
import { addKeyToFile } from "./key-ring.js";
import type { KeyRing } from "./key-ring.js";

/** A secret as listed: never its value. */
export interface SecretInfo {
  name: string;
  /** 1 for the first value, +1 on every set. */
  version: number;
  updatedAt: string;
  updatedBy: string;
  /** The master key it is encrypted with. */
  keyId: string;
}

export interface VaultOptions {
  store: Store;
  project: string;
  keys: KeyRing;
  now?: () => Date;
}

export interface Vault {
  /** Sets (or replaces) a secret of a service. */
  set(service: string, name: string, value: string, actor: string): Promise<SecretInfo>;
  /** Deletes a secret; an unknown one is KEELSON_ERR_NOT_FOUND. */
  delete(service: string, name: string, actor: string): Promise<SecretInfo>;
  /** The service's secrets, by name, without values. */
  list(service: string): Promise<SecretInfo[]>;
  /** The service's decrypted secrets, for the environment of its replicas. */
  values(service: string): Promise<Record<string, string>>;
  /** Changes whenever one of the service's secrets changes; computed without decrypting. */
  digest(service: string): Promise<string>;
  /** Every decrypted value of the project, for redaction. */
  allValues(): Promise<string[]>;
  /**
   * Re-encrypts every secret under a new current key: `newKeys` when given; else, for a
   * key file, a new random key added to it; else (KEELSON_MASTER_KEY) the env's current key.
   */
  rotate(actor: string, newKeys?: KeyRing): Promise<{ from: string; to: string; reencrypted: number }>;
  /** The key ring in use (changes on rotate). */
  readonly keys: KeyRing;
}

interface StoredSecret {
  keyId: string;
  iv: string;
  tag: string;
  data: string;
  version: number;
  updatedAt: string;
  updatedBy: string;
}

const SERVICE = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** The largest secret value, in bytes of UTF-8. */
export const MAX_SECRET_BYTES = 64 * 1024;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function invalid(message: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message);
}

function shown(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

function checkService(service: string): void {
  if (typeof service !== "string" || !SERVICE.test(service)) {
    throw invalid(`service: expected a service name (1-63 lowercase letters, digits and "-", starting with a letter), got ${shown(service)}`);
  }
}

function checkName(name: string): void {
  if (typeof name !== "string" || !SECRET_NAME.test(name)) {
    throw invalid(`name: expected a secret name (1-128 letters, digits and "_", not starting with a digit), got ${shown(name)}`);
  }
}

function checkValue(value: string): void {
  // The value itself is never part of a message: it is the secret.
  if (typeof value !== "string") throw invalid(`value: expected a string, got ${value === null ? "null" : typeof value}`);
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes === 0) throw invalid(`value: must not be empty`);
  if (bytes > MAX_SECRET_BYTES) throw invalid(`value: ${bytes} bytes is more than the ${MAX_SECRET_BYTES} (64 KiB) a secret may hold`);
}

function checkActor(actor: string): void {
  if (typeof actor !== "string" || actor.length === 0) throw invalid(`actor: expected who makes the change`);
}

/** The store setting holding a service's secrets. */
export function secretsSettingKey(project: string, service: string): string {
  return `security.secrets/${project}/${service}`;
}

/** The store setting listing the services of a project that have (or had) secrets. */
export function secretServicesSettingKey(project: string): string {
  return `security.secret-services/${project}`;
}

function info(name: string, entry: StoredSecret): SecretInfo {
  return { name, version: entry.version, updatedAt: entry.updatedAt, updatedBy: entry.updatedBy, keyId: entry.keyId };
}

/**
 * The secrets vault of one project.
 *
 * @example
 * const vault = createVault({ store, project: "shop", keys: await loadKeyRing({ env, keyFile }) });
 * await vault.set("orders", "DATABASE_URL", "postgres://...", "user:admin");
 * await vault.values("orders") // { DATABASE_URL: "postgres://..." }
 */
export function createVault(options: VaultOptions): Vault {
  const { store, project } = options;
  const now = options.now ?? (() => new Date());
  let ring = options.keys;
  let chain: Promise<unknown> = Promise.resolve();

  function serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = chain.then(work, work);
    chain = run.catch(() => undefined);
    return run;
  }

  function aad(service: string, name: string): Buffer {
    return Buffer.from(`${project}/${service}/${name}`, "utf8");
  }

  function encrypt(service: string, name: string, value: string, keys: KeyRing): Pick<StoredSecret, "keyId" | "iv" | "tag" | "data"> {
    const key = keys.keys.get(keys.current);
    if (key === undefined) throw new KeelsonError("KEELSON_ERR_VAULT", `the current master key "${keys.current}" is not in the key ring (${keys.source})`);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(service, name));
    const data = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
    return { keyId: keys.current, iv: iv.toString("base64"), tag: cipher.getAuthTag().toString("base64"), data: data.toString("base64") };
  }

  function decrypt(service: string, name: string, entry: StoredSecret, keys: ReadonlyMap<string, Buffer> = ring.keys): string {
    const where = `secret "${name}" of service "${service}"`;
    const key = keys.get(entry.keyId);
    if (key === undefined) {
      throw new KeelsonError("KEELSON_ERR_VAULT", `${where} is encrypted with master key "${entry.keyId}", which is not in the key ring (from ${ring.source === "env" ? "KEELSON_MASTER_KEY" : ring.file})`, {
        details: { service, name, keyId: entry.keyId },
      });
    }
    try {
      const tag = Buffer.from(entry.tag, "base64");
      if (tag.length !== TAG_BYTES) throw new Error("bad tag length");
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(entry.iv, "base64"), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(service, name));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(Buffer.from(entry.data, "base64")), decipher.final()]).toString("utf8");
    } catch {
      // The cause is dropped on purpose: crypto errors carry nothing useful, and nothing of the value may leak.
      throw new KeelsonError(
        "KEELSON_ERR_VAULT",
        `cannot decrypt ${where} with master key "${entry.keyId}": the stored ciphertext was altered, or the key is not the one it was encrypted with`,
        { details: { service, name, keyId: entry.keyId } },
      );
    }
  }

  async function readService(service: string): Promise<Map<string, StoredSecret>> {
    const key = secretsSettingKey(project, service);
    const raw = await store.getSetting(key);
    if (raw === undefined) return new Map();
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      throw new KeelsonError("KEELSON_ERR_STORE", `setting "${key}": not valid JSON`, { cause: err });
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new KeelsonError("KEELSON_ERR_STORE", `setting "${key}": expected an object of secrets`);
    }
    return new Map(Object.entries(parsed as Record<string, StoredSecret>));
  }

  async function writeService(service: string, secrets: Map<string, StoredSecret>): Promise<void> {
    // fromEntries defines own properties, so a secret named "__proto__" stays data.
    const sorted = Object.fromEntries([...secrets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    await store.setSetting(secretsSettingKey(project, service), JSON.stringify(sorted));
  }

  async function readIndex(): Promise<string[]> {
    const raw = await store.getSetting(secretServicesSettingKey(project));
    if (raw === undefined) return [];
    const parsed = JSON.parse(raw) as unknown;
    return Array.isArray(parsed) ? parsed.filter((s): s is string => typeof s === "string") : [];
  }

  async function writeIndex(services: string[]): Promise<void> {
    await store.setSetting(secretServicesSettingKey(project), JSON.stringify([...new Set(services)].sort()));
  }

  return {
    get keys() {
      return ring;
    },

    async set(service, name, value, actor) {
      checkService(service);
      checkName(name);
      checkValue(value);
      checkActor(actor);
      return serialized(async () => {
        const secrets = await readService(service);
        const entry: StoredSecret = {
          ...encrypt(service, name, value, ring),
          version: (secrets.get(name)?.version ?? 0) + 1,
          updatedAt: now().toISOString(),
          updatedBy: actor,
        };
        secrets.set(name, entry);
        // The index first: a crash in between leaves a listed service without secrets, never the reverse.
        const index = await readIndex();
        if (!index.includes(service)) await writeIndex([...index, service]);
        await writeService(service, secrets);
        await store.appendEvent({ project, kind: "secret.set", actor, subject: `service/${service}`, details: { name, version: entry.version } });
        return info(name, entry);
      });
    },

    async delete(service, name, actor) {
      checkService(service);
      checkName(name);
      checkActor(actor);
      return serialized(async () => {
        const secrets = await readService(service);
        const entry = secrets.get(name);
        if (entry === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `secret "${name}" of service "${service}" does not exist`);
        secrets.delete(name);
        await writeService(service, secrets);
        if (secrets.size === 0) await writeIndex((await readIndex()).filter((s) => s !== service));
        await store.appendEvent({ project, kind: "secret.deleted", actor, subject: `service/${service}`, details: { name, version: entry.version } });
        return info(name, entry);
      });
    },

    async list(service) {
      checkService(service);
      const secrets = await readService(service);
      return [...secrets].map(([name, entry]) => info(name, entry)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },

    async values(service) {
      checkService(service);
      const secrets = await readService(service);
      return Object.fromEntries([...secrets].map(([name, entry]) => [name, decrypt(service, name, entry)]));
    },

    async digest(service) {
      checkService(service);
      const secrets = await readService(service);
      const parts = [...secrets]
        .map(([name, e]) => [name, e.version, e.keyId, e.iv, e.data, e.tag])
        .sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1));
      return createHash("sha256").update(canonicalJson(parts), "utf8").digest("hex");
    },

    async allValues() {
      const values: string[] = [];
      for (const service of await readIndex()) {
        const secrets = await readService(service);
        for (const [name, entry] of secrets) values.push(decrypt(service, name, entry));
      }
      return values;
    },

    async rotate(actor, newKeys) {
      checkActor(actor);
      return serialized(async () => {
        const from = ring.current;
        let target: KeyRing;
        if (newKeys !== undefined) target = newKeys;
        else if (ring.source === "file" && ring.file !== undefined) target = await addKeyToFile(ring.file, ring.keys);
        else target = ring;
        if (!target.keys.has(target.current)) {
          throw new KeelsonError("KEELSON_ERR_VAULT", `the new key ring's current key "${target.current}" is not among its keys`);
        }
        // Old keys stay usable in memory so that a rotation stopped half-way can be resumed.
        const decryptWith = new Map([...ring.keys, ...target.keys]);
        ring = { ...target, keys: decryptWith };
        let reencrypted = 0;
        const services = await readIndex();
        for (const service of services) {
          const secrets = await readService(service);
          let changed = false;
          for (const [name, entry] of secrets) {
            if (entry.keyId === target.current) continue;
            const value = decrypt(service, name, entry, decryptWith);
            secrets.set(name, { ...entry, ...encrypt(service, name, value, target) });
            changed = true;
            reencrypted += 1;
          }
          if (changed) await writeService(service, secrets);
        }
        await store.appendEvent({
          project,
          kind: "vault.key-rotated",
          actor,
          subject: "vault",
          details: { from, to: target.current, reencrypted, services: services.length },
        });
        return { from, to: target.current, reencrypted };
      });
    },
  };
}
