import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { checkStateDir } from "./state-dir.js";

describe("checkStateDir", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-doctor-state-"));
  });
  afterEach(async () => {
    await cleanup();
  });

  it("passes a writable folder, leaving nothing behind", async () => {
    const state = join(dir, ".keelson");
    await mkdir(state);
    expect(await checkStateDir(state)).toEqual([{ check: "state-dir", status: "pass", message: `${state} is writable` }]);
    expect(await readdir(state)).toEqual([]);
  });

  it("passes a folder not created yet when its parent is writable", async () => {
    expect((await checkStateDir(join(dir, ".keelson")))[0]).toMatchObject({ status: "pass", message: expect.stringContaining("does not exist yet") });
  });

  it("fails when a file stands where the folder goes, or the path leads through a file", async () => {
    await writeFile(join(dir, ".keelson"), "not a folder");
    expect(await checkStateDir(join(dir, ".keelson"))).toEqual([
      { check: "state-dir", status: "fail", message: `${join(dir, ".keelson")} is a file, not a folder`, fix: "move the file away; Keelson keeps the project's state in a folder there" },
    ]);
    expect((await checkStateDir(join(dir, ".keelson", "inner")))[0]).toMatchObject({ status: "fail", message: expect.stringContaining("ENOTDIR") });
  });
});
