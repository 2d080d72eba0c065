// Replica processes nobody supervises: a control plane killed between starting a replica and
// recording it leaves a process group running that the next control plane cannot adopt (it has
// no record of it). They are found by a marker in their environment and stopped, so a crash
// never leaves a second copy of a replica serving, holding a port or writing data.
import { readdir, readFile } from "node:fs/promises";
import { hasProcFs, parseProcStat, processGroupMembers } from "./proc-stat.js";

/** A process group whose processes carry the marker. */
export interface StrayGroup {
  pgid: number;
  /** The replica id it says it is (KEELSON_REPLICA), when readable. */
  replica: string | undefined;
}

/**
 * Process groups (other than `keep` and our own) with a process whose environment has a
 * variable `name` starting with `prefix`. Empty where /proc is missing.
 */
export async function findStrayGroups(match: { name: string; prefix: string }, keep: ReadonlySet<number>): Promise<StrayGroup[]> {
  if (!hasProcFs()) return [];
  const own = parseProcStat(await readFile("/proc/self/stat", "utf8"))?.pgrp;
  const found = new Map<number, StrayGroup>();
  const wanted = `${match.name}=${match.prefix}`;
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = parseProcStat(await readFile(`/proc/${name}/stat`, "utf8"));
      if (stat === undefined || stat.state === "Z" || keep.has(stat.pgrp) || stat.pgrp === own || found.has(stat.pgrp)) continue;
      const env = (await readFile(`/proc/${name}/environ`, "utf8")).split("\0");
      if (!env.some((v) => v.startsWith(wanted))) continue;
      const replica = env.find((v) => v.startsWith("KEELSON_REPLICA="))?.slice("KEELSON_REPLICA=".length);
      found.set(stat.pgrp, { pgid: stat.pgrp, replica });
    } catch {
      // Gone while we looked, or not ours to read.
    }
  }
  return [...found.values()].sort((a, b) => a.pgid - b.pgid);
}

/** SIGTERM to each group (SIGCONT too, in case it was paused), SIGKILL to what is left after `timeoutMs`. */
export async function stopGroups(pgids: readonly number[], timeoutMs: number): Promise<void> {
  const signal = (pgid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(-pgid, sig);
    } catch {
      // Already gone.
    }
  };
  for (const pgid of pgids) {
    signal(pgid, "SIGTERM");
    signal(pgid, "SIGCONT");
  }
  const deadline = Date.now() + timeoutMs;
  let left = [...pgids];
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = (await Promise.all(left.map(async (p) => ((await processGroupMembers(p)).length > 0 ? p : undefined)))).filter((p): p is number => p !== undefined);
  }
  for (const pgid of left) signal(pgid, "SIGKILL");
}
