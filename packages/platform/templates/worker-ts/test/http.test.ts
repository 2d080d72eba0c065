// HTTP tests: the worker's API behind serve() on a free port of 127.0.0.1, as Keelson runs it.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger, serve, type ServiceHandle } from "@keelson/sdk";
import { createApp } from "../src/app.js";
import { createConsumer, type Consumer } from "../src/consumer.js";
import { createQueue } from "../src/queue.js";

describe("{{name}} over HTTP", () => {
  let dir: string;
  let consumer: Consumer;
  let service: ServiceHandle;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "{{name}}-http-"));
    const logger = createLogger({ level: "silent" });
    const queue = await createQueue({ dir });
    consumer = createConsumer({ queue, pollMs: 10, logger });
    consumer.start();
    service = await serve({ handler: createApp({ service: "{{name}}", queue, consumer }), port: 0, signals: [], tracing: false, accessLog: false, logger, ready: () => consumer.running });
  });
  after(async () => {
    await service.close();
    await consumer.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("is ready and alive while its loop runs", async () => {
    assert.equal((await fetch(`${service.url}/ready`)).status, 200);
    const live = await fetch(`${service.url}/live`);
    assert.equal(live.status, 200);
    assert.equal(((await live.json()) as { status: string }).status, "alive");
  });

  it("takes a job and does it", async () => {
    const res = await fetch(`${service.url}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "hello there" }) });
    assert.equal(res.status, 202);
    const { id } = (await res.json()) as { id: string };
    const deadline = Date.now() + 5000;
    let record: { state: string; result?: unknown } = { state: "queued" };
    while (record.state !== "done" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      record = (await (await fetch(`${service.url}/jobs/${id}`)).json()) as typeof record;
    }
    assert.deepEqual(record, { id, state: "done", result: { words: 2, longest: "hello" } });
    const status = (await (await fetch(`${service.url}/`)).json()) as { processed: number; queue: { done: number } };
    assert.equal(status.processed, 1);
    assert.equal(status.queue.done, 1);
  });

  it("refuses a job without text, naming the field", async () => {
    const res = await fetch(`${service.url}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { details: { field: string } } }).error.details.field, "text");
  });
});
