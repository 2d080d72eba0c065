// The Node processes the gateway benchmark (run.mjs) starts, one per invocation, each pinned by
// run.mjs: the trivial upstream and the Node proxies compared with it. Prints "READY <port>" once
// it listens; stops on SIGTERM.
// Usage: node servers.mjs upstream <port>
//        node servers.mjs undici|fastify <port> <upstream-url>
//        node servers.mjs keelson <port> <admin-port> <state-dir> <upstream-url> <workers> [<otlp-traces-url>]
//        node servers.mjs otlp-sink <port>   (accepts OTLP/HTTP exports and throws them away)
import { createServer } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = join(import.meta.dirname, "../..");
const [mode, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const ready = () => process.stdout.write(`READY ${port}\n`);
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"]);

function listen(server) {
  // Above any proxy pool's idle time, so a pooled socket is never closed under a request.
  server.keepAliveTimeout = 65_000;
  server.listen(port, "127.0.0.1", ready);
  process.on("SIGTERM", () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

switch (mode) {
  case "upstream": {
    const body = Buffer.from("hello");
    listen(
      createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
        res.end(body);
      }),
    );
    break;
  }
  case "undici": {
    // The floor for a Node proxy: undici's Pool.stream piping straight into the response.
    const { Pool } = await import("undici");
    const pool = new Pool(rest[0], { pipelining: 1, keepAliveTimeout: 4_000 });
    listen(
      createServer((req, res) => {
        const headers = [];
        const raw = req.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
        const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
        pool.stream(
          { path: req.url, method: req.method, headers, body: hasBody ? req : null },
          ({ statusCode, headers: answer }) => {
            for (const name of HOP_BY_HOP) delete answer[name];
            res.writeHead(statusCode, answer);
            return res;
          },
          (err) => {
            if (err === null || err === undefined) return;
            if (res.headersSent) res.destroy();
            else res.writeHead(502).end();
          },
        );
      }),
    );
    break;
  }
  case "fastify": {
    const { default: Fastify } = await import("fastify");
    const { default: proxy } = await import("@fastify/http-proxy");
    const app = Fastify({ logger: false });
    await app.register(proxy, { upstream: rest[0] });
    await app.listen({ port, host: "127.0.0.1" });
    app.server.keepAliveTimeout = 65_000;
    ready();
    process.on("SIGTERM", () => void app.close().then(() => process.exit(0)));
    break;
  }
  case "keelson": {
    const [adminPort, stateDir, upstream, workers, tracesUrl] = rest;
    const gw = await import(pathToFileURL(join(ROOT, "packages/platform/dist/gateway/index.js")).href);
    // A saved routing table, as a gateway restarted without its control plane would serve it.
    await gw.saveRoutingTable(
      stateDir,
      gw.buildRoutingTable({
        project: "bench",
        version: 1,
        services: [{ name: "upstream", routes: [{ path: "/", stripPrefix: false }] }],
        endpoints: [{ service: "upstream", replicaId: "upstream-1", url: upstream, release: "bench" }],
      }),
    );
    // runGateway handles SIGTERM itself: drains, then exits 0.
    await gw.runGateway({
      host: "127.0.0.1",
      port,
      adminPort: Number(adminPort),
      stateDir,
      workers: Number(workers),
      logLevel: "warn",
      ...(tracesUrl === undefined ? {} : { tracing: { endpoint: tracesUrl } }),
    });
    ready();
    break;
  }
  case "otlp-sink": {
    // Stands in for the control plane's receiver: what tracing costs the gateway, not the receiver.
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      });
    });
    listen(server);
    process.on("SIGTERM", () => server.close(() => process.exit(0)));
    break;
  }
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}
