import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { StatusReport } from "@keelson/protocol";
import { freePort } from "#test-support";
import { parseManifest } from "../manifest/index.js";
import { checkPorts, manifestPorts, probePort } from "./ports.js";

const servers: Server[] = [];
async function listen(port: number, host = "127.0.0.1"): Promise<void> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function manifestWith(ports: { cp: number; gw: number; admin: number; mesh: number; orders: number }, host = "127.0.0.1") {
  const text = [
    "project: shop",
    `controlPlane: { host: ${host}, port: ${ports.cp} }`,
    `gateway: { host: 127.0.0.1, port: ${ports.gw}, adminPort: ${ports.admin}, meshPort: ${ports.mesh} }`,
    "services:",
    `  orders: { owner: web, path: orders, start: node main.js, port: ${ports.orders}, replicas: 2 }`,
    "  web: { owner: web, path: web, start: node main.js }",
    "",
  ].join("\n");
  return parseManifest(text, "keelson.yaml", { checkPaths: false }).manifest;
}

/** Free ports for everything, the service's two in a row. */
async function freePorts() {
  const others = { cp: await freePort(), gw: await freePort(), admin: await freePort(), mesh: await freePort() };
  // orders + 1 is the second replica's: free, and none of the others (freePort hands out ports in order).
  let orders = await freePort();
  while (Object.values(others).includes(orders + 1) || !((await probePort("127.0.0.1", orders + 1)) === "free")) orders = await freePort();
  return { ...others, orders };
}

const status = (instances: Array<{ port: number; pid: number }>): StatusReport => ({
  project: "shop",
  controlPlane: { url: "http://127.0.0.1:1", pid: 1, version: "0", startedAt: "" },
  gateway: { url: "http://127.0.0.1:2" },
  services: [
    {
      name: "orders",
      owner: "web",
      release: "r-1",
      replicas: { desired: instances.length, ready: instances.length },
      endpoints: [],
      routes: [],
      instances: instances.map((i, index) => ({ id: `orders-${index}`, service: "orders", release: "r-1", index, state: "ready", pid: i.pid, port: i.port, url: `http://127.0.0.1:${i.port}`, restarts: 0, startedAt: undefined, lastExit: undefined })),
    },
  ],
});

describe("manifestPorts", () => {
  it("lists the control plane's and gateway's ports and every port of a service with a fixed port", async () => {
    const m = await manifestWith({ cp: 7070, gw: 8080, admin: 8081, mesh: 8082, orders: 9000 });
    expect(manifestPorts(m).map((p) => `${p.port} ${p.label}`)).toEqual(["7070 controlPlane.port", "8080 gateway.port", "8081 gateway.adminPort", "8082 gateway.meshPort", "9000 services.orders.port", "9001 services.orders.port + 1"]);
  });
});

describe("checkPorts", () => {
  it("passes when every port is free", async () => {
    const m = await manifestWith(await freePorts());
    expect(await checkPorts({ manifest: m })).toEqual([{ check: "ports", status: "pass", message: "the manifest's 6 ports are free" }]);
  });

  it("fails a port another process holds, naming the process and the field to change", async () => {
    const ports = await freePorts();
    await listen(ports.gw);
    await listen(ports.orders + 1);
    const results = await checkPorts({ manifest: await manifestWith(ports) });
    expect(results.map((r) => r.status)).toEqual(["fail", "fail"]);
    // On Linux /proc names the holder: this test's own process.
    const who = process.platform === "linux" ? `pid ${process.pid} (` : "another process";
    expect(results[0]?.message).toContain(`port ${ports.gw} (gateway.port) is in use by ${who}`);
    expect(results[0]?.fix).toBe("stop that process, or set gateway.port in keelson.yaml to a free port");
    expect(results[1]?.message).toContain(`port ${ports.orders + 1} (services.orders.port + 1) is in use by`);
    expect(results[1]?.fix).toBe(`stop that process, or move services.orders.port (the service needs ports ${ports.orders}-${ports.orders + 1})`);
  });

  it("passes ports held by this project's own processes, found by pid or by what the project runs", async () => {
    const ports = await freePorts();
    await listen(ports.gw);
    await listen(ports.orders);
    const manifest = await manifestWith(ports);
    // The holder's pid is the project's gateway and replica (here: this process).
    const byPid = await checkPorts({ manifest, running: { gateway: { pid: process.pid, url: `http://127.0.0.1:${ports.gw}` }, status: status([{ port: ports.orders, pid: process.pid }]) } });
    expect(byPid).toEqual([{ check: "ports", status: "pass", message: `4 of the manifest's 6 ports are free, 2 held by this project's gateway, service orders` }]);
    // Without /proc (another OS): the project's records decide.
    const unknown = async () => new Map();
    const byRecords = await checkPorts({ manifest, findHolders: unknown, running: { gateway: { pid: 999_999, url: `http://127.0.0.1:${ports.gw}` }, status: status([{ port: ports.orders, pid: 999_998 }]) } });
    expect(byRecords[0]?.status).toBe("pass");
    const notOurs = await checkPorts({ manifest, findHolders: unknown, running: { status: status([{ port: ports.orders + 1, pid: 999_998 }]) } });
    expect(notOurs.map((r) => r.message)).toEqual([`port ${ports.gw} (gateway.port) is in use by another process`, `port ${ports.orders} (services.orders.port) is in use by another process`]);
  });

  it("fails a host that is not an address of this machine", async () => {
    const results = await checkPorts({ manifest: await manifestWith(await freePorts(), "192.0.2.1") });
    expect(results).toEqual([expect.objectContaining({ status: "fail", message: expect.stringContaining("192.0.2.1 is not an address of this machine"), fix: expect.stringContaining("controlPlane.host") })]);
  });
});
