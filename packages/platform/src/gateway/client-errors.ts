// Answers written straight to a socket, where node gives no ServerResponse: requests node's
// parser rejected (400 malformed, 431 headers too large, 408 too slow, via the server's
// `clientError` event) and refused upgrades. Same JSON error shape as every other answer.
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { ErrorCode } from "@keelson/protocol";
import { KeelsonError } from "@keelson/protocol";
import type { GatewayMetrics } from "./gateway-metrics.js";

/**
 * Writes a complete HTTP/1.1 error answer with `connection: close` and closes the socket once
 * it is flushed (or at once if it cannot be written).
 */
export function writeRawError(socket: Duplex, status: number, code: ErrorCode, message: string, extra: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(new KeelsonError(code, message).toBody());
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(extra)) head += `${name}: ${value}\r\n`;
  socket.end(`${head}\r\n${body}`, () => socket.destroy());
}

/** Node's parser errors and what the client is told about them. */
function classify(code: string | undefined): { status: number; code: ErrorCode; reason: string; message: string } {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, code: "KEELSON_ERR_HEADERS_TOO_LARGE", reason: "headers_too_large", message: "the request headers are larger than the gateway accepts" };
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, code: "KEELSON_ERR_REQUEST_TIMEOUT", reason: "timeout", message: "the request was not received in time" };
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, code: "KEELSON_ERR_PAYLOAD_TOO_LARGE", reason: "bad_request", message: "the request's chunk extensions are too large" };
    case undefined:
    default:
      return { status: 400, code: "KEELSON_ERR_INVALID_INPUT", reason: "bad_request", message: `malformed HTTP request${code === undefined ? "" : ` (${code})`}` };
  }
}

/**
 * The public listener's `clientError` handler. Like node's own, it answers only when nothing of
 * a response is on the socket yet (else it would corrupt that response) and always closes.
 */
export function handleClientError(err: Error & { code?: string }, socket: Duplex, metrics: GatewayMetrics): void {
  if (err.code === "ECONNRESET" || err.code === "EPIPE") {
    metrics.clientErrors.inc({ reason: "reset" });
    socket.destroy();
    return;
  }
  const answer = classify(err.code);
  metrics.clientErrors.inc({ reason: answer.reason });
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  writeRawError(socket, answer.status, answer.code, answer.message);
}
