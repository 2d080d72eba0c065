import { chmod, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, rejection } from "#test-support";
import { stageFile, writeFileAtomic } from "./atomic-file.js";

describe("atomic file replacement", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let file: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-atomic-"));
    file = join(dir, "keelson.yaml");
    await writeFile(file, "old\n");
    await chmod(file, 0o640);
  });
  afterEach(() => cleanup());

  it("replaces the content, keeps the file's mode and leaves no temporary file", async () => {
    await writeFileAtomic(file, "new\n");
    expect(await readFile(file, "utf8")).toBe("new\n");
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(await readdir(dir)).toEqual(["keelson.yaml"]);
  });

  it("leaves the old content and no temporary file when the rename fails", async () => {
    const failing = async () => {
      throw Object.assign(new Error("EIO: simulated"), { code: "EIO" });
    };
    await expect(writeFileAtomic(file, "new\n", { rename: failing })).rejects.toThrow("EIO: simulated");
    expect(await readFile(file, "utf8")).toBe("old\n");
    expect(await readdir(dir)).toEqual(["keelson.yaml"]);
  });

  it("refuses to overwrite a change made by someone else since the file was read", async () => {
    const staged = await stageFile(file, "mine\n", { expect: "old\n" });
    expect((await readdir(dir)).sort()).toEqual([basename(staged.tmp), "keelson.yaml"]);
    expect(basename(staged.tmp)).toMatch(/^\.keelson\.yaml\.[0-9a-f]{8}\.tmp$/);
    await writeFile(file, "theirs\n");
    const err = await rejection(staged.commit(), "KEELSON_ERR_CONFLICT");
    expect(err.message).toContain("changed while it was being edited");
    expect(await readFile(file, "utf8")).toBe("theirs\n");
    expect(await readdir(dir)).toEqual(["keelson.yaml"]);
  });

  it("creates a file that did not exist, readable by others", async () => {
    await writeFileAtomic(join(dir, "fresh.txt"), "x");
    expect((await stat(join(dir, "fresh.txt"))).mode & 0o777).toBe(0o644);
  });
});
