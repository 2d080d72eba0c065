// The docker driver's copier of container output, without an engine: a stream of the engine's
// multiplexed frames (as `logs --follow --timestamps` sends them) stands in for a container.
import { readFile, writeFile } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { makeTempDir } from "#test-support";
import type Docker from "dockerode";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { engineSincePath, followContainerLogs, parseEngineSince, resumeSinceSeconds } from "./docker-log-follower.js";
import { replicaLogPaths } from "./replica-logs.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await makeTempDir("keelson-follower-"));
});
afterEach(async () => {
  await cleanup();
});

/** One engine frame: stream (1 stdout, 2 stderr), 3 zero bytes, size, then "<stamp> <line>". */
function frame(stream: "stdout" | "stderr", stamp: string, line: string): Buffer {
  const payload = Buffer.from(`${stamp} ${line}\n`);
  const header = Buffer.alloc(8);
  header[0] = stream === "stdout" ? 1 : 2;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** A container whose `logs` answers with the frames given, then ends (the container stopped). */
function containerSending(frames: Buffer[]): { container: Docker.Container; asked: Array<Record<string, unknown>> } {
  const asked: Array<Record<string, unknown>> = [];
  const container = {
    logs: (opts: Record<string, unknown>) => {
      asked.push(opts);
      const stream = new PassThrough();
      stream.end(Buffer.concat(frames));
      return Promise.resolve(stream);
    },
  } as unknown as Docker.Container;
  return { container, asked };
}

const raw = async (stream: "stdout" | "stderr"): Promise<string> => readFile(replicaLogPaths(dir, "web-0")[stream], "utf8").catch(() => "");
const S = 1_000_000_000n;

describe("container log follower", () => {
  it("copies a stderr line the engine stamped before the last stdout line it sent (streams are stamped apart)", async () => {
    // As Docker Engine 20.10 sends an app's first lines about once in seven starts.
    const { container } = containerSending([
      frame("stdout", "2026-11-27T10:00:43.346316707Z", "line 1"),
      frame("stdout", "2026-11-27T10:00:43.347592384Z", "line 2"),
      frame("stdout", "2026-11-27T10:00:43.347628141Z", "line 3"),
      frame("stderr", "2026-11-27T10:00:43.347614610Z", "to stderr"),
    ]);
    const follower = followContainerLogs({ container, logDir: dir, replicaId: "web-0", resume: false, log: () => undefined });
    await follower.done;
    expect(await raw("stdout")).toBe("line 1\nline 2\nline 3\n");
    expect(await raw("stderr")).toBe("to stderr\n");
    expect(parseEngineSince(await readFile(engineSincePath(dir, "web-0"), "utf8"))).toEqual({ stdout: 1795773643347628141n, stderr: 1795773643347614610n });
  });

  it("after an adopt copies only what each stream had not copied, asking from the second before the older one", async () => {
    await writeFile(engineSincePath(dir, "web-0"), JSON.stringify({ stdout: "1795773643347628141", stderr: "1795773642500000000" }));
    const { container, asked } = containerSending([
      frame("stderr", "2026-11-27T10:00:42.500000000Z", "copied err"),
      frame("stdout", "2026-11-27T10:00:43.347628141Z", "copied out"),
      frame("stderr", "2026-11-27T10:00:43.100000000Z", "new err"),
      frame("stdout", "2026-11-27T10:00:44Z", "new out"),
    ]);
    const follower = followContainerLogs({ container, logDir: dir, replicaId: "web-0", resume: true, log: () => undefined });
    await follower.done;
    expect(asked[0]?.since).toBe(1795773641);
    expect(await raw("stdout")).toBe("new out\n");
    expect(await raw("stderr")).toBe("new err\n");
    expect(parseEngineSince(await readFile(engineSincePath(dir, "web-0"), "utf8"))).toEqual({ stdout: 1795773644n * S, stderr: 1795773643100000000n });
  });

  it("a new container starts from its first line, whatever an earlier container of the replica recorded", async () => {
    await writeFile(engineSincePath(dir, "web-0"), JSON.stringify({ stdout: String(1795773700n * S), stderr: "0" }));
    const { container, asked } = containerSending([frame("stdout", "2026-11-27T10:00:43Z", "first")]);
    const follower = followContainerLogs({ container, logDir: dir, replicaId: "web-0", resume: false, log: () => undefined });
    await follower.done;
    expect(asked[0]?.since).toBeUndefined();
    expect(await raw("stdout")).toBe("first\n");
  });

  it("reads a since file of one number (before streams were kept apart) for both streams", () => {
    expect(parseEngineSince("1795773643347628141\n")).toEqual({ stdout: 1795773643347628141n, stderr: 1795773643347628141n });
    expect(parseEngineSince("")).toEqual({ stdout: 0n, stderr: 0n });
    expect(parseEngineSince("{torn")).toEqual({ stdout: 0n, stderr: 0n });
    expect(resumeSinceSeconds({ stdout: 0n, stderr: 0n })).toBeUndefined();
    expect(resumeSinceSeconds({ stdout: 0n, stderr: 1795773643347628141n })).toBe(1795773642);
  });
});
