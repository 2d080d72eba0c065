// Following a pipeline run's log: the text so far, then whole lines as the run writes them, until
// the run ends (or the follow is cut short by its caller or its time limit).
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { findPipelineLog, followPipelineLog, MAX_PENDING_LINE, pipelineLogFile } from "./pipeline-log.js";

describe("pipeline logs", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let file: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-pipeline-log-"));
    file = pipelineLogFile(dir, "api", "run-20260101-000000-abcdef");
  });
  afterEach(async () => cleanup());

  it("finds a run's log whichever service it belongs to", async () => {
    expect(await findPipelineLog(dir, "run-20260101-000000-abcdef")).toBeUndefined();
    await mkdir(join(dir, "pipelines", "web"), { recursive: true });
    await mkdir(join(dir, "pipelines", "api"), { recursive: true });
    await writeFile(file, "==> stage build\n");
    expect(await findPipelineLog(dir, "run-20260101-000000-abcdef")).toBe(file);
    expect(await findPipelineLog(dir, "run-20260101-000000-000000")).toBeUndefined();
  });

  it("waits for the file, yields whole lines as they are appended, and ends with the run after a last read", async () => {
    let running = true;
    const seen: string[] = [];
    const follow = followPipelineLog({ file, running: () => running, signal: new AbortController().signal, pollMs: 5 });
    const next = async () => {
      const r = await follow.next();
      if (!r.done) seen.push(r.value);
      return r;
    };
    // No file yet: the follow waits for it (the run has not written its first stage).
    const first = next();
    await mkdir(join(dir, "pipelines", "api"), { recursive: true });
    await writeFile(file, "==> stage test: node test.mjs\nwaiting for the ");
    expect(await first).toEqual({ done: false, value: "==> stage test: node test.mjs\n" });
    // The half-written line comes once its end is written.
    const second = next();
    await appendFile(file, "go signal\ntick 1\n");
    expect((await second).value).toBe("waiting for the go signal\ntick 1\n");
    // The run writes its last line (no newline) and ends: the follow reads it and stops.
    await appendFile(file, "all tests passed");
    running = false;
    expect((await next()).value).toBe("all tests passed");
    expect((await next()).done).toBe(true);
    expect(seen.join("")).toBe("==> stage test: node test.mjs\nwaiting for the go signal\ntick 1\nall tests passed");
  });

  it("sends a line longer than MAX_PENDING_LINE in pieces while it is written, never splitting a character", async () => {
    let running = true;
    await mkdir(join(dir, "pipelines", "api"), { recursive: true });
    // A progress bar redrawn with \r and no newline: 40,000 three-byte characters, 120 KB.
    await writeFile(file, "€".repeat(40_000));
    const follow = followPipelineLog({ file, running: () => running, signal: new AbortController().signal, pollMs: 5 });
    const first = await follow.next();
    expect(first.done).toBe(false);
    expect(first.value!.length).toBeGreaterThan(0);
    expect(first.value!).toMatch(/^€+$/);
    expect(Buffer.byteLength(first.value!)).toBeGreaterThan(MAX_PENDING_LINE);
    running = false;
    let rest = "";
    for await (const text of follow) rest += text;
    expect(first.value! + rest).toBe("€".repeat(40_000));
  });

  it("keeps multi-byte characters whole across reads", async () => {
    await mkdir(join(dir, "pipelines", "api"), { recursive: true });
    const text = "ünïcødé ✓ 🚀\n";
    const bytes = Buffer.from(text);
    await writeFile(file, bytes.subarray(0, 5));
    let running = true;
    const follow = followPipelineLog({ file, running: () => running, signal: new AbortController().signal, pollMs: 5 });
    const got = follow.next();
    await appendFile(file, bytes.subarray(5));
    running = false;
    expect((await got).value).toBe(text);
  });

  it("stops when the caller aborts and when its time limit is up, whatever the run does", async () => {
    await mkdir(join(dir, "pipelines", "api"), { recursive: true });
    await writeFile(file, "line 1\n");
    const controller = new AbortController();
    const aborted: string[] = [];
    for await (const text of followPipelineLog({ file, running: () => true, signal: controller.signal, pollMs: 5 })) {
      aborted.push(text);
      controller.abort();
    }
    expect(aborted).toEqual(["line 1\n"]);

    let clock = 0;
    const capped: string[] = [];
    for await (const text of followPipelineLog({ file, running: () => true, signal: new AbortController().signal, pollMs: 1, maxMs: 100, now: () => (clock += 30) })) capped.push(text);
    expect(capped).toEqual(["line 1\n"]);
  });
});
