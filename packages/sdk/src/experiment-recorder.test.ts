// The experiment event recorder against a fake control plane (a fetch function): batching by
// size and by time, the bounded queue, retries with backoff, refused batches, the flush on close,
// and the evaluation counts that ride along (kept on failure, dropped for an older control plane).
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import type { ExperimentEvent, ExperimentEventBatch } from "@keelson/protocol";
import { createExperimentRecorder, type ExperimentRecorder } from "./experiment-recorder.js";

interface FakePlane {
  fetch: typeof globalThis.fetch;
  batches: ExperimentEvent[][];
  /** Status to answer with next; 0 = network failure, -1 = no answer (until aborted). */
  status: number;
  calls: number;
}

function fakePlane(): FakePlane {
  const plane: FakePlane = {
    batches: [],
    status: 200,
    calls: 0,
    fetch: async (_url, init) => {
      plane.calls++;
      if (plane.status === 0) throw new TypeError("fetch failed");
      if (plane.status === -1) return new Promise<Response>((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(new Error("aborted"))));
      if (plane.status === 200) plane.batches.push((JSON.parse(String(init?.body)) as { events: ExperimentEvent[] }).events);
      return new Response("{}", { status: plane.status });
    },
  };
  return plane;
}

const warnings: string[] = [];
const log = { warn: (msg: string) => void warnings.push(msg) };
const recorders: ExperimentRecorder[] = [];
function recorder(plane: FakePlane, options: { flushMs?: number; batchSize?: number; maxQueued?: number; maxBackoffMs?: number } = {}): ExperimentRecorder {
  const r = createExperimentRecorder({ url: "http://control-plane/", fetch: plane.fetch, log, ...options });
  recorders.push(r);
  return r;
}
afterEach(async () => {
  warnings.length = 0;
  await Promise.all(recorders.splice(0).map((r) => r.close(10)));
});

const sentUsers = (plane: FakePlane) => plane.batches.flat().map((e) => e.targetingKey);

describe("experiment recorder", () => {
  it("sends a full batch at once and the rest after flushMs, in order", async () => {
    const plane = fakePlane();
    const r = recorder(plane, { batchSize: 500, flushMs: 50 });
    for (let i = 0; i < 1_200; i++) r.conversion("purchase", `u${i}`, i);
    await waitFor(() => plane.batches.length === 3, { what: "three batches" });
    expect(plane.batches.map((b) => b.length)).toEqual([500, 500, 200]);
    expect(sentUsers(plane)).toEqual(Array.from({ length: 1_200 }, (_, i) => `u${i}`));
    expect(plane.batches[0]?.[1]).toEqual({ type: "conversion", event: "purchase", targetingKey: "u1", value: 1 });
    expect(r.stats()).toEqual({ queued: 0, dropped: 0, sent: 1_200 });
  });

  it("sends an exposure once per user, flag and variant", async () => {
    const plane = fakePlane();
    const r = recorder(plane, { flushMs: 10 });
    r.exposure("checkout", "on", "u1");
    r.exposure("checkout", "on", "u1");
    r.exposure("other", "on", "u1");
    r.exposure("checkout", "off", "u1");
    await waitFor(() => plane.batches.length === 1, { what: "a batch" });
    expect(plane.batches[0]).toEqual([
      { type: "exposure", flag: "checkout", variant: "on", targetingKey: "u1" },
      { type: "exposure", flag: "other", variant: "on", targetingKey: "u1" },
      { type: "exposure", flag: "checkout", variant: "off", targetingKey: "u1" },
    ]);
  });

  it("skips what the control plane would refuse instead of failing the batch", async () => {
    const plane = fakePlane();
    const r = recorder(plane, { flushMs: 10 });
    r.conversion("", "u1");
    r.conversion("purchase", "x".repeat(257));
    r.conversion("purchase", "u2", Number.NaN);
    await waitFor(() => plane.batches.length === 1, { what: "a batch" });
    expect(plane.batches[0]).toEqual([{ type: "conversion", event: "purchase", targetingKey: "u2" }]);
  });

  it("keeps at most maxQueued while the control plane is away, dropping the oldest, and delivers the rest when it is back", async () => {
    const plane = fakePlane();
    plane.status = 0;
    const r = recorder(plane, { batchSize: 100, maxQueued: 1_000, flushMs: 10, maxBackoffMs: 40 });
    for (let i = 0; i < 1_500; i++) r.conversion("purchase", `u${i}`);
    await waitFor(() => plane.calls >= 3, { what: "retries" });
    expect(r.stats()).toMatchObject({ queued: 1_000, dropped: 500, sent: 0 });
    expect(warnings).toEqual(["experiment events could not be sent; keeping them and retrying"]);
    plane.status = 200;
    await waitFor(() => r.stats().sent === 1_000, { what: "the queue to drain" });
    expect(sentUsers(plane)).toEqual(Array.from({ length: 1_000 }, (_, i) => `u${i + 500}`));
  });

  it("backs off between retries: doubling from flushMs up to maxBackoffMs", async () => {
    const plane = fakePlane();
    plane.status = 503;
    const r = recorder(plane, { flushMs: 20, maxBackoffMs: 80 });
    r.conversion("purchase", "u1");
    const t0 = Date.now();
    await waitFor(() => plane.calls >= 5, { what: "five attempts" });
    // 20 (first send) + 20 + 40 + 80 + 80 ms, each wait spread by ±25%: 180 ms at least.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(180);
    expect(r.stats()).toMatchObject({ queued: 1, sent: 0 });
  });

  it("drops a batch the control plane refuses (400) rather than retrying it forever", async () => {
    const plane = fakePlane();
    plane.status = 400;
    const r = recorder(plane, { flushMs: 10 });
    r.conversion("purchase", "u1");
    await waitFor(() => r.stats().dropped === 1, { what: "the refused batch to be dropped" });
    expect(plane.calls).toBe(1);
    expect(warnings).toEqual(["the control plane refused a batch of experiment events; dropped it"]);
  });

  it("flushes everything on close, then records nothing more", async () => {
    const plane = fakePlane();
    const r = recorder(plane, { flushMs: 60_000, batchSize: 400 });
    for (let i = 0; i < 999; i++) r.exposure("checkout", "on", `u${i}`);
    await r.close();
    expect(sentUsers(plane)).toHaveLength(999);
    r.conversion("purchase", "late");
    expect(r.stats()).toEqual({ queued: 0, dropped: 0, sent: 999 });
  });

  it("gives up flushing on close after the timeout when the control plane does not answer", async () => {
    const plane = fakePlane();
    plane.status = -1;
    const r = recorder(plane, { flushMs: 60_000 });
    r.conversion("purchase", "u1");
    const t0 = Date.now();
    await r.close(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(r.stats()).toMatchObject({ queued: 1, sent: 0 });
  });
});

describe("evaluation counts", () => {
  /** A control plane that keeps whole bodies; `old` answers like one from before evaluation counts. */
  function bodyPlane(options: { old?: boolean } = {}) {
    const plane = {
      bodies: [] as ExperimentEventBatch[],
      status: 200,
      fetch: (async (_url, init) => {
        if (plane.status === 0) throw new TypeError("fetch failed");
        const body = JSON.parse(String(init?.body)) as ExperimentEventBatch;
        if (options.old && body.evaluations !== undefined) {
          return new Response(JSON.stringify({ error: { code: "KEELSON_ERR_INVALID_INPUT", message: 'body: Unrecognized key: "evaluations"' } }), { status: 400 });
        }
        if (plane.status === 200) plane.bodies.push(body);
        return new Response("{}", { status: plane.status });
      }) as typeof globalThis.fetch,
    };
    return plane;
  }
  const make = (plane: { fetch: typeof globalThis.fetch }, flushMs = 10) => {
    const r = createExperimentRecorder({ url: "http://control-plane", fetch: plane.fetch, log, flushMs });
    recorders.push(r);
    return r;
  };

  it("counts per flag and sends the counts with the next batch, alone when there are no events", async () => {
    const plane = bodyPlane();
    const r = make(plane);
    for (let i = 0; i < 1_000; i++) r.evaluation("checkout");
    r.evaluation("banner");
    r.exposure("checkout", "on", "u1");
    await waitFor(() => plane.bodies.length === 1, { what: "a batch" });
    expect(plane.bodies[0]).toEqual({ events: [{ type: "exposure", flag: "checkout", variant: "on", targetingKey: "u1" }], evaluations: { checkout: 1_000, banner: 1 } });
    r.evaluation("banner");
    await waitFor(() => plane.bodies.length === 2, { what: "a batch of counts only" });
    expect(plane.bodies[1]).toEqual({ events: [], evaluations: { banner: 1 } });
    // Counts are not events: only the exposure was sent as one.
    expect(r.stats()).toEqual({ queued: 0, dropped: 0, sent: 1 });
  });

  it("keeps the counts while the control plane is away and adds what was counted meanwhile", async () => {
    const plane = bodyPlane();
    plane.status = 503;
    const r = make(plane);
    r.evaluation("checkout");
    r.evaluation("checkout");
    await waitFor(() => warnings.length === 1, { what: "a failed send" });
    r.evaluation("checkout");
    plane.status = 200;
    await waitFor(() => plane.bodies.length === 1, { what: "the retry" });
    expect(plane.bodies[0]?.evaluations).toEqual({ checkout: 3 });
  });

  it("with a control plane from before evaluation counts, sends the events without them and stops counting", async () => {
    const plane = bodyPlane({ old: true });
    const r = make(plane);
    r.evaluation("checkout");
    r.conversion("purchase", "u1");
    await waitFor(() => plane.bodies.length === 1, { what: "the events, resent" });
    expect(plane.bodies[0]).toEqual({ events: [{ type: "conversion", event: "purchase", targetingKey: "u1" }] });
    expect(warnings).toEqual(["the control plane does not take flag evaluation counts (an older version?); no longer sending them"]);
    r.evaluation("checkout");
    r.conversion("purchase", "u2");
    await waitFor(() => plane.bodies.length === 2, { what: "the next batch" });
    expect(plane.bodies[1]).toEqual({ events: [{ type: "conversion", event: "purchase", targetingKey: "u2" }] });
    expect(r.stats()).toMatchObject({ dropped: 0, sent: 2 });
  });

  it("sends pending counts on close", async () => {
    const plane = bodyPlane();
    const r = make(plane, 60_000);
    r.evaluation("checkout");
    await r.close();
    expect(plane.bodies).toEqual([{ events: [], evaluations: { checkout: 1 } }]);
    r.evaluation("checkout");
    expect(plane.bodies).toHaveLength(1);
  });
});

describe("experiment recorder: identity", () => {
  it("sends the authorization it is given, asked anew for each request (the token rotates)", async () => {
    const auths: (string | null)[] = [];
    let token: string | undefined = "token-1";
    const r = createExperimentRecorder({
      url: "http://control-plane",
      flushMs: 5,
      log,
      authorization: () => (token === undefined ? undefined : `Bearer ${token}`),
      fetch: (_url, init) => {
        auths.push(new Headers(init?.headers).get("authorization"));
        return Promise.resolve(new Response(null, { status: 204 }));
      },
    });
    recorders.push(r);
    r.conversion("purchase", "u1");
    await waitFor(() => auths.length === 1, { what: "the first batch" });
    token = "token-2";
    r.conversion("purchase", "u2");
    await waitFor(() => auths.length === 2, { what: "the second batch" });
    token = undefined;
    r.conversion("purchase", "u3");
    await waitFor(() => auths.length === 3, { what: "the third batch" });
    expect(auths).toEqual(["Bearer token-1", "Bearer token-2", null]);
  });
});
