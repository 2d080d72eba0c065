// The gateway's credential toward the control plane: its identity token, in a file the control
// plane rewrites before the token expires. Read again whenever the file changed.
import { readFile, stat } from "node:fs/promises";

const cache = new Map<string, { mtimeMs: number; token: string }>();

/** `authorization` header value from the token in `file`; undefined without a file or when it cannot be read. */
export async function credentialHeader(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  try {
    const { mtimeMs } = await stat(file);
    const hit = cache.get(file);
    if (hit !== undefined && hit.mtimeMs === mtimeMs) return `Bearer ${hit.token}`;
    const token = (await readFile(file, "utf8")).trim();
    cache.set(file, { mtimeMs, token });
    return token === "" ? undefined : `Bearer ${token}`;
  } catch {
    return undefined;
  }
}
