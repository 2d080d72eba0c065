// The starter service `keelson init` writes beside the manifest, so that `init` then `up`
// runs something real: plain Node, no dependencies, a readiness path, graceful shutdown.

/** Path of the starter service, relative to the manifest (matches manifestTemplate). */
export const STARTER_SERVICE_PATH = "services/web";

export function starterServiceSource(project: string): string {
  return `// A starter service for ${JSON.stringify(project)}: replace it with your own.
// Keelson gives it $PORT; it answers /health for readiness and stops cleanly on SIGTERM.
import { createServer } from "node:http";

const port = Number(process.env.PORT ?? 3000);
let draining = false;

const server = createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(draining ? 503 : 200, { "content-type": "text/plain" });
    res.end(draining ? "draining" : "ok");
    return;
  }
  res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
  res.end(\`hello from \${process.env.KEELSON_SERVICE ?? "web"} (\${process.env.KEELSON_REPLICA ?? "local"})\\n\`);
});

server.listen(port, "127.0.0.1", () => console.log(\`listening on 127.0.0.1:\${port}\`));

process.on("SIGTERM", () => {
  draining = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 5000).unref();
});
`;
}
