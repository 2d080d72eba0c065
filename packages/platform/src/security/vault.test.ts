import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, rejection } from "#test-support";
import { createMemoryStore } from "../store/index.js";
import type { Store } from "../store/index.js";
import { loadKeyRing, parseMasterKeyEnv } from "./key-ring.js";
import type { KeyRing } from "./key-ring.js";
import { createVault, MAX_SECRET_BYTES, secretServicesSettingKey, secretsSettingKey } from "./vault.js";
import type { Vault } from "./vault.js";

const START = Date.parse("2025-03-01T12:00:00.000Z");
const SECRET = "postgres://orders:Sup3r-S3cret@db/orders";

function envRing(...ids: string[]): KeyRing {
  return parseMasterKeyEnv(ids.map((id) => `${id}:${randomBytes(32).toString("base64")}`).join(","));
}

interface StoredEntry {
  keyId: string;
  iv: string;
  tag: string;
  data: string;
  version: number;
}

describe("createVault", () => {
  let clock: number;
  let store: Store;
  let keys: KeyRing;
  let vault: Vault;
  const now = (): Date => new Date(clock);

  async function stored(service: string): Promise<Record<string, StoredEntry>> {
    return JSON.parse((await store.getSetting(secretsSettingKey("shop", service))) ?? "{}") as Record<string, StoredEntry>;
  }

  async function editStored(service: string, edit: (entries: Record<string, StoredEntry>) => void): Promise<void> {
    const entries = await stored(service);
    edit(entries);
    await store.setSetting(secretsSettingKey("shop", service), JSON.stringify(entries));
  }

  beforeEach(() => {
    clock = START;
    store = createMemoryStore({ now: () => clock });
    keys = envRing("k1");
    vault = createVault({ store, project: "shop", keys, now });
  });

  afterEach(async () => {
    await store.close();
  });

  describe("set, list and values", () => {
    it("stores a secret that values() decrypts and list() describes without its value", async () => {
      const setInfo = await vault.set("orders", "DATABASE_URL", SECRET, "user:admin");
      expect(setInfo).toEqual({ name: "DATABASE_URL", version: 1, updatedAt: "2025-03-01T12:00:00.000Z", updatedBy: "user:admin", keyId: "k1" });
      expect(await vault.values("orders")).toEqual({ DATABASE_URL: SECRET });
      expect(await vault.list("orders")).toEqual([setInfo]);
      expect(JSON.stringify(await vault.list("orders"))).not.toContain(SECRET);
    });

    it("keeps only ciphertext in the store, with a fresh 12-byte IV and a 16-byte tag each time", async () => {
      await vault.set("orders", "A_KEY", SECRET, "cli");
      const raw = (await store.getSetting(secretsSettingKey("shop", "orders"))) ?? "";
      expect(raw).not.toContain(SECRET);
      expect(raw).not.toContain(Buffer.from(SECRET).toString("base64").slice(0, 20));
      const first = (await stored("orders"))["A_KEY"];
      expect(Buffer.from(first?.iv ?? "", "base64")).toHaveLength(12);
      expect(Buffer.from(first?.tag ?? "", "base64")).toHaveLength(16);
      await vault.set("orders", "A_KEY", SECRET, "cli");
      const second = (await stored("orders"))["A_KEY"];
      expect(second?.iv).not.toBe(first?.iv);
      expect(second?.data).not.toBe(first?.data);
    });

    it("counts versions up on every set and records secret.set with name and version only", async () => {
      await vault.set("orders", "TOKEN", "first-value", "user:a");
      clock += 1000;
      const second = await vault.set("orders", "TOKEN", "second-value", "user:b");
      expect(second).toMatchObject({ version: 2, updatedBy: "user:b", updatedAt: "2025-03-01T12:00:01.000Z" });
      expect(await vault.values("orders")).toEqual({ TOKEN: "second-value" });
      const events = await store.listEvents({ project: "shop", kinds: ["secret.set"] });
      expect(events.map((e) => [e.actor, e.subject, e.details])).toEqual([
        ["user:a", "service/orders", { name: "TOKEN", version: 1 }],
        ["user:b", "service/orders", { name: "TOKEN", version: 2 }],
      ]);
      expect(JSON.stringify(events)).not.toContain("value");
    });

    it("lists secrets by name and keeps services apart", async () => {
      await vault.set("orders", "ZED", "zed-value", "cli");
      await vault.set("orders", "ALPHA", "alpha-value", "cli");
      await vault.set("web", "ALPHA", "web-alpha", "cli");
      expect((await vault.list("orders")).map((s) => s.name)).toEqual(["ALPHA", "ZED"]);
      expect(await vault.values("web")).toEqual({ ALPHA: "web-alpha" });
      expect(await vault.values("payments")).toEqual({});
      expect(await vault.list("payments")).toEqual([]);
    });

    it("keeps a secret named __proto__ as data", async () => {
      await vault.set("orders", "__proto__", "proto-value", "cli");
      const values = await vault.values("orders");
      expect(Object.getPrototypeOf(values)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(values, "__proto__")?.value).toBe("proto-value");
      expect((await vault.list("orders")).map((s) => s.name)).toEqual(["__proto__"]);
    });

    it("serializes concurrent sets so none is lost", async () => {
      await Promise.all(Array.from({ length: 10 }, (_, i) => vault.set("orders", `S${i}`, `value-${i}`, "cli")));
      expect(Object.keys(await vault.values("orders")).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `S${i}`).sort());
    });

    it("keeps projects apart", async () => {
      await vault.set("orders", "A", "shop-value", "cli");
      const blog = createVault({ store, project: "blog", keys, now });
      expect(await blog.values("orders")).toEqual({});
      expect(await blog.allValues()).toEqual([]);
    });
  });

  describe("validation", () => {
    it.each(["Orders", "../x", "", "a".repeat(64), "a-", "1a", "a/b"])("rejects the service name %j", async (service) => {
      const err = await rejection(vault.set(service, "NAME", "some-value", "cli"), "KEELSON_ERR_INVALID_INPUT");
      expect(err.message).toMatch(/^service:/);
      await rejection(vault.values(service), "KEELSON_ERR_INVALID_INPUT");
    });

    it.each(["../x", "a/b", "", "1ABC", "A-B", "a".repeat(129), "A B"])("rejects the secret name %j", async (name) => {
      const err = await rejection(vault.set("orders", name, "some-value", "cli"), "KEELSON_ERR_INVALID_INPUT");
      expect(err.message).toMatch(/^name:/);
    });

    it("accepts the longest names", async () => {
      const service = `a${"b".repeat(62)}`;
      const name = `_${"x".repeat(127)}`;
      await vault.set(service, name, "some-value", "cli");
      expect(Object.keys(await vault.values(service))).toEqual([name]);
    });

    it("rejects an empty, oversized or non-string value without echoing it", async () => {
      expect((await rejection(vault.set("orders", "A", "", "cli"), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^value:/);
      const big = `BIGSECRET${"x".repeat(MAX_SECRET_BYTES)}`;
      const err = await rejection(vault.set("orders", "A", big, "cli"), "KEELSON_ERR_INVALID_INPUT");
      expect(err.message).toMatch(/^value:/);
      expect(err.message).not.toContain("BIGSECRET");
      // 2-byte characters: the limit is in bytes, not characters.
      await rejection(vault.set("orders", "A", "é".repeat(MAX_SECRET_BYTES / 2 + 1), "cli"), "KEELSON_ERR_INVALID_INPUT");
      expect((await rejection(vault.set("orders", "A", 42 as unknown as string, "cli"), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^value:/);
      expect(await vault.list("orders")).toEqual([]);
    });

    it("accepts a value of exactly 64 KiB", async () => {
      const value = "v".repeat(MAX_SECRET_BYTES);
      await vault.set("orders", "BIG", value, "cli");
      expect((await vault.values("orders"))["BIG"]).toBe(value);
    });

    it("requires an actor", async () => {
      expect((await rejection(vault.set("orders", "A", "some-value", ""), "KEELSON_ERR_INVALID_INPUT")).message).toMatch(/^actor:/);
    });
  });

  describe("tampering and wrong keys", () => {
    it("refuses an altered ciphertext without revealing the value", async () => {
      await vault.set("orders", "DATABASE_URL", SECRET, "cli");
      await editStored("orders", (entries) => {
        const e = entries["DATABASE_URL"];
        if (e === undefined) return;
        const data = Buffer.from(e.data, "base64");
        data[0] = (data[0] ?? 0) ^ 1;
        e.data = data.toString("base64");
      });
      const err = await rejection(vault.values("orders"), "KEELSON_ERR_VAULT");
      expect(err.message).toContain('secret "DATABASE_URL" of service "orders"');
      expect(err.message).not.toContain(SECRET);
      expect(JSON.stringify(err.details)).not.toContain(SECRET);
      expect(err.cause).toBeUndefined();
    });

    it("refuses an altered or shortened tag", async () => {
      await vault.set("orders", "A", SECRET, "cli");
      await editStored("orders", (entries) => {
        const e = entries["A"];
        if (e !== undefined) e.tag = Buffer.from(e.tag, "base64").subarray(0, 4).toString("base64");
      });
      await rejection(vault.values("orders"), "KEELSON_ERR_VAULT");
    });

    it("refuses a ciphertext moved to another secret or service (bound by AAD)", async () => {
      await vault.set("orders", "A", SECRET, "cli");
      await vault.set("web", "A", "web-value", "cli");
      const orders = await stored("orders");
      await store.setSetting(secretsSettingKey("shop", "web"), JSON.stringify(orders));
      await rejection(vault.values("web"), "KEELSON_ERR_VAULT");
      await editStored("orders", (entries) => {
        entries["B"] = entries["A"] as StoredEntry;
        delete entries["A"];
      });
      await rejection(vault.values("orders"), "KEELSON_ERR_VAULT");
    });

    it("refuses to decrypt with the wrong key", async () => {
      await vault.set("orders", "A", SECRET, "cli");
      const wrong = createVault({ store, project: "shop", keys: envRing("k1"), now });
      const err = await rejection(wrong.values("orders"), "KEELSON_ERR_VAULT");
      expect(err.message).toContain('master key "k1"');
      expect(err.message).not.toContain(SECRET);
    });

    it("names a key id the ring does not hold", async () => {
      await vault.set("orders", "A", SECRET, "cli");
      const other = createVault({ store, project: "shop", keys: envRing("k7"), now });
      const err = await rejection(other.values("orders"), "KEELSON_ERR_VAULT");
      expect(err.message).toContain('master key "k1", which is not in the key ring');
    });
  });

  describe("delete", () => {
    it("deletes a secret and records secret.deleted", async () => {
      await vault.set("orders", "A", "value-a", "cli");
      await vault.set("orders", "A", "value-a2", "cli");
      await vault.set("orders", "B", "value-b", "cli");
      const deleted = await vault.delete("orders", "A", "user:admin");
      expect(deleted).toMatchObject({ name: "A", version: 2 });
      expect(await vault.values("orders")).toEqual({ B: "value-b" });
      const events = await store.listEvents({ project: "shop", kinds: ["secret.deleted"] });
      expect(events.map((e) => [e.actor, e.subject, e.details])).toEqual([["user:admin", "service/orders", { name: "A", version: 2 }]]);
    });

    it("says NOT_FOUND for an unknown secret", async () => {
      const err = await rejection(vault.delete("orders", "NOPE", "cli"), "KEELSON_ERR_NOT_FOUND");
      expect(err.message).toContain('"NOPE"');
    });

    it("drops a service from the index when its last secret goes", async () => {
      await vault.set("orders", "A", "value-a", "cli");
      await vault.set("web", "B", "value-b", "cli");
      await vault.delete("orders", "A", "cli");
      expect(JSON.parse((await store.getSetting(secretServicesSettingKey("shop"))) ?? "[]")).toEqual(["web"]);
      expect(await vault.allValues()).toEqual(["value-b"]);
    });
  });

  describe("digest", () => {
    it("is stable, and changes when a secret is set or deleted", async () => {
      const empty = await vault.digest("orders");
      expect(empty).toMatch(/^[0-9a-f]{64}$/);
      await vault.set("orders", "A", "value-a", "cli");
      const one = await vault.digest("orders");
      expect(one).not.toBe(empty);
      expect(await vault.digest("orders")).toBe(one);
      await vault.set("orders", "A", "value-a", "cli");
      const reset = await vault.digest("orders");
      expect(reset).not.toBe(one);
      await vault.set("web", "A", "value-a", "cli");
      expect(await vault.digest("orders")).toBe(reset);
      await vault.delete("orders", "A", "cli");
      expect(await vault.digest("orders")).toBe(empty);
    });

    it("needs no key: it is computed from the ciphertext", async () => {
      await vault.set("orders", "A", "value-a", "cli");
      const keyless = createVault({ store, project: "shop", keys: envRing("other"), now });
      expect(await keyless.digest("orders")).toBe(await vault.digest("orders"));
    });
  });

  it("allValues returns every decrypted value of the project", async () => {
    await vault.set("orders", "A", "value-a", "cli");
    await vault.set("orders", "B", "value-b", "cli");
    await vault.set("web", "C", "value-c", "cli");
    expect((await vault.allValues()).sort()).toEqual(["value-a", "value-b", "value-c"]);
  });

  describe("rotate", () => {
    it("re-encrypts every secret under a new key ring, which alone can then read them", async () => {
      await vault.set("orders", "A", "value-a", "cli");
      await vault.set("web", "B", "value-b", "cli");
      const k2 = randomBytes(32).toString("base64");
      const k1 = keys.keys.get("k1")?.toString("base64") ?? "";
      clock += 1000;
      const result = await vault.rotate("user:admin", parseMasterKeyEnv(`k2:${k2},k1:${k1}`));
      expect(result).toEqual({ from: "k1", to: "k2", reencrypted: 2 });
      expect((await stored("orders"))["A"]?.keyId).toBe("k2");
      expect(await vault.list("orders")).toEqual([expect.objectContaining({ keyId: "k2", version: 1, updatedAt: "2025-03-01T12:00:00.000Z" })]);
      const onlyNew = createVault({ store, project: "shop", keys: parseMasterKeyEnv(`k2:${k2}`), now });
      expect(await onlyNew.values("orders")).toEqual({ A: "value-a" });
      expect(await onlyNew.values("web")).toEqual({ B: "value-b" });
      // New secrets use the new key.
      expect((await vault.set("orders", "C", "value-c", "cli")).keyId).toBe("k2");
      const [event] = await store.listEvents({ project: "shop", kinds: ["vault.key-rotated"] });
      expect(event).toMatchObject({ actor: "user:admin", subject: "vault", details: { from: "k1", to: "k2", reencrypted: 2, services: 2 } });
    });

    it("re-encrypts under the env's current key when KEELSON_MASTER_KEY already names a new one", async () => {
      const k1 = keys.keys.get("k1")?.toString("base64") ?? "";
      await vault.set("orders", "A", "value-a", "cli");
      const k2 = randomBytes(32).toString("base64");
      const restarted = createVault({ store, project: "shop", keys: parseMasterKeyEnv(`k2:${k2},k1:${k1}`), now });
      expect(await restarted.rotate("cli")).toEqual({ from: "k2", to: "k2", reencrypted: 1 });
      expect(await restarted.rotate("cli")).toEqual({ from: "k2", to: "k2", reencrypted: 0 });
      expect((await stored("orders"))["A"]?.keyId).toBe("k2");
    });

    it("refuses a new key ring whose current key it does not hold", async () => {
      const broken: KeyRing = { current: "k9", keys: new Map(), source: "env" };
      await rejection(vault.rotate("cli", broken), "KEELSON_ERR_VAULT");
    });

    describe("with a key file", () => {
      let tmp: { dir: string; cleanup: () => Promise<void> };

      beforeEach(async () => {
        tmp = await makeTempDir("keelson-vault-");
      });

      afterEach(async () => {
        await tmp.cleanup();
      });

      it("adds a new key to the file, re-encrypts, and a restart reads everything", async () => {
        const keyFile = join(tmp.dir, "master.key");
        const fileVault = createVault({ store, project: "shop", keys: await loadKeyRing({ keyFile }), now });
        await fileVault.set("orders", "A", "value-a", "cli");
        await fileVault.set("orders", "B", "value-b", "cli");
        expect(await fileVault.rotate("user:admin")).toEqual({ from: "k1", to: "k2", reencrypted: 2 });
        expect(fileVault.keys.current).toBe("k2");
        const content = JSON.parse(await readFile(keyFile, "utf8")) as { current: string; keys: Record<string, string> };
        expect(content.current).toBe("k2");
        expect(Object.keys(content.keys).sort()).toEqual(["k1", "k2"]);
        const restarted = createVault({ store, project: "shop", keys: await loadKeyRing({ keyFile }), now });
        expect(await restarted.values("orders")).toEqual({ A: "value-a", B: "value-b" });
        expect((await restarted.list("orders")).map((s) => s.keyId)).toEqual(["k2", "k2"]);
        expect(await restarted.rotate("cli")).toEqual({ from: "k2", to: "k3", reencrypted: 2 });
      });
    });
  });
});
