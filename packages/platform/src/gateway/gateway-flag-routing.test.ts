// Routing by feature flag through a real gateway and node:http upstreams on 127.0.0.1: a
// fractional flag on x-user-id sends each user, consistently, to another service or a version,
// by the flag's weights; a disabled, killed or malformed flag leaves the plain route. Every
// request or upgrade the flag decided is counted once on /metrics, whatever came of it.
import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server } from "node:http";
import { connect } from "node:net";
import type { Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { FlagDefinition, FlagSet, RouteFlag, RoutingTable } from "@keelson/protocol";
import { compileFlagSet } from "@keelson/protocol";
import { makeTempDir } from "#test-support";
import type { Gateway } from "./gateway-server.js";
import { createGateway } from "./gateway-server.js";
import type { GatewayLogger } from "./logger.js";
import { createSeededRandom } from "./random.js";
import { buildRoutingTable } from "./routing-table.js";
import type { RouteInput } from "./routing-table.js";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
let stateDir = "";

beforeEach(async () => {
  const tmp = await makeTempDir("keelson-flag-routing-");
  stateDir = tmp.dir;
  cleanups.push(tmp.cleanup);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function listen(server: Server): Promise<string> {
  server.keepAliveTimeout = 10_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A replica answering the release it runs, once it has read the request; upgrades get a 101 naming it, then the end. */
async function startReplica(release: string): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ release }));
    });
  });
  server.on("upgrade", (_req: IncomingMessage, socket: Socket) => {
    socket.on("error", () => socket.destroy());
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Release: ${release}\r\n\r\n`);
  });
  return listen(server);
}

const warnings: string[] = [];
const log: GatewayLogger = { debug() {}, info() {}, error() {}, warn: (_obj, msg) => void warnings.push(msg ?? "") };

async function startGateway(): Promise<Gateway> {
  const gw = createGateway({ host: "127.0.0.1", port: 0, adminPort: 0, stateDir, processMetrics: false, random: createSeededRandom(7), log });
  await gw.start();
  cleanups.push(() => gw.stop({ drainMs: 100 }));
  return gw;
}

const client = new Agent({ keepAliveTimeout: 10_000, connections: 32 });

async function get(url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(url, { dispatcher: client, headers });
  const text = await res.body.text();
  return res.statusCode === 200 ? (JSON.parse(text) as { release: string }).release : `status ${res.statusCode}`;
}

// The experiment: half the users stay on the plain route (control, not listed), 20% go to the
// checkout's canary version, 30% to the checkout-v2 service.
const WEIGHTS = { control: 50, canary: 20, treatment: 30 };
const experiment: FlagDefinition = {
  state: "ENABLED",
  variants: { control: "control", canary: "canary", treatment: "treatment" },
  defaultVariant: "control",
  targeting: { fractional: Object.entries(WEIGHTS) },
};
const routeFlag: RouteFlag = {
  key: "checkout-experiment",
  context: { targetingKey: { header: "x-user-id" } },
  variants: { canary: { version: "canary" }, treatment: { service: "checkout-v2" } },
};
/** Where each variant's requests land; control is the plain route (the split sends everything to stable). */
const LANDS = { control: "r-stable", canary: "r-canary", treatment: "r-v2" } as const;

let version = 0;
async function endpoints() {
  return [
    { service: "checkout", replicaId: "checkout-1", release: "r-stable", url: await startReplica("r-stable") },
    { service: "checkout", replicaId: "checkout-2", release: "r-canary", url: await startReplica("r-canary") },
    { service: "checkout-v2", replicaId: "checkout-v2-1", release: "r-v2", url: await startReplica("r-v2") },
  ];
}

function table(eps: Awaited<ReturnType<typeof endpoints>>, flags: Record<string, unknown>, options: { flag?: RouteFlag; drop?: string; route?: Partial<RouteInput> } = {}): RoutingTable {
  const built = buildRoutingTable({
    project: "shop",
    version: ++version,
    services: [
      {
        name: "checkout",
        routes: [{ path: "/", stripPrefix: false, flag: options.flag ?? routeFlag, ...options.route }],
        split: { sticky: false, weights: [{ release: "r-stable", weight: 100, label: "stable" }, { release: "r-canary", weight: 0, label: "canary" }] },
      },
      { name: "checkout-v2", routes: [] },
    ],
    endpoints: eps.filter((e) => e.service !== options.drop),
    flags: { revision: version, set: { flags: {} } },
  });
  // The definitions as a control plane would send them, malformed ones included.
  return { ...built, flags: { revision: version, set: { flags } } };
}

const users = Array.from({ length: 400 }, (_, i) => `user-${i}`);

async function landings(gw: Gateway, ids: readonly string[] = users): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      out.set(id, await get(`${gw.url}/cart`, { "x-user-id": id }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return out;
}

/** Sends a WebSocket upgrade through the gateway: the answer's status and the release that answered (`101 r-stable`). */
async function upgrade(gw: Gateway, headers: Record<string, string>): Promise<string> {
  const socket = connect(Number(new URL(gw.url).port), "127.0.0.1");
  socket.on("error", () => undefined);
  let extra = "";
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`;
  socket.write(`GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${extra}\r\n`);
  let head = "";
  try {
    for await (const chunk of socket) {
      head += (chunk as Buffer).toString("latin1");
      if (head.includes("\r\n\r\n")) break;
    }
  } finally {
    socket.destroy();
  }
  return `${/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? "?"} ${/\r\nx-release: ([^\r]+)/i.exec(head)?.[1] ?? "-"}`;
}

/** The flag's requests on the gateway's /metrics, as "variant outcome" → count. */
async function flagRequests(gw: Gateway): Promise<Record<string, number>> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^keelson_gateway_flag_requests_total\{route="\/",flag="checkout-experiment",variant="([^"]+)",outcome="([^"]+)"\} (\S+)$/gm)) out[`${m[1]} ${m[2]}`] = Number(m[3]);
  return out;
}

/** How many requests the flag timed under a variant (its duration histogram's count; 0 when absent). */
async function timed(gw: Gateway, variant: string): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const m = new RegExp(`^keelson_gateway_flag_request_duration_seconds_count\\{route="/",flag="checkout-experiment",variant="${variant}"\\} (\\S+)$`, "m").exec(text);
  return m === null ? 0 : Number(m[1]);
}

const assignment = compileFlagSet({ flags: { "checkout-experiment": experiment } } as FlagSet);
/** The variant the experiment gives a user. */
const variantOf = (id: string) => assignment.evaluate("checkout-experiment", { targetingKey: id }).variant as keyof typeof LANDS;
/** How many of the users get each variant. */
function variantsOf(ids: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[variantOf(id)] = (out[variantOf(id)] ?? 0) + 1;
  return out;
}

function counts(landed: Map<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const release of landed.values()) out[release] = (out[release] ?? 0) + 1;
  return out;
}

describe("gateway routing by flag", () => {
  it("sends each user, consistently, to the service or version of their variant, by the flag's weights", { timeout: 30_000 }, async () => {
    const gw = await startGateway();
    gw.setTable(table(await endpoints(), { "checkout-experiment": experiment }));

    // Every user lands where the flag engine says their variant goes.
    const engine = compileFlagSet({ flags: { "checkout-experiment": experiment } } as FlagSet);
    const expected = new Map(users.map((id) => [id, LANDS[engine.evaluate("checkout-experiment", { targetingKey: id }).variant as keyof typeof LANDS]]));
    const first = await landings(gw);
    expect(first).toEqual(expected);
    // ...and again on their next requests.
    expect(await landings(gw)).toEqual(first);

    const share = counts(first);
    expect(Math.abs(share["r-stable"]! / users.length - 0.5)).toBeLessThan(0.08);
    expect(Math.abs(share["r-canary"]! / users.length - 0.2)).toBeLessThan(0.07);
    expect(Math.abs(share["r-v2"]! / users.length - 0.3)).toBeLessThan(0.07);

    // Without the header there is no targeting key: no split, the plain route.
    expect(await get(`${gw.url}/cart`)).toBe("r-stable");
    // An explicit version pin still wins over the flag's version.
    const canaryUser = users.find((id) => first.get(id) === "r-canary")!;
    expect(await get(`${gw.url}/cart`, { "x-user-id": canaryUser, "x-keelson-version": "stable" })).toBe("r-stable");

    const metrics = await gw.metrics.registry.getSingleMetricAsString("keelson_gateway_flag_routes_total");
    expect(metrics).toContain(`keelson_gateway_flag_routes_total{route="/",flag="checkout-experiment",variant="treatment"} ${2 * share["r-v2"]!}`);
    expect(metrics).not.toContain('variant="control"');
  });

  it("counts every variant's answers by outcome, and their durations, on /metrics: the plain route's variant too", { timeout: 30_000 }, async () => {
    const gw = await startGateway();
    const eps = await endpoints();
    // checkout-v2 fails every fourth request (not enough to open its circuit breaker).
    let calls = 0;
    const failing = await listen(
      createServer((req, res) => {
        req.resume();
        const fail = calls++ % 4 === 0;
        res.writeHead(fail ? 500 : 200, { "content-type": "application/json" });
        res.end(JSON.stringify({ release: "r-v2" }));
      }),
    );
    gw.setTable(table(eps.map((e) => (e.service === "checkout-v2" ? { ...e, url: failing } : e)), { "checkout-experiment": experiment }));
    const sample = users.slice(0, 200);
    const landed = await landings(gw, sample);
    const engine = compileFlagSet({ flags: { "checkout-experiment": experiment } } as FlagSet);
    const expected: Record<string, number> = {};
    for (const id of sample) {
      const v = engine.evaluate("checkout-experiment", { targetingKey: id }).variant!;
      expected[v] = (expected[v] ?? 0) + 1;
    }
    const failed = [...landed.values()].filter((r) => r === "status 500").length;
    expect(failed).toBe(Math.ceil(expected.treatment! / 4));
    // Without a user the flag gives its default variant, and the request counts there.
    expect(await get(`${gw.url}/cart`)).toBe("r-stable");

    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const series = (name: string, labels: string) => Number(new RegExp(`^${name}\\{${labels.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\} (\\S+)$`, "m").exec(text)?.[1]);
    const at = (variant: string, outcome: string) => series("keelson_gateway_flag_requests_total", `route="/",flag="checkout-experiment",variant="${variant}",outcome="${outcome}"`);
    expect(at("control", "ok")).toBe(expected.control! + 1);
    expect(at("canary", "ok")).toBe(expected.canary);
    expect(at("treatment", "error")).toBe(failed);
    expect(at("treatment", "ok")).toBe(expected.treatment! - failed);
    expect(text).not.toMatch(/keelson_gateway_flag_requests_total\{[^}]*variant="control",outcome="error"/);
    const duration = (variant: string, part: string) => series(`keelson_gateway_flag_request_duration_seconds_${part}`, `route="/",flag="checkout-experiment",variant="${variant}"`);
    for (const v of ["control", "canary", "treatment"]) {
      expect(duration(v, "count")).toBe(expected[v]! + (v === "control" ? 1 : 0));
      expect(duration(v, "sum")).toBeGreaterThan(0);
    }
    // The same buckets as the gateway's request durations.
    const bounds = (name: string) => [...new Set([...text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"\\}`, "gm"))].map((m) => m[1]))];
    expect(bounds("keelson_gateway_flag_request_duration_seconds")).toEqual(bounds("keelson_gateway_request_duration_seconds"));
    expect(bounds("keelson_gateway_flag_request_duration_seconds")).toHaveLength(15);
    expect(series("keelson_gateway_flag_request_duration_seconds_bucket", 'route="/",flag="checkout-experiment",variant="treatment",le="+Inf"')).toBe(expected.treatment);
  });

  it("routes everyone the plain way when the flag is disabled or killed to a variant the route does not list, and back when enabled", { timeout: 30_000 }, async () => {
    const gw = await startGateway();
    const eps = await endpoints();
    const sample = users.slice(0, 100);
    gw.setTable(table(eps, { "checkout-experiment": { ...experiment, state: "DISABLED", safeVariant: "treatment" } }));
    expect(counts(await landings(gw, sample))).toEqual({ "r-stable": 100 });

    // What `keelson flags kill` makes of it: no targeting, the safe variant for everyone.
    const { targeting: _targeting, ...killed } = experiment;
    gw.setTable(table(eps, { "checkout-experiment": { ...killed, defaultVariant: "control" } }));
    expect(counts(await landings(gw, sample))).toEqual({ "r-stable": 100 });

    gw.setTable(table(eps, { "checkout-experiment": experiment }));
    expect(Object.keys(counts(await landings(gw, sample))).sort()).toEqual(["r-canary", "r-stable", "r-v2"]);
  });

  it("routes the plain way when the variant's service has no ready replica, counting each such request (and upgrade) as the variant's error", async () => {
    const gw = await startGateway();
    const eps = await endpoints();
    gw.setTable(table(eps, { "checkout-experiment": experiment }, { drop: "checkout-v2" }));
    const sample = users.slice(0, 100);
    const landed = await landings(gw, sample);
    expect(counts(landed)["r-v2"]).toBeUndefined();
    expect(counts(landed)["r-stable"]! + counts(landed)["r-canary"]!).toBe(100);
    // The treatment's users were served by the plain route.
    const treated = sample.filter((id) => variantOf(id) === "treatment");
    expect(treated.length).toBeGreaterThan(10);
    expect(new Set(treated.map((id) => landed.get(id)))).toEqual(new Set(["r-stable"]));
    expect(await upgrade(gw, { "x-user-id": treated[0]! })).toBe("101 r-stable");

    const expected = variantsOf(sample);
    expect(await flagRequests(gw)).toEqual({ "control ok": expected.control, "canary ok": expected.canary, "treatment error": expected.treatment! + 1 });
    // Not timed: the plain route's answer says nothing of the treatment.
    expect(await timed(gw, "treatment")).toBe(0);
    expect(await timed(gw, "control")).toBe(expected.control);
  });

  it("counts a disabled flag's requests and upgrades once each (unassigned), so a routing kill switch left off is still in use", { timeout: 30_000 }, async () => {
    const gw = await startGateway();
    gw.setTable(table(await endpoints(), { "checkout-experiment": { ...experiment, state: "DISABLED" } }));
    expect(counts(await landings(gw, users.slice(0, 20)))).toEqual({ "r-stable": 20 });
    for (const id of users.slice(0, 3)) expect(await upgrade(gw, { "x-user-id": id })).toBe("101 r-stable");
    expect(await flagRequests(gw)).toEqual({ "none unassigned": 23 });
    expect(await timed(gw, "none")).toBe(0);
  });

  it("counts a flag that routes only WebSocket upgrades, each under its variant, untimed", { timeout: 30_000 }, async () => {
    const gw = await startGateway();
    gw.setTable(table(await endpoints(), { "checkout-experiment": experiment }));
    const sample = users.slice(0, 30);
    for (const id of sample) expect(await upgrade(gw, { "x-user-id": id })).toBe(`101 ${LANDS[variantOf(id)]}`);
    const expected = variantsOf(sample);
    expect(await flagRequests(gw)).toEqual({ "control ok": expected.control, "canary ok": expected.canary, "treatment ok": expected.treatment });
    for (const v of ["control", "canary", "treatment"]) expect(await timed(gw, v)).toBe(0);
  });

  it("counts the gateway's own 429 and 413 as rejected, not as the variant's answers, and does not time them", { timeout: 30_000 }, async () => {
    const eps = await endpoints();
    const user = users.find((id) => variantOf(id) === "control")!;

    // A route limited to a burst of 3: the requests past it are refused with 429.
    const limited = await startGateway();
    limited.setTable(table(eps, { "checkout-experiment": experiment }, { route: { rateLimit: { rps: 1, burst: 3 } } }));
    const answers: string[] = [];
    for (let i = 0; i < 8; i++) answers.push(await get(`${limited.url}/cart`, { "x-user-id": user }));
    const served = answers.filter((a) => a === "r-stable").length;
    const refused = answers.filter((a) => a === "status 429").length;
    expect(served + refused).toBe(8);
    expect(refused).toBeGreaterThan(0);
    expect(await flagRequests(limited)).toEqual({ "control ok": served, "control rejected": refused });
    expect(await timed(limited, "control")).toBe(served);

    // A route taking bodies of at most 1 KiB: over it by Content-Length, or chunked past it mid-stream.
    const small = await startGateway();
    small.setTable(table(eps, { "checkout-experiment": experiment }, { route: { maxBodyBytes: 1_024 } }));
    const post = async (size: number) => (await request(`${small.url}/cart`, { dispatcher: client, method: "POST", headers: { "x-user-id": user }, body: Buffer.alloc(size, 1) })).statusCode;
    expect(await post(2_000)).toBe(413);
    expect(await post(1_000)).toBe(200);
    const chunked = connect(Number(new URL(small.url).port), "127.0.0.1");
    chunked.on("error", () => undefined);
    const reply: Buffer[] = [];
    chunked.on("data", (c: Buffer) => reply.push(c));
    chunked.write(`POST /cart HTTP/1.1\r\nHost: x\r\nx-user-id: ${user}\r\nTransfer-Encoding: chunked\r\n\r\n`);
    for (let i = 0; i < 8; i++) chunked.write(`200\r\n${"a".repeat(512)}\r\n`);
    await once(chunked, "close");
    expect(Buffer.concat(reply).toString("latin1")).toMatch(/^HTTP\/1\.1 413/);
    expect(await flagRequests(small)).toEqual({ "control ok": 1, "control rejected": 2 });
    expect(await timed(small, "control")).toBe(1);
  });

  it("serves a table whose flag is malformed, or missing, with the plain route, and keeps routing by a good flag beside it", { timeout: 30_000 }, async () => {
    const gw = await startGateway();
    const eps = await endpoints();
    const sample = users.slice(0, 100);
    warnings.length = 0;
    const malformed = { state: "ENABLED", variants: { control: "control" }, defaultVariant: "treatment", targeting: { fractional: "yes" } };
    gw.setTable(table(eps, { "checkout-experiment": malformed, other: experiment }));
    expect(gw.table()?.version).toBe(version);
    expect(counts(await landings(gw, sample))).toEqual({ "r-stable": 100 });
    expect(warnings).toContain("ignoring flags of the routing table that are not valid; routes naming them route as without a flag");

    // The good flag beside it still routes.
    gw.setTable(table(eps, { "checkout-experiment": malformed, other: experiment }, { flag: { ...routeFlag, key: "other" } }));
    expect(Object.keys(counts(await landings(gw, sample))).sort()).toEqual(["r-canary", "r-stable", "r-v2"]);

    // A flag the table does not carry at all, and a set that is not even an object of flags.
    gw.setTable(table(eps, {}));
    expect(counts(await landings(gw, sample))).toEqual({ "r-stable": 100 });
    gw.setTable({ ...table(eps, {}), flags: { revision: 1, set: { flags: { "checkout-experiment": "not a flag" } } } });
    expect(counts(await landings(gw, sample))).toEqual({ "r-stable": 100 });
  });
});
