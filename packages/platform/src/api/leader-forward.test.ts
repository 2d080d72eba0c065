// A follower's forwarding of API requests to the leader, with real HTTP servers on 127.0.0.1.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import type { LeaderRecord } from "../store/index.js";
import { FORWARDED_HEADER, createLeaderForwarder } from "./leader-forward.js";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => (s.closeAllConnections(), s.close(r)));
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
}

/** The leader: echoes what reached it, streaming the answer in two NDJSON lines. */
async function startLeader(): Promise<string> {
  return listen(
    createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        res.writeHead(201, { "content-type": "application/x-ndjson", "x-leader": "yes" });
        res.write(`${JSON.stringify({ method: req.method, url: req.url, authorization: req.headers.authorization, forwardedBy: req.headers[FORWARDED_HEADER], custom: req.headers["x-custom"], body })}\n`);
        setTimeout(() => res.end(`${JSON.stringify({ type: "done" })}\n`), 20);
      });
    }),
  );
}

async function startFollower(options: { following: boolean; leader: LeaderRecord | undefined }): Promise<string> {
  const forwarder = createLeaderForwarder({ self: "follower-1", following: () => options.following, leader: async () => options.leader, log: { warn() {} } });
  return listen(
    createServer((req, res) => {
      if (!forwarder.forward(req, res)) res.end("answered here");
    }),
  );
}

const record = (url: string, id = "leader-1"): LeaderRecord => ({ id, url, term: 3, since: "2026-11-27T10:00:00.000Z" });

describe("leader forwarding", () => {
  it("passes a request to the leader as it is, and streams the answer back", async () => {
    const leader = await startLeader();
    const follower = await startFollower({ following: true, leader: record(leader) });
    const res = await fetch(`${follower}/v1/apply?x=1`, { method: "POST", headers: { authorization: "Bearer ks_abc", "x-custom": "kept", connection: "keep-alive" }, body: '{"wait":true}' });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-leader")).toBe("yes");
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { method: "POST", url: "/v1/apply?x=1", authorization: "Bearer ks_abc", forwardedBy: "follower-1", custom: "kept", body: '{"wait":true}' },
      { type: "done" },
    ]);
  });

  it("answers health, readiness, metrics and the routing table itself; everything when it leads", async () => {
    const leader = await startLeader();
    const follower = await startFollower({ following: true, leader: record(leader) });
    for (const path of ["/healthz", "/readyz", "/metrics", "/v1/routing", "/v1/watch/routing"]) expect(await (await fetch(`${follower}${path}`)).text()).toBe("answered here");
    const leading = await startFollower({ following: false, leader: record(leader) });
    expect(await (await fetch(`${leading}/v1/status`)).text()).toBe("answered here");
  });

  it("answers 503 KEELSON_ERR_NO_LEADER with retry-after when no leader is known, it is itself, the leader is down, or the request was forwarded already", async () => {
    const leader = await startLeader();
    const down = `http://127.0.0.1:${new URL(await listen(createServer())).port}`;
    await new Promise((r) => (servers.pop()!.close(r)));
    const cases: Array<{ leader: LeaderRecord | undefined; headers?: Record<string, string>; message: RegExp }> = [
      { leader: undefined, message: /no control-plane instance leads right now/ },
      { leader: record(leader, "follower-1"), message: /no control-plane instance leads right now/ },
      { leader: record(down), message: new RegExp(`the leading control plane \\(${down.replace(/[.]/g, "\\.")}, term 3\\) did not answer`) },
      { leader: record(leader), headers: { [FORWARDED_HEADER]: "follower-2" }, message: /forwarded to an instance that does not lead either/ },
    ];
    for (const c of cases) {
      const follower = await startFollower({ following: true, leader: c.leader });
      const res = await fetch(`${follower}/v1/status`, { headers: c.headers ?? {} });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("KEELSON_ERR_NO_LEADER");
      expect(body.error.message).toMatch(c.message);
    }
  });
});
