// HTTP helpers shared by the gateway's listeners (the single process and the cluster primary):
// listening with clear errors, closing, and JSON answers in the one error shape.
import type { Server, ServerResponse } from "node:http";
import type { ErrorCode } from "@keelson/protocol";
import { KeelsonError } from "@keelson/protocol";

export function listen(server: Server, host: string, port: number, field: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      if (err.code === "EADDRINUSE") {
        reject(new KeelsonError("KEELSON_ERR_PORT_IN_USE", `${field}: ${host}:${port} is already in use`, { details: { host, port }, cause: err }));
      } else if (err.code === "EACCES" || err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND") {
        reject(new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: cannot listen on ${host}:${port} (${err.code})`, { details: { host, port }, cause: err }));
      } else {
        reject(err);
      }
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : text);
}

export function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(res, status, new KeelsonError(code, message).toBody());
}
