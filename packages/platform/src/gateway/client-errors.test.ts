// Tests for the answers written straight to a socket: status, JSON body, connection close.
import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { handleClientError, writeRawError } from "./client-errors.js";
import { createGatewayMetrics } from "./gateway-metrics.js";

/** A socket stand-in that records what is written and whether it was destroyed. */
function fakeSocket(options: { inFlightHeadersSent?: boolean } = {}) {
  const written: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(Buffer.from(chunk));
      cb();
    },
  });
  if (options.inFlightHeadersSent !== undefined) Object.assign(socket, { _httpMessage: { headersSent: options.inFlightHeadersSent } });
  return { socket, text: () => Buffer.concat(written).toString() };
}

const error = (code: string) => Object.assign(new Error(code), { code });

describe("handleClientError", () => {
  it("answers oversized headers with 431 JSON and closes", async () => {
    const metrics = createGatewayMetrics({ defaultMetrics: false });
    const { socket, text } = fakeSocket();
    handleClientError(error("HPE_HEADER_OVERFLOW"), socket, metrics);
    await new Promise((r) => socket.once("close", r));
    expect(text()).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(text()).toContain("connection: close\r\n");
    expect(JSON.parse(text().split("\r\n\r\n")[1]!)).toMatchObject({ error: { code: "KEELSON_ERR_HEADERS_TOO_LARGE" } });
    expect(await metrics.registry.metrics()).toContain('keelson_gateway_client_errors_total{reason="headers_too_large"} 1');
  });

  it("answers a slow request with 408 and anything else malformed with 400", async () => {
    const metrics = createGatewayMetrics({ defaultMetrics: false });
    const slow = fakeSocket();
    handleClientError(error("ERR_HTTP_REQUEST_TIMEOUT"), slow.socket, metrics);
    const bad = fakeSocket();
    handleClientError(error("HPE_INVALID_METHOD"), bad.socket, metrics);
    expect(slow.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(bad.text()).toMatch(/^HTTP\/1\.1 400 /);
    expect(bad.text()).toContain("HPE_INVALID_METHOD");
  });

  it("writes nothing over a response already under way, and nothing to a reset connection", () => {
    const metrics = createGatewayMetrics({ defaultMetrics: false });
    const busy = fakeSocket({ inFlightHeadersSent: true });
    handleClientError(error("HPE_INVALID_METHOD"), busy.socket, metrics);
    expect(busy.text()).toBe("");
    expect(busy.socket.destroyed).toBe(true);
    const reset = fakeSocket();
    handleClientError(error("ECONNRESET"), reset.socket, metrics);
    expect(reset.text()).toBe("");
    expect(reset.socket.destroyed).toBe(true);
  });
});

describe("writeRawError", () => {
  it("adds extra headers such as retry-after and a correct content-length", () => {
    const { socket, text } = fakeSocket();
    writeRawError(socket, 429, "KEELSON_ERR_RATE_LIMITED", "slow down", { "retry-after": "2" });
    const [head, body] = text().split("\r\n\r\n");
    expect(head).toContain("retry-after: 2");
    expect(head).toContain(`content-length: ${Buffer.byteLength(body!)}`);
    expect(JSON.parse(body!)).toEqual({ error: { code: "KEELSON_ERR_RATE_LIMITED", message: "slow down" } });
  });
});
