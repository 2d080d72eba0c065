// End to end: bad input gets a clear error naming the place, with the right exit code,
// and a service that never becomes ready fails `up` while the rest keeps running.
import { writeFile, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTempDir, waitFor } from "#test-support";
import { keelson, pidAlive } from "./cli.js";

describe("keelson CLI on bad input", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-e2e-bad-"));
  });
  afterAll(async () => {
    await keelson(["down", dir]);
    await cleanup();
  });

  it("exits 2 on a usage error", async () => {
    const r = await keelson(["scale", "orders", "many", "-C", dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/expected a whole number, got "many"/);
    expect((await keelson(["no-such-command"])).code).toBe(2);
  });

  it("reports every manifest problem at once with file:line:column and exits 1", async () => {
    await writeFile(
      join(dir, "keelson.yaml"),
      ["project: bad", "services:", "  api:", "    owner: web", "    path: .", "    start: node x.js", "    port: 80a", "    replicaz: 2", "    calls: [ghost]", ""].join("\n"),
    );
    const r = await keelson(["validate", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/keelson\.yaml:7:11 services\.api\.port: .*"80a"/);
    expect(r.stderr).toMatch(/keelson\.yaml:8:5 services\.api\.replicaz: .*did you mean .?replicas/);
    expect(r.stderr).toMatch(/services\.api\.calls.*ghost/);
    expect(r.stderr).toContain("KEELSON_ERR_MANIFEST_INVALID");
  });

  it("names each autoscale setting that cannot be met, and chaos options that make no sense", async () => {
    await writeFile(
      join(dir, "keelson.yaml"),
      ["project: bad", "services:", "  api:", "    owner: web", "    path: .", "    start: node x.js", "    autoscale:", "      min: 3", "      max: 2", "      target: { inflight: 0, p95: 0ms, memory: 50 }", "      window: 0s", "    resources: { memory: 10kb }", ""].join("\n"),
    );
    const r = await keelson(["validate", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/services\.api\.autoscale\.target\.inflight: /);
    expect(r.stderr).toMatch(/keelson\.yaml:10:\d+ services\.api\.autoscale\.target\.p95: must be more than 0/);
    expect(r.stderr).toMatch(/services\.api\.autoscale\.window: must be 1s to 60s/);
    expect(r.stderr).toMatch(/services\.api\.autoscale\.target\.memory: unknown key/);
    expect(r.stderr).toMatch(/services\.api\.resources\.memory: .*at least 1mb/);
    await writeFile(join(dir, "keelson.yaml"), ["project: bad", "services:", "  api:", "    owner: web", "    path: .", "    start: node x.js", "    autoscale: { min: 3, max: 2 }", ""].join("\n"));
    const minMax = await keelson(["validate", dir]);
    expect(minMax.stderr).toMatch(/services\.api\.autoscale\.min: must not exceed autoscale\.max/);
    // The CLI checks its own arguments before it looks for a control plane (usage errors: exit 2).
    for (const [args, message] of [
      [["chaos", "error", "api", "--share", "150%", "-C", dir], /--share.*at most 1/],
      [["chaos", "kill", "-C", dir], /name a service, or pass --all/],
      [["chaos", "latency", "api", "--delay", "soon", "-C", dir], /expected a duration like/],
      [["chaos", "error", "api", "--status", "200", "-C", dir], /HTTP status 400-599/],
    ] as const) {
      const c = await keelson([...args]);
      expect(c.code, args.join(" ")).toBe(2);
      expect(c.stderr, args.join(" ")).toMatch(message);
    }
  });

  it("fails `up` for a service that exits at once, shows its last log lines, and keeps the healthy one running", async () => {
    const [cpPort, gwPort, adminPort, meshPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    await mkdir(join(dir, "ok"), { recursive: true });
    await mkdir(join(dir, "broken"), { recursive: true });
    await writeFile(
      join(dir, "ok", "server.mjs"),
      `import { createServer } from "node:http";\ncreateServer((q, s) => s.end("ok")).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));\nprocess.on("SIGTERM", () => process.exit(0));\n`,
    );
    await writeFile(join(dir, "broken", "server.mjs"), `console.error("boom: DATABASE_URL is not set");\nprocess.exit(3);\n`);
    await writeFile(
      join(dir, "keelson.yaml"),
      [
        "project: halfbroken",
        `controlPlane: { port: ${cpPort} }`,
        `gateway: { port: ${gwPort}, adminPort: ${adminPort}, meshPort: ${meshPort} }`,
        "services:",
        "  ok:",
        "    owner: web",
        "    path: ok",
        "    start: node server.mjs",
        "    routes: [/]",
        "  broken:",
        "    owner: web",
        "    path: broken",
        "    start: node server.mjs",
        "    startTimeout: 20s",
        "",
      ].join("\n"),
    );
    const r = await keelson(["up", dir, "--detach"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/broken.*exited \d+ times before becoming ready \(last exit code 3\)/);
    expect(r.stdout).toContain("boom: DATABASE_URL is not set");
    expect(r.stdout).toMatch(/✓ ok ready/);
    const res = await fetch(`http://127.0.0.1:${gwPort}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok");
    const status = JSON.parse((await keelson(["status", dir, "--json"])).stdout) as { services: Array<{ name: string; replicas: { ready: number } }> };
    expect(status.services.find((s) => s.name === "ok")?.replicas.ready).toBe(1);
    expect(status.services.find((s) => s.name === "broken")?.replicas.ready).toBe(0);
  });

  it("reports a taken control-plane port clearly", async () => {
    const { createServer } = await import("node:http");
    const blocker = createServer((_q, s) => s.end("not keelson"));
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", r));
    try {
      const other = join(dir, "other");
      await mkdir(other, { recursive: true });
      const [gw, admin, mesh] = [await freePort(), await freePort(), await freePort()];
      await writeFile(join(other, "keelson.yaml"), `project: other\ncontrolPlane: { port: ${port} }\ngateway: { port: ${gw}, adminPort: ${admin}, meshPort: ${mesh} }\nservices: {}\n`);
      const r = await keelson(["up", other, "--detach"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`controlPlane\\.port: 127\\.0\\.0\\.1:${port} is already in use`));
      // The gateway it started alongside is stopped again, not left behind.
      await waitFor(async () => {
        try {
          await fetch(`http://127.0.0.1:${admin}/healthz`);
          return false;
        } catch {
          return true;
        }
      }, { what: "the gateway to be stopped" });
    } finally {
      blocker.close();
    }
  });

  it("down stops what up started", async () => {
    const info = JSON.parse(await readFile(join(dir, ".keelson", "controlplane.json"), "utf8")) as { pid: number };
    const r = await keelson(["down", dir]);
    expect(r.code).toBe(0);
    expect(pidAlive(info.pid)).toBe(false);
  });
});
