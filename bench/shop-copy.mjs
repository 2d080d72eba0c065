// Writes a copy of the example shop's manifest with free ports and absolute service paths,
// so a benchmark runs the real shop without touching examples/shop/.keelson.
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { parseDocument } from "yaml";

export const ROOT = join(import.meta.dirname, "..");

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function writeShopCopy(dir) {
  const ports = { controlPlane: await freePort(), gateway: await freePort(), admin: await freePort(), mesh: await freePort() };
  const shop = join(ROOT, "examples/shop");
  const doc = parseDocument(await readFile(join(shop, "keelson.yaml"), "utf8"));
  doc.setIn(["controlPlane"], doc.createNode({ host: "127.0.0.1", port: ports.controlPlane }));
  // The mesh listener (where services call each other) gets a free port of its own too.
  doc.setIn(["gateway"], doc.createNode({ host: "127.0.0.1", port: ports.gateway, adminPort: ports.admin, meshPort: ports.mesh }));
  const services = [];
  for (const item of doc.getIn(["services"]).items) {
    const name = item.key.value;
    const path = join(shop, String(doc.getIn(["services", name, "path"])));
    doc.setIn(["services", name, "path"], path);
    // Shared paths the pipeline copies in are relative to the manifest too.
    const include = doc.getIn(["services", name, "pipeline", "include"]);
    if (include) doc.setIn(["services", name, "pipeline", "include"], doc.createNode(include.items.map((i) => join(shop, i.value))));
    services.push({ name, path, start: String(doc.getIn(["services", name, "start"])), replicas: Number(doc.getIn(["services", name, "replicas"]) ?? 1) });
  }
  await writeFile(join(dir, "keelson.yaml"), doc.toString());
  return { ports, services };
}
