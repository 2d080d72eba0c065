import { randomBytes } from "node:crypto";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { makeTempDir } from "#test-support";
import { addKeyToFile, ENV_KEY_ID, loadKeyRing, parseMasterKeyEnv } from "./key-ring.js";

function vaultError(run: () => unknown): KeelsonError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_VAULT");
    return err as KeelsonError;
  }
  throw new Error("expected a KEELSON_ERR_VAULT error");
}

async function vaultRejection(promise: Promise<unknown>): Promise<KeelsonError> {
  const outcome = await promise.then(
    () => new Error("expected a rejection"),
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(KeelsonError);
  expect((outcome as KeelsonError).code).toBe("KEELSON_ERR_VAULT");
  return outcome as KeelsonError;
}

const K1 = randomBytes(32);
const K2 = randomBytes(32);

describe("parseMasterKeyEnv", () => {
  it("takes one bare base64 key under the id env", () => {
    const ring = parseMasterKeyEnv(` ${K1.toString("base64")}\n`);
    expect(ring.current).toBe(ENV_KEY_ID);
    expect(ring.source).toBe("env");
    expect(ring.keys.get(ENV_KEY_ID)?.equals(K1)).toBe(true);
  });

  it("takes id:key pairs, the first being current", () => {
    const ring = parseMasterKeyEnv(`k2:${K2.toString("base64")}, k1:${K1.toString("base64")}`);
    expect(ring.current).toBe("k2");
    expect([...ring.keys.keys()]).toEqual(["k2", "k1"]);
    expect(ring.keys.get("k1")?.equals(K1)).toBe(true);
  });

  it("accepts base64url", () => {
    expect(parseMasterKeyEnv(K1.toString("base64url")).keys.get(ENV_KEY_ID)?.equals(K1)).toBe(true);
  });

  it("refuses a key of the wrong length, saying where, without the key", () => {
    const short = randomBytes(16).toString("base64");
    const err = vaultError(() => parseMasterKeyEnv(short));
    expect(err.message).toContain("KEELSON_MASTER_KEY");
    expect(err.message).toContain("got 16 bytes");
    expect(err.message).not.toContain(short);
  });

  it("names the entry that is wrong in a list", () => {
    const bad = randomBytes(31).toString("base64");
    const err = vaultError(() => parseMasterKeyEnv(`k2:${K2.toString("base64")},k1:${bad}`));
    expect(err.message).toContain('KEELSON_MASTER_KEY entry 2 ("k1")');
    expect(err.message).not.toContain(bad);
  });

  it("refuses text that is not base64, a missing id, a bad id and a repeated id", () => {
    expect(vaultError(() => parseMasterKeyEnv("not base64!")).message).toContain("not base64");
    expect(vaultError(() => parseMasterKeyEnv(`:${K1.toString("base64")}`)).message).toContain("entry 1: expected id:base64-key");
    expect(vaultError(() => parseMasterKeyEnv(`k 1:${K1.toString("base64")}`)).message).toContain("key id");
    expect(vaultError(() => parseMasterKeyEnv(`a:${K1.toString("base64")},a:${K2.toString("base64")}`)).message).toContain("appears twice");
  });
});

describe("loadKeyRing and addKeyToFile", () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let keyFile: string;

  beforeEach(async () => {
    tmp = await makeTempDir("keelson-keys-");
    keyFile = join(tmp.dir, "state", "master.key");
  });

  afterEach(async () => {
    await tmp.cleanup();
  });

  it("uses KEELSON_MASTER_KEY when set, without touching the key file", async () => {
    const ring = await loadKeyRing({ env: K1.toString("base64"), keyFile });
    expect(ring.source).toBe("env");
    await expect(stat(keyFile)).rejects.toThrow();
  });

  it("creates a 0600 key file with a random key k1 when missing, and reads it back", async () => {
    const ring = await loadKeyRing({ env: "  ", keyFile });
    expect(ring).toMatchObject({ current: "k1", source: "file", file: keyFile });
    expect(ring.keys.get("k1")).toHaveLength(32);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(tmp.dir, "state"))).mode & 0o777).toBe(0o700);
    const content = JSON.parse(await readFile(keyFile, "utf8")) as { current: string; keys: Record<string, string> };
    expect(content.current).toBe("k1");
    expect(Buffer.from(content.keys["k1"] ?? "", "base64").equals(ring.keys.get("k1") ?? Buffer.alloc(0))).toBe(true);
    const again = await loadKeyRing({ keyFile });
    expect(again.keys.get("k1")?.equals(ring.keys.get("k1") ?? Buffer.alloc(0))).toBe(true);
  });

  it("gives concurrent first starts one and the same key", async () => {
    const rings = await Promise.all(Array.from({ length: 6 }, () => loadKeyRing({ keyFile })));
    const first = rings[0]?.keys.get("k1");
    expect(rings.every((r) => first !== undefined && r.keys.get("k1")?.equals(first))).toBe(true);
  });

  it("refuses a key file others may read, naming the path and the fix", async () => {
    await loadKeyRing({ keyFile });
    await chmod(keyFile, 0o640);
    const err = await vaultRejection(loadKeyRing({ keyFile }));
    expect(err.message).toContain(keyFile);
    expect(err.message).toContain(`chmod 600 ${keyFile}`);
  });

  it("refuses a key file with a wrong-length key, naming the key", async () => {
    await loadKeyRing({ keyFile });
    const short = randomBytes(24).toString("base64");
    await writeFile(keyFile, JSON.stringify({ current: "k1", keys: { k1: short } }));
    const err = await vaultRejection(loadKeyRing({ keyFile }));
    expect(err.message).toContain(`${keyFile}: keys.k1`);
    expect(err.message).toContain("got 24 bytes");
    expect(err.message).not.toContain(short);
  });

  it("refuses a key file that is not JSON, has the wrong shape, or names a missing current key", async () => {
    await loadKeyRing({ keyFile });
    await writeFile(keyFile, "{");
    expect((await vaultRejection(loadKeyRing({ keyFile }))).message).toContain("not valid JSON");
    await writeFile(keyFile, JSON.stringify({ keys: {} }));
    expect((await vaultRejection(loadKeyRing({ keyFile }))).message).toContain('expected {"current"');
    await writeFile(keyFile, JSON.stringify({ current: "k9", keys: { k1: K1.toString("base64") } }));
    expect((await vaultRejection(loadKeyRing({ keyFile }))).message).toContain('current: key "k9" is not in keys');
  });

  it("adds a new current key to the file, keeping the old ones", async () => {
    const first = await loadKeyRing({ keyFile });
    const rotated = await addKeyToFile(keyFile, first.keys);
    expect(rotated.current).toBe("k2");
    expect(rotated.keys.get("k1")?.equals(first.keys.get("k1") ?? Buffer.alloc(0))).toBe(true);
    const reread = await loadKeyRing({ keyFile });
    expect(reread.current).toBe("k2");
    expect([...reread.keys.keys()].sort()).toEqual(["k1", "k2"]);
    expect(reread.keys.get("k2")?.equals(rotated.keys.get("k2") ?? Buffer.alloc(0))).toBe(true);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
  });

  it("refuses to rotate while another rotation holds the lock", async () => {
    await loadKeyRing({ keyFile });
    await writeFile(`${keyFile}.lock`, "");
    const err = await vaultRejection(addKeyToFile(keyFile));
    expect(err.message).toContain(`${keyFile}.lock`);
    expect((await loadKeyRing({ keyFile })).current).toBe("k1");
  });
});
