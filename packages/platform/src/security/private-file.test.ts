import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { allowsGroupOrOther, fileMode, writePrivateFile } from "./private-file.js";

describe("writePrivateFile", () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };

  beforeEach(async () => {
    tmp = await makeTempDir("keelson-private-");
  });

  afterEach(async () => {
    await tmp.cleanup();
  });

  it("writes a 0600 file in a new 0700 folder and leaves no temp file", async () => {
    const file = join(tmp.dir, "a", "b", "secret");
    expect(await writePrivateFile(file, "one")).toBe(true);
    expect(await readFile(file, "utf8")).toBe("one");
    expect(await fileMode(file)).toBe(0o600);
    expect((await stat(join(tmp.dir, "a", "b"))).mode & 0o777).toBe(0o700);
    expect(await readdir(join(tmp.dir, "a", "b"))).toEqual(["secret"]);
  });

  it("replaces an existing file, narrowing it to 0600", async () => {
    const file = join(tmp.dir, "secret");
    await writeFile(file, "old", { mode: 0o644 });
    expect(await writePrivateFile(file, "new")).toBe(true);
    expect(await readFile(file, "utf8")).toBe("new");
    expect(await fileMode(file)).toBe(0o600);
  });

  it("leaves an existing file alone when exclusive, and says so", async () => {
    const file = join(tmp.dir, "secret");
    expect(await writePrivateFile(file, "first", { exclusive: true })).toBe(true);
    expect(await writePrivateFile(file, "second", { exclusive: true })).toBe(false);
    expect(await readFile(file, "utf8")).toBe("first");
    expect(await readdir(tmp.dir)).toEqual(["secret"]);
  });
});

describe("fileMode and allowsGroupOrOther", () => {
  it("reads mode bits, undefined for a missing file", async () => {
    expect(await fileMode("/nonexistent/keelson/file")).toBeUndefined();
  });

  it.skipIf(process.platform === "win32")("flags any group or other bit", () => {
    expect(allowsGroupOrOther(0o600)).toBe(false);
    expect(allowsGroupOrOther(0o400)).toBe(false);
    expect(allowsGroupOrOther(0o640)).toBe(true);
    expect(allowsGroupOrOther(0o601)).toBe(true);
  });
});
