// A small static file server: files under `root` are served below `basePath` (the gateway route,
// not stripped, so relative links in pages work), with content types, ETags and cache headers.
// /ready and /healthz are the probes; during shutdown /ready answers 503 while requests finish.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/**
 * Starts the server; resolves with its URL and close(), which stops taking connections and
 * waits for requests in flight.
 * @param {object} options
 * @param {string | URL} options.root the folder served
 * @param {string} [options.basePath] the path it is served under ("/" by default)
 * @param {number} [options.port] 0 (default) picks a free port
 * @param {string} [options.host] default 127.0.0.1
 */
export async function startSiteServer(options) {
  const root = typeof options.root === "string" ? options.root : fileURLToPath(options.root);
  const base = (options.basePath ?? "/").replace(/\/+$/, "");
  let draining = false;

  /** The file for a path below the base, or undefined when it would leave the root. */
  const fileFor = (rest) => {
    let decoded;
    try {
      decoded = decodeURIComponent(rest);
    } catch {
      return undefined;
    }
    if (decoded.includes("\0")) return undefined;
    const file = normalize(join(root, decoded));
    return file === root.replace(/[\\/]$/, "") || file.startsWith(root.endsWith(sep) ? root : root + sep) ? file : undefined;
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://site");
    if (url.pathname === "/ready") {
      res.writeHead(draining ? 503 : 200, { "content-type": "text/plain", "cache-control": "no-store" });
      return res.end(draining ? "draining" : "ready");
    }
    if (url.pathname === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" });
      return res.end("alive");
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
      return res.end("method not allowed");
    }
    // /base → /base/, so that relative links in index.html resolve below the base.
    if (base !== "" && url.pathname === base) {
      res.writeHead(301, { location: `${base}/${url.search}` });
      return res.end();
    }
    if (!url.pathname.startsWith(`${base}/`)) return notFound(res);
    let file = fileFor(url.pathname.slice(base.length));
    if (file === undefined) return notFound(res);
    let info = await stat(file).catch(() => undefined);
    if (info?.isDirectory()) {
      file = join(file, "index.html");
      info = await stat(file).catch(() => undefined);
    }
    if (!info?.isFile()) return notFound(res);
    const body = await readFile(file);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    const type = TYPES[extname(file).toLowerCase()] ?? "application/octet-stream";
    // Pages are checked on every visit; other files may be reused for a while.
    const headers = { "content-type": type, etag, "cache-control": type.startsWith("text/html") ? "no-cache" : "public, max-age=300", "x-content-type-options": "nosniff" };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers);
      return res.end();
    }
    res.writeHead(200, { ...headers, "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  server.keepAliveTimeout = 65_000;

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve(undefined));
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      draining = true;
      return new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeIdleConnections();
      });
    },
  };
}

function notFound(res) {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("not found");
}
