// Tests for the forwarder with a scripted fetch: retries on retryable answers only, bounded
// queue and concurrency, drops counted and logged once per failure streak, close abandons.
import { describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import { createOtlpForwarder } from "./otlp-forwarder.js";
import type { ForwardPayload } from "./otlp-forwarder.js";
import type { TelemetryLog } from "./telemetry-log.js";

const URL_ = "http://127.0.0.1:4318/v1/traces";

function payload(bytes = 10, spans = 3): ForwardPayload {
  return { body: Buffer.alloc(bytes, 1), contentType: "application/x-protobuf", contentEncoding: "gzip", spans };
}

/** A fetch that answers from a script (a status, or "error" for a network failure) and records calls. */
function scriptedFetch(script: Array<number | "error">, fallback: number | "error" = 200) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fn = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    calls.push({ url: String(url), init: init ?? {} });
    const step = script.shift() ?? fallback;
    if (step === "error") throw new TypeError("fetch failed");
    return new Response("{}", { status: step });
  };
  return { fn: fn as typeof fetch, calls };
}

function recordingLog() {
  const lines: Array<{ level: string; msg: string | undefined; obj: object }> = [];
  const log: TelemetryLog = {
    info: (obj, msg) => lines.push({ level: "info", msg, obj }),
    warn: (obj, msg) => lines.push({ level: "warn", msg, obj }),
    error: (obj, msg) => lines.push({ level: "error", msg, obj }),
  };
  return { log, lines };
}

describe("createOtlpForwarder", () => {
  it("sends the payload as it came, retrying 503 and network errors until the backend takes it", async () => {
    const f = scriptedFetch([503, "error"]);
    const fw = createOtlpForwarder({ url: URL_, fetch: f.fn, retryBaseMs: 1, headers: { authorization: "Bearer t" } });
    const p = payload();
    expect(fw.enqueue(p)).toBe(true);
    expect(await fw.drain(5000)).toBe(true);
    expect(f.calls).toHaveLength(3);
    const init = f.calls[2]?.init;
    expect(init?.method).toBe("POST");
    expect(init?.headers).toEqual({ authorization: "Bearer t", "content-type": "application/x-protobuf", "content-encoding": "gzip" });
    expect(init?.body).toBe(p.body);
    expect(fw.stats()).toMatchObject({ forwarded: 1, forwardedSpans: 3, retries: 2, dropped: 0, queued: 0, inFlight: 0 });
  });

  it("drops at once on a non-retryable answer, and after maxRetries on retryable ones", async () => {
    const f = scriptedFetch([400, 502, 502, 502]);
    const fw = createOtlpForwarder({ url: URL_, fetch: f.fn, retryBaseMs: 1, maxRetries: 2, concurrency: 1 });
    fw.enqueue(payload(10, 1));
    fw.enqueue(payload(10, 2));
    expect(await fw.drain(5000)).toBe(true);
    // One try for the 400, three (1 + 2 retries) for the 502s.
    expect(f.calls).toHaveLength(4);
    expect(fw.stats()).toMatchObject({ forwarded: 0, dropped: 2, droppedSpans: 3, retries: 2 });
  });

  it("logs a failure streak once and its end once", async () => {
    const f = scriptedFetch([400, 400, 200, 400]);
    const { log, lines } = recordingLog();
    const fw = createOtlpForwarder({ url: URL_, fetch: f.fn, log, concurrency: 1 });
    for (let i = 0; i < 4; i++) fw.enqueue(payload());
    expect(await fw.drain(5000)).toBe(true);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ["warn", "forwarding spans failed; dropping payloads until the backend takes them again"],
      ["info", "forwarding spans works again"],
      ["warn", "forwarding spans failed; dropping payloads until the backend takes them again"],
    ]);
    expect(lines[0]?.obj).toMatchObject({ url: URL_, status: 400 });
  });

  it("bounds the queue by bytes and the requests in flight by concurrency", async () => {
    const release: Array<() => void> = [];
    const blocking = (async () => {
      await new Promise<void>((r) => release.push(r));
      return new Response("{}", { status: 200 });
    }) as unknown as typeof fetch;
    const fw = createOtlpForwarder({ url: URL_, fetch: blocking, concurrency: 2, maxQueueBytes: 25 });
    // Two go out at once; two wait (20 bytes); the fifth would make 30 bytes waiting.
    const accepted = [1, 2, 3, 4, 5].map(() => fw.enqueue(payload(10)));
    expect(accepted).toEqual([true, true, true, true, false]);
    expect(fw.stats()).toMatchObject({ inFlight: 2, queued: 2, queuedBytes: 20, dropped: 1 });
    await waitFor(() => release.length === 2);
    while (fw.stats().forwarded < 4) {
      release.shift()?.();
      await waitFor(() => release.length > 0 || fw.stats().forwarded === 4, { what: "the next send" });
    }
    expect(fw.stats()).toMatchObject({ forwarded: 4, inFlight: 0, queued: 0, queuedBytes: 0 });
  });

  it("close() drops what is queued and abandons a retry that is waiting", async () => {
    const f = scriptedFetch([], 503);
    const fw = createOtlpForwarder({ url: URL_, fetch: f.fn, retryBaseMs: 60_000, concurrency: 1 });
    fw.enqueue(payload(10, 1));
    fw.enqueue(payload(10, 2));
    await waitFor(() => f.calls.length === 1);
    const started = Date.now();
    await fw.close();
    expect(await fw.drain(5000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(fw.stats()).toMatchObject({ forwarded: 0, dropped: 2, droppedSpans: 3, queued: 0 });
    expect(fw.enqueue(payload())).toBe(false);
  });
});
