// The OTLP/HTTP traces receiver the control plane mounts at POST /v1/traces: JSON or
// protobuf, gzip or not, answered as the OTLP specification says (partial success for
// rejected spans, google.rpc.Status bodies for errors); spans go to a TraceStore.
import type { IncomingMessage, ServerResponse } from "node:http";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { Counter } from "prom-client";
import type { Registry } from "prom-client";
import { OtlpDecodeError, decodeOtlpJson, decodeOtlpProtobuf } from "./otlp-decode.js";
import type { DecodedTraces } from "./otlp-decode.js";
import { createOtlpForwarder } from "./otlp-forwarder.js";
import type { OtlpForwarder, OtlpForwarderOptions, OtlpForwarderStats } from "./otlp-forwarder.js";
import { ExportTraceServiceResponse, RpcStatus } from "./otlp-proto.js";
import { silentTelemetryLog } from "./telemetry-log.js";
import type { TelemetryLog } from "./telemetry-log.js";
import type { TraceStore } from "./trace-store.js";

export interface OtlpReceiverOptions {
  store: TraceStore;
  /** Largest body taken, on the wire and after gunzip; default 4 MiB. Larger ones get 413. */
  maxBodyBytes?: number;
  /** Also send accepted payloads on to another OTLP backend (a URL and options, or a forwarder). */
  forward?: OtlpForwarderOptions | OtlpForwarder;
  log?: TelemetryLog;
  /** When given, the receiver's counters are registered in it (keelson_traces_*). */
  registry?: Registry;
  /**
   * Known secret values to take out of spans before they are stored (the vault's redactor). A
   * batch that held one is not forwarded (the forwarder sends the bytes as they came).
   */
  redactor?: () => { size: number; redact(text: string): string; redactDeep(value: unknown): unknown };
}

/** What happened to a request, as counted. */
export type OtlpOutcome = "accepted" | "partial" | "malformed" | "too_large" | "unsupported" | "method_not_allowed" | "unavailable" | "aborted" | "internal";

export interface OtlpReceiverStats {
  requests: Record<OtlpOutcome, number>;
  acceptedSpans: number;
  rejectedSpans: number;
  /** Bytes received on the wire (before gunzip). */
  bytes: number;
  forward: OtlpForwarderStats | undefined;
}

export interface OtlpReceiver {
  /** The request handler: never throws, always answers. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  stats(): OtlpReceiverStats;
  /** Stops the forwarder, if any. The store is the caller's to close. */
  close(): Promise<void>;
}

export const DEFAULT_OTLP_MAX_BODY_BYTES = 4 * 1024 * 1024;

type Format = "json" | "protobuf";
/** google.rpc.Code values used in error bodies. */
const RPC = { INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14 } as const;
const gunzipAsync = promisify(gunzip);

/**
 * Creates the receiver; mount `handle` at POST /v1/traces.
 *
 * @example
 * const traces = createSqliteTraceStore({ path: join(stateDir, "traces.db") });
 * const receiver = createOtlpReceiver({ store: traces, log, registry });
 * route("POST", "/v1/traces", receiver.handle);
 */
export function createOtlpReceiver(options: OtlpReceiverOptions): OtlpReceiver {
  const { store } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_OTLP_MAX_BODY_BYTES;
  const log = options.log ?? silentTelemetryLog;
  const forwarder = options.forward === undefined ? undefined : "enqueue" in options.forward ? options.forward : createOtlpForwarder({ log, ...options.forward });

  const requests: Record<OtlpOutcome, number> = { accepted: 0, partial: 0, malformed: 0, too_large: 0, unsupported: 0, method_not_allowed: 0, unavailable: 0, aborted: 0, internal: 0 };
  let acceptedSpans = 0;
  let rejectedSpans = 0;
  let bytes = 0;
  const promRequests = options.registry
    ? new Counter({ name: "keelson_traces_requests_total", help: "OTLP trace export requests received, by outcome.", labelNames: ["outcome"], registers: [options.registry] })
    : undefined;
  const promSpans = options.registry
    ? new Counter({ name: "keelson_traces_spans_total", help: "Spans received over OTLP, by result (accepted or rejected).", labelNames: ["result"], registers: [options.registry] })
    : undefined;
  let storeFailureLogged = false;

  const count = (outcome: OtlpOutcome) => {
    requests[outcome]++;
    promRequests?.inc({ outcome });
  };

  const fail = (res: ServerResponse, format: Format, outcome: OtlpOutcome, status: number, code: number, message: string, headers: Record<string, string> = {}) => {
    count(outcome);
    send(res, format, status, format === "json" ? JSON.stringify({ code, message }) : RpcStatus.encode(RpcStatus.create({ code, message })).finish(), headers);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Until the content type is known, errors are answered in JSON.
    let format: Format = "json";
    try {
      if (req.method !== "POST") return fail(res, format, "method_not_allowed", 405, RPC.UNIMPLEMENTED, `${req.method ?? "?"} is not allowed; send POST`, { allow: "POST" });
      const contentType = req.headers["content-type"] ?? "";
      const parsed = formatOf(contentType);
      if (parsed === undefined) {
        return fail(res, format, "unsupported", 415, RPC.UNIMPLEMENTED, `content-type must be application/json or application/x-protobuf, got ${JSON.stringify(contentType)}`);
      }
      format = parsed;
      const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
      if (encoding !== "identity" && encoding !== "gzip") return fail(res, format, "unsupported", 415, RPC.UNIMPLEMENTED, `content-encoding must be gzip or identity, got ${JSON.stringify(encoding)}`);
      const tooLarge = `the body is larger than ${maxBodyBytes} bytes; send smaller batches`;
      const declared = Number(req.headers["content-length"]);
      if (Number.isFinite(declared) && declared > maxBodyBytes) return closeAfter(req, res, () => fail(res, format, "too_large", 413, RPC.RESOURCE_EXHAUSTED, tooLarge));

      const read = await readBody(req, maxBodyBytes);
      if (read === "aborted") return count("aborted");
      if (read === "too_large") return closeAfter(req, res, () => fail(res, format, "too_large", 413, RPC.RESOURCE_EXHAUSTED, tooLarge));
      bytes += read.byteLength;

      let body = read;
      if (encoding === "gzip") {
        try {
          body = await gunzipAsync(read, { maxOutputLength: maxBodyBytes });
        } catch (err) {
          // A small gzip that inflates past the limit is a zip bomb or a too-large batch.
          if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") return fail(res, format, "too_large", 413, RPC.RESOURCE_EXHAUSTED, `the body inflates to more than ${maxBodyBytes} bytes; send smaller batches`);
          return fail(res, format, "malformed", 400, RPC.INVALID_ARGUMENT, `the body is not valid gzip: ${(err as Error).message}`);
        }
      }

      let decoded: DecodedTraces;
      try {
        decoded = format === "json" ? decodeOtlpJson(body) : decodeOtlpProtobuf(body);
      } catch (err) {
        if (err instanceof OtlpDecodeError) return fail(res, format, "malformed", 400, RPC.INVALID_ARGUMENT, err.message);
        throw err;
      }

      let leaked = false;
      const redactor = options.redactor?.();
      if (redactor !== undefined && redactor.size > 0 && decoded.spans.length > 0) {
        const text = body.toString("utf8");
        if (redactor.redact(text) !== text || format !== "json") {
          const clean = redactor.redactDeep(decoded.spans) as typeof decoded.spans;
          leaked = JSON.stringify(clean) !== JSON.stringify(decoded.spans);
          decoded = { ...decoded, spans: clean };
        }
      }
      if (decoded.spans.length > 0) {
        try {
          await store.write(decoded.spans);
          storeFailureLogged = false;
        } catch (err) {
          if (!storeFailureLogged) log.warn({ err }, "storing spans failed; answering 503 so senders retry");
          storeFailureLogged = true;
          return fail(res, format, "unavailable", 503, RPC.UNAVAILABLE, "the trace store is unavailable; retry later", { "retry-after": "1" });
        }
      }
      acceptedSpans += decoded.spans.length;
      rejectedSpans += decoded.rejected;
      promSpans?.inc({ result: "accepted" }, decoded.spans.length);
      if (decoded.rejected > 0) promSpans?.inc({ result: "rejected" }, decoded.rejected);
      if (leaked) log.warn({ spans: decoded.spans.length }, "spans held a secret's value: stored redacted, not forwarded");
      if (forwarder && decoded.spans.length > 0 && !leaked) {
        forwarder.enqueue({ body: read, contentType, contentEncoding: encoding === "identity" ? undefined : encoding, spans: decoded.spans.length });
      }

      count(decoded.rejected > 0 ? "partial" : "accepted");
      const partialSuccess =
        decoded.rejected > 0 ? { rejectedSpans: decoded.rejected, errorMessage: `${decoded.rejected} span(s) rejected: ${decoded.reasons.join("; ")}` } : undefined;
      if (format === "json") {
        // int64 goes out as a string, as the OTLP/JSON mapping writes it.
        send(res, format, 200, JSON.stringify(partialSuccess ? { partialSuccess: { ...partialSuccess, rejectedSpans: String(partialSuccess.rejectedSpans) } } : {}));
      } else {
        send(res, format, 200, ExportTraceServiceResponse.encode(ExportTraceServiceResponse.create(partialSuccess ? { partialSuccess } : {})).finish());
      }
    } catch (err) {
      log.warn({ err }, "OTLP request handling failed");
      if (!res.headersSent) fail(res, format, "internal", 500, RPC.INTERNAL, "internal error while receiving spans");
      else count("internal");
    }
  };

  return {
    handle,
    stats: () => ({ requests: { ...requests }, acceptedSpans, rejectedSpans, bytes, forward: forwarder?.stats() }),
    close: async () => {
      await forwarder?.close();
    },
  };
}

function formatOf(contentType: string): Format | undefined {
  const media = contentType.split(";")[0]?.trim().toLowerCase();
  if (media === "application/json") return "json";
  if (media === "application/x-protobuf" || media === "application/protobuf") return "protobuf";
  return undefined;
}

function send(res: ServerResponse, format: Format, status: number, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.statusCode = status;
  res.setHeader("content-type", format === "json" ? "application/json" : "application/x-protobuf");
  res.setHeader("content-length", typeof body === "string" ? Buffer.byteLength(body) : body.byteLength);
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(body);
}

/**
 * Answers without reading the rest of the body: the connection is closed after the answer,
 * since what is left of the body would otherwise be read as the next request.
 */
function closeAfter(req: IncomingMessage, res: ServerResponse, answer: () => void): void {
  res.setHeader("connection", "close");
  res.once("finish", () => req.destroy());
  answer();
}

/** Reads the body up to `limit` bytes; stops reading (without consuming the rest) past it. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too_large" | "aborted"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (value: Buffer | "too_large" | "aborted") => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("close", onAbort);
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > limit) {
        req.pause();
        return finish("too_large");
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(Buffer.concat(chunks, size));
    const onAbort = () => finish("aborted");
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onAbort);
    req.once("close", onAbort);
  });
}
