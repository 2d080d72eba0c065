// The worker's HTTP side. The gateway strips the route's prefix, so paths here start at "/".
//   GET /          what the worker has done, and the queue's depth
//   POST /jobs     { text } → 202 { id }: queue a job
//   GET /jobs/:id  a job's state and outcome
//   GET /live      liveness: 200 while the loop turns, 503 when it is stuck
// Readiness (/ready) is answered by serve(): ready while the loop runs.
import { createRouter, HttpError, json, type Handler } from "@keelson/sdk";
import type { Consumer } from "./consumer.js";
import type { Queue } from "./queue.js";

export function createApp(options: { service: string; queue: Queue; consumer: Consumer }): Handler {
  const { queue, consumer } = options;
  return createRouter({ bodyLimitBytes: 64 * 1024 })
    .get("/", async ({ res }) => {
      json(res, 200, { service: options.service, ...consumer.stats(), queue: await queue.depth() });
    })
    .post("/jobs", async ({ res, body }) => {
      const input = (await body()) as { text?: unknown } | null;
      if (typeof input !== "object" || input === null || typeof input.text !== "string" || input.text.trim() === "") {
        throw new HttpError(400, "VALIDATION", "text must be non-empty text", { field: "text" });
      }
      const job = await queue.enqueue({ text: input.text });
      json(res, 202, { id: job.id });
    })
    .get("/jobs/:id", async ({ res, params }) => {
      const record = await queue.get(params.id);
      if (record === undefined) throw new HttpError(404, "NOT_FOUND", `no job ${params.id}`);
      json(res, 200, record);
    })
    .get("/live", ({ res }) => {
      const healthy = consumer.healthy();
      res.setHeader("cache-control", "no-store");
      json(res, healthy ? 200 : 503, { status: healthy ? "alive" : "stuck", lastTickAt: consumer.stats().lastTickAt ?? null });
    }).handle;
}
