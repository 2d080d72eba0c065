// Notifications end to end: a real control plane in this process (SQLite store, real pipelines,
// the memory driver, the API with tokens) applies a manifest whose project and team webhooks point
// at a real HTTP receiver on 127.0.0.1. The receiver fails first (500, then a hang longer than the
// per-try timeout) and then accepts; another stays down until a retry from the dead-letter list;
// another hangs on every try while the deploy it is told about completes. `keelson notifications`
// runs in this process against it.
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeelsonEvent } from "@keelson/protocol";
import { makeTempDir, runCli, waitFor } from "#test-support";
import { createApiSecurity, createControlPlane, type ApiSecurity, type ControlPlane } from "../../packages/platform/src/api/index.js";
import { createNotifier, type NotificationDelivery, type Notifier } from "../../packages/platform/src/catalog/index.js";
import { main } from "../../packages/platform/src/cli/index.js";
import { createReconciler, type AnalysisProvider, type Reconciler } from "../../packages/platform/src/delivery/index.js";
import { createMemoryDriver, type MemoryDriver } from "../../packages/platform/src/runtime/index.js";
import { createSqliteStore, type Store } from "../../packages/platform/src/store/index.js";
import { Registry } from "prom-client";

/** Per-try timeout of the notifier: the hanging tries last this long. */
const TRY_TIMEOUT_MS = 1500;
const BACKOFF_MS = 100;
const ATTEMPTS = 4;

/** One request the receiver got, and what became of it. */
interface Hit {
  path: string;
  id: string;
  kind: string;
  /** Which try of this delivery id (1 = first). */
  n: number;
  body: Record<string, unknown>;
  receivedAt: number;
  /** When it was answered, and with what. */
  answeredAt?: number;
  status?: number;
  /** When the client gave up on it (a hang ends only so). */
  closedAt?: number;
}

/** A webhook receiver on 127.0.0.1:0 that answers by path (and by try, for /project). */
function startReceiver() {
  const hits: Hit[] = [];
  const tries = new Map<string, number>();
  const state = { webDown: true };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const id = String(req.headers["x-keelson-delivery"] ?? "");
      const n = (tries.get(id) ?? 0) + 1;
      tries.set(id, n);
      const path = (req.url ?? "/").split("/").slice(0, 2).join("/");
      const hit: Hit = { path, id, kind: String(req.headers["x-keelson-event"] ?? ""), n, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>, receivedAt: Date.now() };
      hits.push(hit);
      res.on("close", () => {
        if (hit.answeredAt === undefined) hit.closedAt = Date.now();
      });
      const answer = (status: number) => {
        hit.status = status;
        hit.answeredAt = Date.now();
        res.writeHead(status, { "content-type": "text/plain" }).end(status < 300 ? "ok" : "no");
      };
      // /project fails first: a 500, then a hang past the per-try timeout, then it accepts.
      if (path === "/project") return n === 1 ? answer(500) : n === 2 ? undefined : answer(200);
      if (path === "/web-hang") return undefined;
      if (path === "/web-down") return answer(state.webDown ? 503 : 200);
      answer(200);
    });
  });
  return { server, hits, state };
}

const deployWithAnalysis = "{ strategy: canary, drain: 0, steps: [{ setWeight: 20 }, { analysis: { interval: 20ms, duration: 150ms, metrics: [errors] } }, { setWeight: 50 }] }";

function manifestText(hooks: string, orders: { version: string; test?: string }): string {
  return `project: shop
teams:
  commerce:
    members: [ana]
    notifications: [{ url: "${hooks}/slack/T0AB/B0CD/s3cr3tSlackPathXyZ9", format: slack, events: [canary.rolled-back, deploy.failed] }]
  web:
    notifications:
      - { url: "${hooks}/web-hang/hook", events: [deploy.started] }
      - { url: "${hooks}/web-down/hook", events: [deploy.succeeded] }
notifications: { webhooks: ["${hooks}/project"], attempts: ${ATTEMPTS}, backoff: ${BACKOFF_MS}ms, maxBackoff: 2s }
services:
  orders:
    owner: commerce
    path: services/orders
    start: node main.js
    replicas: 1
    startTimeout: 5s
    env: { VERSION: "${orders.version}" }
${orders.test ? `    test: "${orders.test}"\n` : ""}    deploy: ${deployWithAnalysis}
  search:
    owner: web
    path: services/search
    start: node main.js
    replicas: 1
    startTimeout: 5s
`;
}

describe("notifications to a real local receiver", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: Store;
  let driver: MemoryDriver;
  let reconciler: Reconciler;
  let notifier: Notifier;
  let cp: ControlPlane;
  let security: ApiSecurity;
  let url: string;
  let hooks: string;
  let admin: string;
  let viewer: string;
  let receiver: ReturnType<typeof startReceiver>;
  let firstApply: { startedAt: number; returnedAt: number };
  const silent = { info() {}, warn() {}, error() {} };

  const call = (method: string, path: string, token: string, body?: unknown) =>
    fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  /** POST /v1/apply and its final NDJSON line. */
  async function apply(): Promise<{ type: string; result?: { failures: Array<{ service: string; code: string; message: string }> } }> {
    const res = await call("POST", "/v1/apply", admin, {});
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split("\n");
    return JSON.parse(lines[lines.length - 1] as string) as { type: string; result?: { failures: Array<{ service: string; code: string; message: string }> } };
  }

  async function deliveries(query = ""): Promise<NotificationDelivery[]> {
    const res = await call("GET", `/v1/notifications?limit=1000${query}`, viewer);
    expect(res.status).toBe(200);
    return ((await res.json()) as { deliveries: NotificationDelivery[] }).deliveries;
  }

  /** Runs `keelson …` in this process against the test's control plane. */
  const keelson = (args: string[]) => runCli(main, [...args, "-C", dir]);

  const events = (kinds: KeelsonEvent["kind"][], subject?: string) => store.listEvents({ project: "shop", kinds, ...(subject ? { subject } : {}) });
  const accepted = (id: string) => receiver.hits.filter((h) => h.id === id && h.status !== undefined && h.status < 300).length;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-notifications-"));
    receiver = startReceiver();
    await new Promise<void>((r) => receiver.server.listen(0, "127.0.0.1", () => r()));
    hooks = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}`;
    const stateDir = join(dir, ".keelson");
    for (const s of ["orders", "search"]) {
      await mkdir(join(dir, "services", s), { recursive: true });
      await writeFile(join(dir, "services", s, "main.js"), "// started by the memory driver only\n");
    }
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(dir, "keelson.yaml"), manifestText(hooks, { version: "1" }));
    store = await createSqliteStore({ path: join(stateDir, "state.db") });
    // Replicas take 300 ms to be ready, so a rollout lasts long enough to overlap its webhook's tries.
    driver = createMemoryDriver({ readyDelayMs: 300 });
    // Canary analysis that always finds the canary worse: 12% errors against none.
    let looks = 0;
    const analysis: AnalysisProvider = {
      async observe() {
        const k = ++looks;
        return { at: Date.now(), canary: { requests: 100 * k, errors: 12 * k }, baseline: { requests: 100 * k, errors: 0 } };
      },
    };
    reconciler = createReconciler({ store, driver, project: "shop", stateDir, gatewayUrl: "http://127.0.0.1:1", log: silent, convergeIntervalMs: 50, analysis });
    security = await createApiSecurity({ store, project: "shop", stateDir });
    admin = (await security.tokens.create({ name: "ana", role: "admin", actor: "test" })).token;
    viewer = (await security.tokens.create({ name: "look", role: "viewer", actor: "test" })).token;
    const registry = new Registry();
    notifier = createNotifier({ store, project: "shop", log: silent, registry, timeoutMs: TRY_TIMEOUT_MS, pollIntervalMs: 25, random: () => 0.5 });
    cp = createControlPlane({ project: "shop", dir, stateDir, store, driver, reconciler, gatewayUrl: "http://127.0.0.1:1", log: silent, security, notifier, registry });
    url = await cp.listen("127.0.0.1", 0);
    // What `keelson up` writes, so that the CLI finds this control plane and has its token.
    await writeFile(join(stateDir, "controlplane.json"), JSON.stringify({ pid: process.pid, url, project: "shop" }));
    await writeFile(join(stateDir, "token"), `${admin}\n`, { mode: 0o600 });
    reconciler.start();
    await notifier.start();
  });

  afterAll(async () => {
    await notifier?.stop({ graceMs: 0 });
    await reconciler?.stop();
    await cp?.close();
    receiver?.server.closeAllConnections();
    await new Promise<void>((r) => (receiver ? receiver.server.close(() => r()) : r()));
    await Promise.all((driver?.list() ?? []).map((r) => driver.stop(r.spec.id)));
    await store?.close();
    await cleanup?.();
  });

  it("retries a receiver that fails first (500, then a hang past the per-try timeout) with growing waits; each delivery is accepted exactly once", async () => {
    const startedAt = Date.now();
    const done = await apply();
    firstApply = { startedAt, returnedAt: Date.now() };
    expect(done).toMatchObject({ type: "done", result: { failures: [] } });

    // Two services, each deploy.started and deploy.succeeded: four deliveries to the project's webhook.
    const project = await waitFor(
      async () => {
        const list = (await deliveries()).filter((d) => d.to === "project");
        return list.length === 4 && list.every((d) => d.state === "delivered") ? list : undefined;
      },
      { timeoutMs: 20_000, what: "the project webhook to get every delivery" },
    );
    expect(project.map((d) => `${d.kind} ${d.service ?? ""}`).sort()).toEqual(["deploy.started orders", "deploy.started search", "deploy.succeeded orders", "deploy.succeeded search"]);
    for (const d of project) {
      expect(d).toMatchObject({ attempts: 3, lastStatus: 200, format: "json", target: `${hooks}/…ject` });
      expect(d.tries.map((t) => t.status ?? t.error)).toEqual([500, `no answer within ${TRY_TIMEOUT_MS} ms`, 200]);
      const [first, second, third] = receiver.hits.filter((h) => h.id === d.id);
      expect([first?.status, second?.status, third?.status]).toEqual([500, undefined, 200]);
      expect(receiver.hits.filter((h) => h.id === d.id)).toHaveLength(3);
      // Exactly one acceptance per delivery id; the same body every time.
      expect(accepted(d.id)).toBe(1);
      expect(new Set([first, second, third].map((h) => JSON.stringify(h?.body))).size).toBe(1);
      // As the receiver saw it (its clock starts once a request's body is in, so give or take a
      // turn of a busy event loop): the tries came in order, and the hang lasted about the per-try timeout.
      expect((second?.receivedAt ?? 0) - (first?.answeredAt ?? 0)).toBeGreaterThan(0);
      expect((second?.closedAt ?? 0) - (second?.receivedAt ?? 0)).toBeGreaterThanOrEqual(TRY_TIMEOUT_MS - 300);
      expect((third?.receivedAt ?? 0) - (second?.closedAt ?? 0)).toBeGreaterThan(0);
      // As the notifier timed it: waits of backoff, then 2 × backoff after each failed try (random() = 0.5: no jitter).
      const [t1, t2, t3] = d.tries.map((t) => ({ start: Date.parse(t.at), end: Date.parse(t.at) + t.durationMs }));
      expect(t2?.end ?? 0).toBeGreaterThanOrEqual((t2?.start ?? 0) + TRY_TIMEOUT_MS);
      const waits = [(t2?.start ?? 0) - (t1?.end ?? 0), (t3?.start ?? 0) - (t2?.end ?? 0)];
      expect(waits[0]).toBeGreaterThanOrEqual(BACKOFF_MS);
      expect(waits[1]).toBeGreaterThanOrEqual(2 * BACKOFF_MS);
      expect(waits[1]).toBeGreaterThan(waits[0] ?? 0);
      // The generic JSON, with the delivery id in the body and the header.
      expect(third?.body).toMatchObject({ id: d.id, kind: d.kind, project: "shop", service: d.service, team: d.service === "orders" ? "commerce" : "web", event: { kind: d.kind === "deploy.started" ? "rollout.started" : "rollout.succeeded", subject: `service/${d.service}` } });
      expect(third?.kind).toBe(d.kind);
    }
    // The webhook URL is a secret: no answer of the API holds it whole.
    expect(JSON.stringify(await deliveries())).not.toContain("s3cr3tSlackPath");
  });

  it("completes a deploy while its team's webhook hangs on every try", async () => {
    const [started] = await events(["rollout.started"], "service/search");
    const [succeeded] = await events(["rollout.succeeded"], "service/search");
    const hang = receiver.hits.find((h) => h.path === "/web-hang" && (h.body.event as { seq: number }).seq === started?.seq);
    expect(hang, "the web team's webhook was told the deploy started").toBeDefined();
    const succeededAt = Date.parse(succeeded?.at ?? "");
    // The webhook was still hanging (asked, not answered, not given up on) when the rollout
    // succeeded, and when the apply that made it returned.
    expect(hang?.receivedAt).toBeLessThan(succeededAt);
    expect(hang?.answeredAt).toBeUndefined();
    expect(hang?.closedAt ?? Infinity).toBeGreaterThan(succeededAt);
    expect(hang?.closedAt ?? Infinity).toBeGreaterThan(firstApply.returnedAt);
    // It never answers: every try times out, then the delivery is dead-lettered.
    const dead = await waitFor(async () => (await deliveries("&state=dead")).find((d) => d.target === `${hooks}/…hook` && d.kind === "deploy.started"), { timeoutMs: 20_000, what: "the hanging delivery to die" });
    expect(dead).toMatchObject({ to: "team:web", attempts: ATTEMPTS, lastError: `no answer within ${TRY_TIMEOUT_MS} ms` });
    expect(receiver.hits.filter((h) => h.id === dead.id)).toHaveLength(ATTEMPTS);
  });

  it("dead-letters a delivery after every try failed, and `keelson notifications retry` delivers it once the receiver is back", async () => {
    const dead = await waitFor(async () => (await deliveries("&state=dead")).find((d) => d.kind === "deploy.succeeded" && d.to === "team:web"), { timeoutMs: 20_000, what: "the web team's deploy.succeeded to die" });
    expect(dead).toMatchObject({ service: "search", attempts: ATTEMPTS, lastStatus: 503, lastError: "answered 503" });
    expect(dead.tries.map((t) => t.status)).toEqual(Array(ATTEMPTS).fill(503));
    expect(receiver.hits.filter((h) => h.id === dead.id).map((h) => h.status)).toEqual(Array(ATTEMPTS).fill(503));

    const listed = await keelson(["notifications", "--dead"]);
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out).toContain(dead.id);
    expect(listed.out).toMatch(/deploy\.succeeded +search +team:web http:\/\/127\.0\.0\.1:\d+\/…hook +dead +4\/4 +answered 503/);
    expect(listed.out).not.toContain("/web-down/hook");

    // A viewer may look but not retry; the refusal is audited.
    expect((await call("POST", `/v1/notifications/${dead.id}/retry`, viewer)).status).toBe(403);
    const audit = await events(["audit"]);
    expect(audit.some((e) => e.details.action === "POST /v1/notifications/:id/retry" && e.details.status === 403)).toBe(true);

    receiver.state.webDown = false;
    const retried = await keelson(["notifications", "retry", dead.id]);
    expect(retried.code, retried.err).toBe(0);
    expect(retried.out).toContain(`${dead.id} queued again: deploy.succeeded of search to team:web`);
    const delivered = await waitFor(async () => (await deliveries("&state=delivered")).find((d) => d.id === dead.id), { what: "the retried delivery" });
    expect(delivered).toMatchObject({ attempts: 1, lastStatus: 200, requeued: { by: "user:ana" } });
    expect(accepted(dead.id)).toBe(1);
    expect(audit.length).toBeLessThan((await events(["audit"])).length);
    // Retrying something that is not dead is refused.
    const again = await keelson(["notifications", "retry", dead.id]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/KEELSON_ERR_CONFLICT/);
  });

  it("tells the owning team's Slack channel of a canary rolled back by its analysis, and of a failed pipeline, in Slack's shape", async () => {
    await writeFile(join(dir, "keelson.yaml"), manifestText(hooks, { version: "2" }));
    const canary = await apply();
    expect(canary.result?.failures).toEqual([expect.objectContaining({ service: "orders", code: "KEELSON_ERR_ROLLOUT_FAILED" })]);
    const hit = await waitFor(() => receiver.hits.find((h) => h.path === "/slack" && h.kind === "canary.rolled-back"), { what: "the Slack message" });
    const [failed] = await events(["rollout.failed"], "service/orders");
    const to = failed?.details.to as string;
    const back = failed?.details.rolledBackTo as string;
    expect(hit.body).toEqual({
      text: `orders: canary ${to} rolled back to ${back}: error ratio 12.0% vs 0.0% (SPRT)`,
      blocks: [
        {
          type: "section",
          text: { type: "mrkdwn", text: `:leftwards_arrow_with_hook: orders: canary ${to} rolled back to ${back}: error ratio 12.0% vs 0.0% (SPRT)` },
          fields: [
            { type: "mrkdwn", text: "*Service*\n`orders (team commerce)`" },
            { type: "mrkdwn", text: `*Release*\n\`${to}\`` },
            { type: "mrkdwn", text: "*By*\n`reconciler`" },
          ],
        },
        { type: "context", elements: [{ type: "mrkdwn", text: `Keelson · project *shop* · \`canary.rolled-back\` · event #${failed?.seq} · ${failed?.at}` }] },
      ],
    });
    // The team asked for canary.rolled-back and deploy.failed only: it never heard of the deploys that went well.
    expect(receiver.hits.filter((h) => h.path === "/slack").map((h) => h.kind)).toEqual(["canary.rolled-back"]);

    await writeFile(join(dir, "keelson.yaml"), manifestText(hooks, { version: "3", test: "exit 3" }));
    const broken = await apply();
    expect(broken.result?.failures).toEqual([expect.objectContaining({ service: "orders", code: "KEELSON_ERR_PIPELINE_FAILED" })]);
    const pipeline = await waitFor(() => receiver.hits.find((h) => h.path === "/slack" && h.kind === "deploy.failed"), { what: "the failed pipeline's message" });
    expect((pipeline.body as { text: string }).text).toMatch(/^orders: pipeline run-[\w-]+ failed, no release was made: /);
  });

  it("`keelson notifications` lists every delivery, and `keelson notifications test` tries every webhook", async () => {
    const listed = await keelson(["notifications", "--json"]);
    expect(listed.code, listed.err).toBe(0);
    const all = JSON.parse(listed.out) as NotificationDelivery[];
    expect(new Set(all.map((d) => d.kind))).toEqual(new Set(["deploy.started", "deploy.succeeded", "canary.rolled-back", "deploy.failed"]));
    expect(listed.out).not.toContain("s3cr3tSlackPath");
    const table = await keelson(["notifications", "-n", "5"]);
    expect(table.out.split("\n")[0]).toMatch(/^ID +WHEN \(UTC\) +KIND +SERVICE +TARGET +STATE +TRIES +LAST ERROR$/);

    const test = await keelson(["notifications", "test", "--wait", "5"]);
    // The project's receiver fails a first try and the web team's hangs: exit 1, each said.
    expect(test.code).toBe(1);
    expect(test.out).toContain(`✓ team:commerce ${hooks}/…XyZ9 (slack): delivered (200)`);
    expect(test.out).toContain(`✗ project ${hooks}/…ject (json): answered 500, will try again`);
    expect(test.out).toContain(`✓ team:web ${hooks}/…hook (json): delivered (200)`);
    expect(test.out).toMatch(/(…|✗) team:web http:\/\/127\.0\.0\.1:\d+\/…hook \(json\): (not tried yet|no answer within 1500 ms, will try again)/);
    expect(receiver.hits.filter((h) => h.kind === "test" && h.path === "/slack")).toHaveLength(1);

    const metrics = await (await call("GET", "/metrics", viewer)).text();
    expect(metrics).toMatch(/keelson_controlplane_notifications_total\{kind="deploy\.started",state="delivered"\} [1-9]/);
    expect(metrics).toMatch(/keelson_controlplane_notifications_total\{kind="deploy\.succeeded",state="dead"\} 1/);
  });
});
