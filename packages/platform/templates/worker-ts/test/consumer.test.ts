// Unit tests: the work, and the loop over a queue in a temporary folder.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger } from "@keelson/sdk";
import { createConsumer } from "../src/consumer.js";
import { createQueue, type Queue } from "../src/queue.js";
import { work } from "../src/work.js";

const logger = createLogger({ level: "silent" });

/** Polls until `check` is true, or fails after `ms`. */
async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not done within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("work", () => {
  it("counts words and finds the longest", () => {
    assert.deepEqual(work({ id: "a", text: "to be or not to be" }), { words: 6, longest: "not" });
    assert.throws(() => work({ id: "b", text: " " }), /job.text/);
  });
});

describe("consumer", () => {
  let dir: string;
  let queue: Queue;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "{{name}}-test-"));
    queue = await createQueue({ dir });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("drains the queue: good jobs done, bad ones failed, each once across two consumers", async () => {
    const jobs = [await queue.enqueue({ text: "one two" }), await queue.enqueue({ text: " " }), await queue.enqueue({ text: "three" })];
    const seen: string[] = [];
    const handle = (job: { id: string; text: string }) => {
      seen.push(job.id);
      return work(job);
    };
    const a = createConsumer({ queue, pollMs: 10, logger, handle });
    const b = createConsumer({ queue, pollMs: 10, logger, handle });
    a.start();
    b.start();
    await until(async () => (await queue.depth()).queued === 0 && (await queue.depth()).working === 0);
    await Promise.all([a.stop(), b.stop()]);
    assert.deepEqual(seen.sort(), jobs.map((j) => j.id).sort());
    assert.deepEqual(await queue.get(jobs[0]!.id), { id: jobs[0]!.id, state: "done", result: { words: 2, longest: "one" } });
    assert.equal((await queue.get(jobs[1]!.id))?.state, "failed");
    assert.equal(a.stats().processed + b.stats().processed, 2);
    assert.equal(a.stats().failed + b.stats().failed, 1);
  });

  it("is unhealthy when its loop stops turning", async () => {
    let clock = 1_000_000;
    const c = createConsumer({ queue, pollMs: 1000, logger, now: () => clock });
    c.start();
    await until(async () => c.stats().lastTickAt !== undefined);
    assert.equal(c.healthy(), true);
    clock += 60_000;
    assert.equal(c.healthy(), false);
    await c.stop();
  });
});
