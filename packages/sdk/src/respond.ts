// Writing JSON answers and the one error shape services answer with:
// `{ error: { code, message, details } }`. Shared by serve() and the router.
import type { ServerResponse } from "node:http";

/** The body of every error answer the SDK writes, and the shape services are expected to use. */
export interface ServiceErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/**
 * An error a handler throws to answer with a given status and error body; the router and
 * serve() turn it into `{ error: { code, message, details } }`.
 *
 * @example
 * throw new HttpError(400, "VALIDATION", "items[0].qty must be a whole number from 1 to 99", { field: "items[0].qty" });
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  /** Extra response headers (for example `allow` on a 405). */
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, details?: unknown, headers: Record<string, string> = {}) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.headers = headers;
  }

  toBody(): ServiceErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

/**
 * Answers with `body` as JSON. `undefined` sends no body (for 204).
 *
 * @example
 * json(res, 201, order);
 */
export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) throw new Error(`json(): the response was already started (status ${res.statusCode})`);
  const text = body === undefined ? "" : JSON.stringify(body);
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (body !== undefined) res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}

/** Answers with an HttpError's status, headers and error body. */
export function sendHttpError(res: ServerResponse, err: HttpError): void {
  json(res, err.status, err.toBody(), err.headers);
}
