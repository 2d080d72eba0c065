import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { ReplicaStatus, StatusReport } from "@keelson/protocol";
import { parseManifest } from "../manifest/index.js";
import { checkReadiness } from "./readiness.js";

const servers: Server[] = [];
/** A replica answering its readiness path with `status`. */
async function replica(status: number): Promise<number> {
  const server = createServer((req, res) => {
    res.statusCode = req.url === "/ready" ? status : 404;
    res.end();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

const manifest = parseManifest(
  "project: shop\nservices:\n  orders: { owner: web, path: orders, start: x, readiness: { path: /ready, timeout: 2s } }\n  web: { owner: web, path: web, start: x }\n",
  "keelson.yaml",
  { checkPaths: false },
).manifest;

function status(ports: number[], states: ReplicaStatus["state"][] = ports.map(() => "ready")): StatusReport {
  const instances = ports.map((port, index): ReplicaStatus => ({ id: `orders-${index}`, service: "orders", release: "r-1", index, state: states[index] ?? "ready", pid: 1, port, url: `http://127.0.0.1:${port}`, restarts: 0, startedAt: undefined, lastExit: undefined }));
  const service = (name: string, list: ReplicaStatus[]) => ({ name, owner: "web", release: "r-1", replicas: { desired: list.length, ready: list.length }, endpoints: [], routes: [], instances: list });
  return { project: "shop", controlPlane: { url: "", pid: 1, version: "", startedAt: "" }, gateway: { url: "" }, services: [service("orders", instances), service("web", [])] };
}

describe("checkReadiness", () => {
  it("passes a service whose readiness path answers on every replica, and warns about one without a path", async () => {
    const results = await checkReadiness({ manifest, status: status([await replica(200), await replica(204)]) });
    expect(results).toEqual([
      { check: "readiness", status: "pass", message: "orders: /ready answers on 2/2 replicas" },
      {
        check: "readiness",
        status: "warn",
        message: "web has no readiness path: its replicas get traffic as soon as they start",
        fix: "set services.web.readiness to a path that answers 2xx once the service can serve, e.g. readiness: /health",
      },
    ]);
  });

  it("fails naming each replica that does not answer, and why", async () => {
    const good = await replica(200);
    const bad = await replica(503);
    const results = await checkReadiness({ manifest, status: status([good, bad]) });
    expect(results[0]).toEqual({
      check: "readiness",
      status: "fail",
      message: `orders: /ready fails on 1 of 2 replicas: orders-1 (port ${bad}): HTTP 503`,
      fix: "`keelson logs orders` shows why; `keelson status orders` shows each replica",
    });
    // A replica whose process is gone refuses the connection.
    const closed = await replica(200);
    await new Promise((r) => servers.pop()?.close(r));
    expect((await checkReadiness({ manifest, status: status([closed]) }))[0]?.message).toBe(`orders: /ready fails on 1 of 1 replicas: orders-0 (port ${closed}): ECONNREFUSED`);
  });

  it("fails a service that should run replicas and runs none, and passes one scaled to zero", async () => {
    const gone = status([1, 2], ["failed", "stopped"]);
    const results = await checkReadiness({ manifest, status: gone });
    expect(results[0]).toEqual({ check: "readiness", status: "fail", message: "orders: 0 of 2 replicas run", fix: "`keelson status orders` shows each replica; `keelson logs orders` shows why they stopped" });
    const scaledToZero = status([]);
    expect((await checkReadiness({ manifest, status: scaledToZero }))[0]).toEqual({ check: "readiness", status: "pass", message: "orders: no replica runs (0 desired)" });
  });

  it("skips when the project is not running, and fails when the running control plane's status cannot be read", async () => {
    expect(await checkReadiness({ manifest, status: undefined })).toEqual([{ check: "readiness", status: "skip", message: "the project is not running; `keelson up` starts it" }]);
    expect((await checkReadiness({ manifest, status: undefined, statusError: "401" }))[0]).toMatchObject({ status: "fail", message: "the control plane runs but its status could not be read: 401" });
  });
});
