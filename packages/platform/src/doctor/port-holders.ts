// Which process listens on a TCP port, read from /proc on Linux (best effort: elsewhere, or for
// another user's process, the answer is "unknown" and the doctor says less).
import { readdir, readFile, readlink } from "node:fs/promises";

/** A process holding a port. */
export interface PortHolder {
  pid: number;
  /** Its command line, shortened. */
  command: string;
  /** Its parent and process group, to tell a replica's child from a stranger. */
  ppid: number | undefined;
  pgid: number | undefined;
}

const LISTEN = "0A";

/** Socket inodes listening on each port, from /proc/net/tcp and tcp6. */
async function listeningInodes(): Promise<Map<number, Set<string>>> {
  const out = new Map<number, Set<string>>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = await readFile(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== LISTEN) continue;
      const port = Number.parseInt(cols[1]?.split(":").pop() ?? "", 16);
      const inode = cols[9] as string;
      if (!Number.isInteger(port) || inode === "0") continue;
      const set = out.get(port) ?? new Set<string>();
      set.add(inode);
      out.set(port, set);
    }
  }
  return out;
}

/** What `ps` would say of a process: its command line, parent and process group. */
export async function describeProcess(pid: number): Promise<PortHolder> {
  let command = `pid ${pid}`;
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    const text = raw.split("\0").filter(Boolean).join(" ");
    if (text !== "") command = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    // gone, or not ours to read
  }
  let ppid: number | undefined;
  let pgid: number | undefined;
  try {
    // The command name in field 2 may hold spaces and parentheses: fields after the last ")".
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ppid = Number(rest[1]);
    pgid = Number(rest[2]);
  } catch {
    // as above
  }
  return { pid, command, ppid, pgid };
}

/**
 * The processes listening on each of `ports` that /proc tells about; a port missing from the
 * result has no holder we could see.
 */
export async function findPortHolders(ports: readonly number[]): Promise<Map<number, PortHolder>> {
  const result = new Map<number, PortHolder>();
  const inodes = await listeningInodes();
  const wanted = new Map<string, number>();
  for (const port of ports) for (const inode of inodes.get(port) ?? []) wanted.set(inode, port);
  if (wanted.size === 0) return result;
  let pids: string[];
  try {
    pids = (await readdir("/proc")).filter((n) => /^\d+$/.test(n));
  } catch {
    return result;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(target);
      const port = m === null ? undefined : wanted.get(m[1] as string);
      if (port === undefined || result.has(port)) continue;
      result.set(port, await describeProcess(Number(pid)));
    }
    if (result.size === new Set(wanted.values()).size) break;
  }
  return result;
}
