// The flag provider's requests to the control plane carry the service's identity token: the
// change stream, the polling fallback and the experiment events, against a local HTTP server
// that records what it gets. (Behaviour against a real control plane: test/integration.)
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import { KeelsonFlagProvider } from "./flags.js";
import { createIdentity } from "./identity.js";
import { createLogger } from "./logger.js";

const view = {
  revision: 1,
  etag: "r1",
  flags: { checkout: { state: "ENABLED", type: "experiment", variants: { on: true, off: false }, defaultVariant: "on" } },
};

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
}

let server: Server;
let url: string;
let dir: string;
let streamWorks = true;
const seen: Seen[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keelson-sdk-flags-"));
  server = createServer((req, res) => {
    seen.push({ method: req.method ?? "GET", path: req.url ?? "/", authorization: req.headers.authorization });
    if (req.url === "/v1/flags/stream") {
      if (!streamWorks) return void res.writeHead(503).end();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify(view)}\n\n`);
      return; // stays open, like the control plane's stream
    }
    if (req.url === "/v1/flags") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(view));
    req.resume();
    req.on("end", () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

const silent = createLogger({ level: "silent" });

describe("KeelsonFlagProvider: identity", () => {
  it("sends authorization: Bearer <token> on the stream, on polls and with experiment events", async () => {
    const tokenFile = join(dir, "token.jwt");
    await writeFile(tokenFile, "svc-token");
    const identity = createIdentity({ identityFile: tokenFile, tlsDir: "", logger: silent });

    streamWorks = true;
    const streaming = new KeelsonFlagProvider({ url, identity, log: silent, experiments: { flushMs: 10 } });
    await streaming.initialize();
    const result = await streaming.resolveBooleanEvaluation("checkout", false, { targetingKey: "user-1" });
    expect(result.value).toBe(true);
    await waitFor(() => seen.some((s) => s.path === "/v1/experiments/events"), { what: "the exposure to be sent" });
    await streaming.onClose();

    streamWorks = false;
    const polling = new KeelsonFlagProvider({ url, identity, log: silent, pollMs: 10_000, reconnectMs: 10_000 });
    await polling.initialize();
    await polling.onClose();

    const paths = [...new Set(seen.map((s) => `${s.method} ${s.path}`))].sort();
    expect(paths).toEqual(["GET /v1/flags", "GET /v1/flags/stream", "POST /v1/experiments/events"]);
    expect(seen.every((s) => s.authorization === "Bearer svc-token")).toBe(true);
  });

  it("sends no authorization with identity: false", async () => {
    seen.length = 0;
    streamWorks = true;
    const provider = new KeelsonFlagProvider({ url, identity: false, log: silent });
    await provider.initialize();
    await provider.onClose();
    expect(seen.map((s) => [s.path, s.authorization])).toEqual([["/v1/flags/stream", undefined]]);
  });
});
