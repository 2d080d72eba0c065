// Makes a copy of the example shop's manifest in a temp folder, with free ports and the
// services' paths made absolute, so tests run the real shop without touching examples/shop/.keelson.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { ROOT } from "./cli.js";

export async function writeShopCopy(dir: string, ports: { controlPlane: number; gateway: number; admin: number; mesh?: number }): Promise<void> {
  const shop = join(ROOT, "examples/shop");
  const doc = parseDocument(await readFile(join(shop, "keelson.yaml"), "utf8"));
  doc.setIn(["controlPlane"], doc.createNode({ host: "127.0.0.1", port: ports.controlPlane }));
  doc.setIn(["gateway"], doc.createNode({ host: "127.0.0.1", port: ports.gateway, adminPort: ports.admin, ...(ports.mesh === undefined ? {} : { meshPort: ports.mesh }) }));
  const services = doc.getIn(["services"]) as { items: Array<{ key: { value: string } }> };
  for (const item of services.items) {
    const name = item.key.value;
    const path = String(doc.getIn(["services", name, "path"]));
    doc.setIn(["services", name, "path"], join(shop, path));
    const include = doc.getIn(["services", name, "pipeline", "include"]) as { items: Array<{ value: string }> } | undefined;
    if (include) doc.setIn(["services", name, "pipeline", "include"], doc.createNode(include.items.map((i) => join(shop, i.value))));
  }
  await writeFile(join(dir, "keelson.yaml"), doc.toString());
}
