// Serves the web dashboard's built files (packages/dashboard/dist) at / and /assets/*. The page
// and its assets are public; every API call the page makes carries the user's bearer token.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ServerResponse } from "node:http";
import { KeelsonError } from "@keelson/protocol";
import type { Route } from "./http.js";

/** What the dashboard's own files may load: only themselves and the API on the same origin. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

/** Vite's hashed asset names: one path segment, no leading dot (so never `..`). */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * The dashboard's dist folder: from the `@keelson/dashboard` package when it resolves, else beside
 * this package in the repository (packages/platform/{dist,src}/api → packages/dashboard/dist).
 */
export function findDashboardDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve("@keelson/dashboard/package.json")), "dist");
  } catch {
    return fileURLToPath(new URL("../../../dashboard/dist", import.meta.url));
  }
}

/** Registers GET / (the app's index.html) and GET /assets/:file (its hashed scripts and styles). */
export function addDashboardRoutes(route: Route, options: { dir?: string } = {}): void {
  const dir = options.dir ?? findDashboardDir();

  route("GET", "/", "public", async (_req, res) => {
    const html = await readOptional(join(dir, "index.html"));
    if (html === undefined) {
      // The API works without the dashboard; say how to get it rather than fail.
      const text = "The Keelson dashboard is not built. Run `npm run build` in the Keelson repository (or `npm run build -w packages/dashboard`), then reload.\n";
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    // index.html names the current hashed assets: revalidated on every load.
    send(res, html, "text/html; charset=utf-8", "no-cache");
  });

  route("GET", "/assets/:file", "public", async (_req, res, params) => {
    const name = params.file ?? "";
    const type = CONTENT_TYPES[extname(name)];
    const body = ASSET_NAME.test(name) && type !== undefined ? await readOptional(join(dir, "assets", name)) : undefined;
    if (body === undefined || type === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no dashboard asset "${name.slice(0, 100)}"`);
    // The name carries the content's hash, so it never changes under that name.
    send(res, body, type, "public, max-age=31536000, immutable");
  });
}

function send(res: ServerResponse, body: Buffer, type: string, cacheControl: string): void {
  res.setHeader("content-security-policy", DASHBOARD_CSP);
  res.writeHead(200, { "content-type": type, "content-length": body.length, "cache-control": cacheControl });
  res.end(body);
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "EISDIR") return undefined;
    throw err;
  }
}
