// Benchmark (issue #8): what zero-trust costs in the gateway.
//  1. Throughput of service-to-service calls through the mesh listener with mTLS and the call
//     policy, against the same gateway's plain public route to the same upstream, side by side in
//     one run (rounds alternate plain / token / mTLS so noise from other processes hits all three).
//     Two figures: requests per second as this machine's client sees them (the client shares the
//     2 cores and pays its own half of TLS), and the gateway's capacity: requests per CPU-second of
//     the gateway process alone (its own user + system time per phase). Target: the gateway's
//     capacity with mTLS + policy at least 0.7x plain.
//  2. Cost of the per-request checks in ns: the call policy (target < 2 us), the identity-token
//     cache lookup, the API-key hash; beside a reference (a Map lookup) measured in the same run.
// Usage: node bench/mesh-security.mjs [--seconds 3] [--rounds 3] [--connections 16]   (after `npm run build`)
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { Agent, request } from "undici";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const SECONDS = Number(args.seconds ?? 3);
const ROUNDS = Number(args.rounds ?? 3);
const CONNECTIONS = Number(args.connections ?? 16);
const MAX_REQUESTS = 2_000_000;
const dist = new URL("../packages/platform/dist/", import.meta.url);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (args.child !== undefined) await child(args.child);
else await main();

/** The gateway process: an upstream, and two gateways (mesh over plain HTTP with tokens, mesh over mTLS). */
async function child(dir) {
  const { createGateway, buildRoutingTable } = await import(new URL("gateway/index.js", dist));
  const { loadOrCreateCa } = await import(new URL("security/index.js", dist));
  const ca = await loadOrCreateCa({ dir: join(dir, "ca"), trustDomain: "bench" });
  const upstreamUrl = args.upstream;
  const table = (mtls) =>
    buildRoutingTable({
      project: "bench",
      version: 1,
      identity: { trustDomain: "bench", jwks: ca.jwks(), caPem: ca.caPem(), mtls },
      services: [
        { name: "api", routes: [{ path: "/x", stripPrefix: false }], callers: [{ service: "web", paths: ["/x"], methods: ["GET"] }, ...Array.from({ length: 10 }, (_, i) => ({ service: `other-${i}` }))] },
      ],
      endpoints: [{ service: "api", replicaId: "api-1", url: upstreamUrl, release: "r1" }],
    });
  const base = { host: "127.0.0.1", port: 0, adminPort: 0, meshPort: 0, processMetrics: false };
  const plain = createGateway({ ...base, stateDir: join(dir, "gw-plain") });
  const tls = createGateway({ ...base, stateDir: join(dir, "gw-tls"), meshTls: { dir: join(dir, "identity", "keelson-gateway") } });
  await plain.start();
  await tls.start();
  plain.setTable(table(false));
  tls.setTable(table(true));
  // The reference: Node's own http and https servers (client certificates required), answering
  // the same body directly, in the same process: what TLS costs a Node server with no gateway.
  const { readFile: read } = await import("node:fs/promises");
  const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => read(join(dir, "identity", "keelson-gateway", f), "utf8")));
  const answer = (_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": 11 });
    res.end('{"ok":true}');
  };
  const bare = createServer(answer);
  const { createServer: createHttps } = await import("node:https");
  const bareTls = createHttps({ cert, key, ca: caPem, requestCert: true, rejectUnauthorized: true }, answer);
  await new Promise((r) => bare.listen(0, "127.0.0.1", r));
  await new Promise((r) => bareTls.listen(0, "127.0.0.1", r));
  // The parent asks for this process's CPU time around each phase.
  process.on("message", () => process.send(process.cpuUsage()));
  console.log(JSON.stringify({ public: plain.url, mesh: plain.meshUrl, meshTls: tls.meshUrl, bare: `http://127.0.0.1:${bare.address().port}`, bareTls: `https://127.0.0.1:${bareTls.address().port}` }));
  process.on("SIGTERM", async () => {
    await Promise.all([plain.stop({ drainMs: 100 }), tls.stop({ drainMs: 100 })]);
    process.exit(0);
  });
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), "keelson-bench-mesh-"));
  const { loadOrCreateCa, createIdentityIssuer, createIdentityVerifier } = await import(new URL("security/index.js", dist));
  const { CallPolicy } = await import(new URL("gateway/call-policy.js", dist));
  const ca = await loadOrCreateCa({ dir: join(dir, "ca"), trustDomain: "bench" });
  const issuer = createIdentityIssuer({ ca, stateDir: dir, ttlMs: 3_600_000, mtls: true });
  await issuer.ensure("keelson-gateway");
  const web = await issuer.ensure("web");
  const token = (await readFile(web.identityFile, "utf8")).trim();

  // The upstream lives here, so the gateway process's CPU time is the gateway's alone.
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": 11 });
    res.end('{"ok":true}');
  });
  await new Promise((r) => upstream.listen(0, "127.0.0.1", r));
  const gateway = spawn(process.execPath, [new URL(import.meta.url).pathname, "--child", dir, "--upstream", `http://127.0.0.1:${upstream.address().port}`], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
  const cpu = () =>
    new Promise((resolve) => {
      gateway.once("message", (u) => resolve((u.user + u.system) / 1e6));
      gateway.send("cpu");
    });
  const urls = await new Promise((resolve, reject) => {
    createInterface({ input: gateway.stdout }).once("line", (line) => resolve(JSON.parse(line)));
    gateway.once("exit", (code) => reject(new Error(`the gateway process exited (${code})`)));
  });
  try {
    const [cert, key, caPem] = await Promise.all(["cert.pem", "key.pem", "ca.pem"].map((f) => readFile(join(web.tlsDir, f), "utf8")));
    const agents = {
      plain: new Agent({ connections: CONNECTIONS, keepAliveTimeout: 10_000 }),
      token: new Agent({ connections: CONNECTIONS, keepAliveTimeout: 10_000 }),
      mtls: new Agent({ connections: CONNECTIONS, keepAliveTimeout: 10_000, connect: { cert, key, ca: caPem, servername: "localhost" } }),
      bare: new Agent({ connections: CONNECTIONS, keepAliveTimeout: 10_000 }),
      bareTls: new Agent({ connections: CONNECTIONS, keepAliveTimeout: 10_000, connect: { cert, key, ca: caPem, servername: "localhost" } }),
    };
    const variants = {
      plain: { url: `${urls.public}/x`, headers: {} },
      token: { url: `${urls.mesh}/x`, headers: { "x-keelson-service": "api", "x-keelson-identity": token } },
      mtls: { url: `${urls.meshTls}/x`, headers: { "x-keelson-service": "api" } },
      bare: { url: `${urls.bare}/x`, headers: {} },
      bareTls: { url: `${urls.bareTls}/x`, headers: {} },
    };
    const load = async (name, ms) => {
      const { url, headers } = variants[name];
      const cpuBefore = await cpu();
      const end = performance.now() + ms;
      let ok = 0;
      let failed = 0;
      const worker = async () => {
        while (performance.now() < end && ok + failed < MAX_REQUESTS) {
          const res = await request(url, { dispatcher: agents[name], headers });
          await res.body.dump();
          if (res.statusCode === 200) ok++;
          else failed++;
        }
      };
      const t = performance.now();
      await Promise.all(Array.from({ length: CONNECTIONS }, worker));
      const elapsed = (performance.now() - t) / 1000;
      const gatewayCpu = (await cpu()) - cpuBefore;
      return { rps: ok / elapsed, perCpuSecond: ok / gatewayCpu, failed };
    };
    for (const name of Object.keys(variants)) await load(name, 500); // warm-up: connections, JIT, the token cache
    const rps = { plain: [], token: [], mtls: [], bare: [], bareTls: [] };
    const capacity = { plain: [], token: [], mtls: [], bare: [], bareTls: [] };
    let failed = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of ["plain", "token", "mtls", "bare", "bareTls"]) {
        const result = await load(name, SECONDS * 1000);
        rps[name].push(result.rps);
        capacity[name].push(result.perCpuSecond);
        failed += result.failed;
      }
    }
    await Promise.all(Object.values(agents).map((a) => a.close()));

    // Per-request checks, in ns.
    const policy = CallPolicy.compile([{ service: "web", paths: ["/orders", "/x"], methods: ["GET", "POST"] }, ...Array.from({ length: 20 }, (_, i) => ({ service: `svc-${i}` }))]);
    const verifier = createIdentityVerifier({ jwks: ca.jwks(), trustDomain: "bench" });
    await verifier.verify(token);
    const ref = new Map(Array.from({ length: 21 }, (_, i) => [`svc-${i}`, true]));
    const apiKey = "k-0123456789abcdef";
    const hashes = new Set([createHash("sha256").update(apiKey).digest("hex")]);
    const perCall = (fn, n = 1_000_000) => {
      let sink = 0;
      for (let i = 0; i < n / 10; i++) sink += fn(i) ? 1 : 0;
      const samples = [];
      for (let r = 0; r < 5; r++) {
        const t = performance.now();
        for (let i = 0; i < n; i++) sink += fn(i) ? 1 : 0;
        samples.push(((performance.now() - t) * 1e6) / n);
      }
      if (sink === -1) console.log("unreachable");
      return median(samples);
    };
    const costs = {
      reference_map_get: perCall((i) => ref.get(i & 1 ? "svc-3" : "nope")),
      policy_name_only: perCall(() => policy.allows("svc-7", "GET", "/anything")),
      policy_path_and_method: perCall((i) => policy.allows("web", i & 1 ? "POST" : "GET", "/orders/42?x=1")),
      policy_denied: perCall(() => policy.allows("intruder", "GET", "/orders")),
      identity_token_cached: perCall(() => verifier.cached(token)?.ok === true),
      api_key_sha256: perCall(() => hashes.has(createHash("sha256").update(apiKey).digest("hex")), 200_000),
    };

    const med = Object.fromEntries(Object.entries(rps).map(([k, v]) => [k, median(v)]));
    const cap = Object.fromEntries(Object.entries(capacity).map(([k, v]) => [k, median(v)]));
    const result = {
      seconds: SECONDS,
      rounds: ROUNDS,
      connections: CONNECTIONS,
      rps_seen_by_client: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, Math.round(v)])),
      client_ratio_token_vs_plain: Number((med.token / med.plain).toFixed(3)),
      client_ratio_mtls_vs_plain: Number((med.mtls / med.plain).toFixed(3)),
      gateway_requests_per_cpu_second: Object.fromEntries(Object.entries(cap).map(([k, v]) => [k, Math.round(v)])),
      ratio_token_vs_plain: Number((cap.token / cap.plain).toFixed(3)),
      ratio_mtls_vs_plain: Number((cap.mtls / cap.plain).toFixed(3)),
      reference_bare_node_https_vs_http: Number((cap.bareTls / cap.bare).toFixed(3)),
      failed,
      ns_per_check: Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, Number(v.toFixed(1))])),
      targets: { mtls_ratio_at_least: 0.7, policy_ns_under: 2000 },
    };
    result.pass = result.ratio_mtls_vs_plain >= 0.7 && costs.policy_path_and_method < 2000 && costs.policy_name_only < 2000 && failed === 0;
    console.log(JSON.stringify(result, null, 2));
    if (!result.pass) process.exitCode = 1;
  } finally {
    gateway.kill("SIGTERM");
    await new Promise((r) => gateway.once("exit", r));
    upstream.close();
    await rm(dir, { recursive: true, force: true });
  }
}
