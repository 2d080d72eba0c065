// A stand-in for the Keelson gateway in tests: dispatches on the x-keelson-service header
// to in-process handlers and records every call, so a service that calls others can be
// tested over real HTTP without running the platform.
import { createServer } from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import { TARGET_SERVICE_HEADER } from "@keelson/protocol";
import { json } from "./respond.js";
import type { Handler } from "./serve.js";

export interface RecordedCall {
  /** The target service header, or undefined when the caller did not set one. */
  service: string | undefined;
  method: string;
  /** The request target as received (path and query). */
  path: string;
  headers: IncomingHttpHeaders;
}

export interface GatewayStub {
  /** Pass this as the client's gatewayUrl. */
  readonly url: string;
  /** Calls in the order they arrived. */
  readonly calls: RecordedCall[];
  close(): Promise<void>;
}

/**
 * Starts a gateway stand-in on 127.0.0.1 and a free port. A call for a service without a
 * handler gets the gateway's 503 `KEELSON_ERR_NO_ENDPOINT`, as when no replica is ready.
 *
 * @example
 * const gateway = await startGatewayStub({ inventory: createRouter().get("/api/inventory", ({ res }) => json(res, 200, { items: [] })).handle });
 * const client = createClient({ gatewayUrl: gateway.url, self: "storefront" });
 */
export async function startGatewayStub(services: Record<string, Handler>): Promise<GatewayStub> {
  const calls: RecordedCall[] = [];
  const server = createServer((req, res) => {
    const header = req.headers[TARGET_SERVICE_HEADER];
    const service = typeof header === "string" ? header : undefined;
    calls.push({ service, method: req.method ?? "GET", path: req.url ?? "/", headers: { ...req.headers } });
    const handler = service === undefined ? undefined : services[service];
    if (handler === undefined) {
      json(res, 503, { error: { code: "KEELSON_ERR_NO_ENDPOINT", message: `service ${JSON.stringify(service)} has no ready replica` } });
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        if (res.headersSent) return void res.destroy();
        json(res, 500, { error: { code: "INTERNAL", message: err instanceof Error ? err.message : String(err) } });
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("gateway stub: no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    calls,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
