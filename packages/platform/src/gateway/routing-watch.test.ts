// Tests for the routing watch: the SSE parser, the saved table, and a gateway following a tiny
// test control plane (node:http) that sends tables, sends junk, dies and comes back.
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server, ServerResponse } from "node:http";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { RoutingTable } from "@keelson/protocol";
import { freePort, makeTempDir, waitFor } from "#test-support";
import type { Gateway, GatewayOptions } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";
import type { GatewayLogger } from "./logger.js";
import { buildRoutingTable } from "./routing-table.js";
import { ROUTING_FILE, createSseParser, loadRoutingTable, saveRoutingTable } from "./routing-watch.js";

describe("createSseParser", () => {
  const parseAll = (pieces: string[]) => {
    const events: Array<[string, string]> = [];
    const parser = createSseParser((type, data) => events.push([type, data]));
    for (const p of pieces) parser.push(p);
    return events;
  };
  const stream = ": heartbeat\n\nevent: routing\ndata: {\"a\":\ndata: 1}\n\ndata: plain\r\n\r\nevent: empty\n\nevent:x\rdata:no-space\r\r";

  it("parses events, joins data lines and skips comments and data-less events", () => {
    expect(parseAll([stream])).toEqual([
      ["routing", '{"a":\n1}'],
      ["message", "plain"],
      ["x", "no-space"],
    ]);
  });

  it("gives the same events however the text is cut, even between CR and LF", () => {
    const whole = parseAll([stream]);
    expect(parseAll([...stream])).toEqual(whole);
    for (let cut = 1; cut < stream.length; cut++) expect(parseAll([stream.slice(0, cut), stream.slice(cut)])).toEqual(whole);
  });
});

// --- fixtures ---

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-watch-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

let version = 0;
function tableTo(url: string): RoutingTable {
  return buildRoutingTable({
    project: "test",
    version: ++version,
    services: [{ name: "web", routes: [{ path: "/", stripPrefix: false }] }],
    endpoints: [{ service: "web", replicaId: `web-${version}`, url, release: "r1" }],
  });
}

/** An upstream that answers with its name. */
async function startUpstream(name: string): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(name);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  const addr = server.address();
  return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
}

/** A stand-in control plane: sends its current table to each watcher, then whatever the test says. */
async function startControlPlane(port: number, current: RoutingTable) {
  const watchers = new Set<ServerResponse>();
  let connections = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== "/v1/watch/routing") {
      res.writeHead(404).end();
      return;
    }
    connections++;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
    res.write(": welcome\n\n");
    res.write(`event: routing\ndata: ${JSON.stringify(current)}\n\n`);
    watchers.add(res);
    res.on("close", () => watchers.delete(res));
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  const die = () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
  cleanups.push(() => (server.listening ? die() : undefined));
  return {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    get watchers() {
      return watchers.size;
    },
    send(text: string) {
      for (const w of watchers) w.write(text);
    },
    publish(table: RoutingTable) {
      current = table;
      this.send(`event: routing\ndata: ${JSON.stringify(table)}\n\n`);
    },
    die,
  };
}

function recordingLogger(): GatewayLogger & { lines: Array<{ level: string; msg: string }> } {
  const lines: Array<{ level: string; msg: string }> = [];
  const at = (level: string) => (_obj: object, msg?: string) => void lines.push({ level, msg: msg ?? "" });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

async function startGateway(options: Partial<GatewayOptions> = {}): Promise<Gateway> {
  const gw = createGateway({
    host: "127.0.0.1",
    port: 0,
    adminPort: 0,
    stateDir,
    processMetrics: false,
    watch: { initialBackoffMs: 20, maxBackoffMs: 100 },
    ...options,
  });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

const client = new Agent({ keepAliveTimeout: 1_000 });
async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await request(url, { dispatcher: client });
  return { status: res.statusCode, text: await res.body.text() };
}

async function savedVersion(): Promise<number | undefined> {
  try {
    return (JSON.parse(await readFile(join(stateDir, ROUTING_FILE), "utf8")) as RoutingTable).version;
  } catch {
    return undefined;
  }
}

// --- tests ---

describe("saved routing table", () => {
  it("round-trips through routing.json", async () => {
    const t = tableTo("http://127.0.0.1:1");
    await saveRoutingTable(stateDir, t);
    expect(await loadRoutingTable(stateDir)).toEqual(t);
  });

  it("ignores a missing or corrupt file, logging the corrupt one", async () => {
    const log = recordingLogger();
    expect(await loadRoutingTable(stateDir, log)).toBeUndefined();
    expect(log.lines).toHaveLength(0);
    await writeFile(join(stateDir, ROUTING_FILE), '{"version": "seven"');
    expect(await loadRoutingTable(stateDir, log)).toBeUndefined();
    expect(log.lines.map((l) => l.level)).toEqual(["warn"]);
  });
});

describe("following the control plane", () => {
  it("applies each table, skips invalid ones, survives the control plane dying and reconnects when it is back", async () => {
    const a = await startUpstream("a");
    const b = await startUpstream("b");
    const port = await freePort();
    const v1 = tableTo(a);
    const cp = await startControlPlane(port, v1);
    const log = recordingLogger();
    const gw = await startGateway({ controlPlaneUrl: cp.url, log });

    await waitFor(() => gw.table()?.version === v1.version, { what: "the first table" });
    expect((await get(`${gw.url}/`)).text).toBe("a");

    const v2 = tableTo(b);
    cp.publish(v2);
    await waitFor(() => gw.table()?.version === v2.version, { what: "the second table" });
    expect((await get(`${gw.url}/`)).text).toBe("b");
    await waitFor(async () => (await savedVersion()) === v2.version, { what: "the second table on disk" });

    // Junk from the control plane: not JSON, then JSON that is not a table. Both are skipped.
    cp.send(": heartbeat\n\n");
    cp.send("event: routing\ndata: {not json\n\n");
    cp.send(`event: routing\ndata: ${JSON.stringify({ ...v2, version: -1, routes: "all" })}\n\n`);
    await waitFor(() => log.lines.filter((l) => l.msg.startsWith("ignoring an invalid routing table")).length === 2, { what: "two invalid tables logged" });
    expect(gw.table()).toEqual(v2);
    expect((await get(`${gw.url}/`)).text).toBe("b");
    expect(await savedVersion()).toBe(v2.version);

    // The control plane dies: the gateway keeps serving the last table.
    await cp.die();
    await waitFor(async () => (await get(`${gw.adminUrl}/readyz`)).text.includes('"controlPlane":"disconnected"'), { what: "the watch to notice" });
    for (let i = 0; i < 3; i++) expect(await get(`${gw.url}/`)).toEqual({ status: 200, text: "b" });
    expect((await get(`${gw.adminUrl}/metrics`)).text).toContain("keelson_gateway_control_plane_connected 0");

    // It comes back (same port) with a newer table: the gateway reconnects and applies it.
    const v3 = tableTo(a);
    const cp2 = await startControlPlane(port, v3);
    await waitFor(() => gw.table()?.version === v3.version, { what: "the table after reconnecting" });
    expect(cp2.connections).toBe(1);
    expect((await get(`${gw.url}/`)).text).toBe("a");
    expect((await get(`${gw.adminUrl}/readyz`)).text).toContain('"controlPlane":"connected"');
    await waitFor(async () => (await savedVersion()) === v3.version, { what: "the third table on disk" });
  });

  it("moves to the next control-plane instance of its list when the one it follows dies", async () => {
    const a = await startUpstream("a");
    const b = await startUpstream("b");
    const dead = `http://127.0.0.1:${await freePort()}`;
    const first = await startControlPlane(await freePort(), tableTo(a));
    const second = await startControlPlane(await freePort(), tableTo(b));
    // The first URL answers nothing at all: the watch goes on to the next.
    const gw = await startGateway({ controlPlaneUrl: `${dead}, ${first.url}/,${second.url}` });
    await waitFor(() => first.watchers === 1, { what: "the watch on the first live instance" });
    expect((await get(`${gw.url}/`)).text).toBe("a");
    await first.die();
    await waitFor(() => second.watchers === 1, { what: "the watch on the second instance" });
    await waitFor(async () => (await get(`${gw.url}/`)).text === "b", { what: "the second instance's table" });
  });

  it("applies whatever the control plane sends, even an older version after it restarts", async () => {
    const a = await startUpstream("a");
    const b = await startUpstream("b");
    const newer = tableTo(a);
    const older = { ...tableTo(b), version: newer.version - 5 };
    const cp = await startControlPlane(await freePort(), newer);
    const gw = await startGateway({ controlPlaneUrl: cp.url });
    await waitFor(() => gw.table()?.version === newer.version, { what: "the first table" });
    cp.publish(older);
    await waitFor(() => gw.table()?.version === older.version, { what: "the older table" });
    expect((await get(`${gw.url}/`)).text).toBe("b");
  });

  it("serves the saved table at once in a new gateway while the control plane is down", async () => {
    const a = await startUpstream("a");
    const cp = await startControlPlane(await freePort(), tableTo(a));
    const first = await startGateway({ controlPlaneUrl: cp.url });
    await waitFor(async () => (await savedVersion()) === version, { what: "the table on disk" });
    await first.stop();
    await cp.die();

    const log = recordingLogger();
    const second = await startGateway({ controlPlaneUrl: cp.url, log });
    // No waiting: the saved table is loaded before the listener opens.
    expect(second.table()?.version).toBe(version);
    expect((await get(`${second.adminUrl}/readyz`)).status).toBe(200);
    expect(await get(`${second.url}/anything`)).toEqual({ status: 200, text: "a" });
    await waitFor(() => log.lines.some((l) => l.msg.startsWith("routing stream unavailable")), { what: "the failed connection logged" });

    const third = await startGateway();
    expect(third.table()?.version).toBe(version);
    expect((await get(`${third.url}/`)).text).toBe("a");
  });
});
