// Checks that the project's state folder (.keelson) can be written: the store, logs, artifacts
// and pid files all live there.
import { randomBytes } from "node:crypto";
import { access, constants, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fail, pass, type CheckResult } from "./check-result.js";

/** Pass when `stateDir` is a writable folder, or missing with a writable parent to create it in. */
export async function checkStateDir(stateDir: string): Promise<CheckResult[]> {
  const info = await stat(stateDir).catch((err: NodeJS.ErrnoException) => err);
  if (info instanceof Error) {
    if (info.code !== "ENOENT") return [fail("state-dir", `${stateDir} cannot be read: ${info.code ?? info.message}`, `check the permissions of ${dirname(stateDir)}`)];
    const parent = dirname(stateDir);
    const writable = await access(parent, constants.W_OK | constants.X_OK).then(
      () => true,
      () => false,
    );
    return writable
      ? [pass("state-dir", `${stateDir} does not exist yet; \`keelson up\` creates it`)]
      : [fail("state-dir", `${stateDir} does not exist and ${parent} is not writable, so it cannot be created`, `make ${parent} writable for this user (chown or chmod u+w)`)];
  }
  if (!info.isDirectory()) return [fail("state-dir", `${stateDir} is a file, not a folder`, `move the file away; Keelson keeps the project's state in a folder there`)];
  // access() can say yes where a write still fails (read-only mounts, some ACLs): write for real.
  const probe = join(stateDir, `.doctor-${randomBytes(4).toString("hex")}`);
  try {
    await writeFile(probe, "");
    await rm(probe, { force: true });
    return [pass("state-dir", `${stateDir} is writable`)];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return [fail("state-dir", `${stateDir} is not writable (${code})`, `make it writable for this user (chown -R or chmod u+w), or run keelson as its owner`)];
  }
}
