// Small HTTP helpers for the control-plane API: JSON in and out, the one error shape.
import type { IncomingMessage, ServerResponse } from "node:http";
import { KeelsonError } from "@keelson/protocol";

const MAX_BODY = 1024 * 1024;

/** An API endpoint's handler: the request, the response, the path's parameters and the URL. */
export type Handler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>, url: URL) => Promise<void>;

/**
 * Who may call an endpoint; every endpoint declares one, so none is open by accident.
 * - `public`: no credential (/healthz, /readyz, and the dashboard's page and assets).
 * - `read`: any user token (viewer, deployer, admin).
 * - `admin`: admin tokens.
 * - `telemetry`: services (identity token), the gateway and admins: OTLP ingest.
 * - `evaluate`: services and any user token: flag evaluation, experiment events.
 * - `watch`: the gateway and any user token: the routing table stream, and waking a service scaled to zero.
 * - `{ deploy: "name" }`: changes one service, named by that path parameter: admins, and deployers of its owner team.
 * - `{ flag: "key" }`: changes one flag, named by that path parameter: admins, and deployers of the flag's owner team.
 */
export type Access = "public" | "read" | "admin" | "telemetry" | "evaluate" | "watch" | { deploy: string } | { flag: string };

/** Registers an endpoint (`:name` in the path is a parameter) with who may call it. */
export type Route = (method: string, path: string, access: Access, handler: Handler) => void;

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `request body exceeds ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (err) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** A JSON answer; with `body` undefined (a 304), only the status and headers. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Answers with the error's code and message; anything but a KeelsonError says only that the log has it (no internals, no stack). */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = err instanceof KeelsonError ? err : new KeelsonError("KEELSON_ERR_INTERNAL", "the request failed inside the control plane; its log has the details");
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, e.status, e.toBody());
}

/**
 * Waits until a response that refused a write (backpressure) drains, or closes: a client that
 * leaves while the server waits never sends `drain`, and the handler must not wait for it forever.
 */
export function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}
