// Tests for serve(): probes, request context, error answers, port selection and the
// graceful shutdown sequence, all over real HTTP on 127.0.0.1.
import { request, Agent } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { freePort, waitFor } from "#test-support";
import { KeelsonError } from "@keelson/protocol";
import { createLogger } from "./logger.js";
import { currentRequest } from "./request-context.js";
import { HttpError, json } from "./respond.js";
import { serve } from "./serve.js";
import type { ServeOptions, ServiceHandle } from "./serve.js";

const handles: ServiceHandle[] = [];
afterEach(async () => {
  await Promise.all(handles.splice(0).map((h) => h.close()));
  vi.unstubAllEnvs();
});

function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger({ write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) }) };
}

async function start(options: Partial<ServeOptions> & Pick<ServeOptions, "handler">): Promise<ServiceHandle> {
  const handle = await serve({ port: 0, signals: [], logger: createLogger({ level: "silent" }), ...options });
  handles.push(handle);
  return handle;
}

/** A promise with its resolve function, to hold a handler open until the test lets go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** GET over a given agent with node:http, so the test controls connection reuse. */
function get(url: string, agent: Agent): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("serve: probes", () => {
  it("answers readiness and liveness itself and passes everything else to the handler", async () => {
    const handled: string[] = [];
    const h = await start({ handler: (req, res) => (handled.push(req.url ?? ""), json(res, 200, { ok: true })) });
    const ready = await fetch(`${h.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
    const alive = await fetch(`${h.url}/healthz?verbose=1`);
    expect(alive.status).toBe(200);
    expect(await alive.json()).toEqual({ status: "alive" });
    expect((await fetch(`${h.url}/other`)).status).toBe(200);
    expect(handled).toEqual(["/other"]);
  });

  it("answers readiness 503 while ready() says no or throws", async () => {
    let state: "yes" | "no" | "throw" = "no";
    const h = await start({
      handler: (_req, res) => json(res, 200, {}),
      readinessPath: "/r",
      livenessPath: "/l",
      ready: async () => {
        if (state === "throw") throw new Error("db down");
        return state === "yes";
      },
    });
    const r1 = await fetch(`${h.url}/r`);
    expect(r1.status).toBe(503);
    expect(await r1.json()).toEqual({ status: "unready" });
    state = "yes";
    expect((await fetch(`${h.url}/r`)).status).toBe(200);
    state = "throw";
    expect((await fetch(`${h.url}/r`)).status).toBe(503);
    // The custom liveness path is served; the default one now belongs to the handler.
    expect(await (await fetch(`${h.url}/l`)).json()).toEqual({ status: "alive" });
  });
});

describe("serve: request context", () => {
  it("keeps the caller's x-request-id, echoes it and exposes it with the caller to the handler", async () => {
    const h = await start({ handler: (_req, res) => json(res, 200, currentRequest()) });
    const res = await fetch(`${h.url}/x`, { headers: { "x-request-id": "req-abc", "x-keelson-caller": "storefront" } });
    expect(res.headers.get("x-request-id")).toBe("req-abc");
    expect(await res.json()).toEqual({ requestId: "req-abc", caller: "storefront" });
  });

  it("generates a request id when none or an unusable one is given", async () => {
    const h = await start({ handler: async (_req, res) => {
      // The context must survive an await inside the handler.
      await new Promise((r) => setImmediate(r));
      json(res, 200, { id: currentRequest()?.requestId });
    } });
    const a = (await (await fetch(`${h.url}/x`)).json()) as { id: string };
    const b = (await (await fetch(`${h.url}/x`, { headers: { "x-request-id": "x".repeat(500) } })).json()) as { id: string };
    expect(a.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.id).not.toBe(b.id);
  });
});

describe("serve: access log", () => {
  it("logs one line per request with its id, caller, status and duration, leaving probes out", async () => {
    const { lines, logger } = captureLogs();
    const h = await start({ logger, handler: (_req, res) => json(res, 201, {}) });
    await fetch(`${h.url}/ready`);
    await fetch(`${h.url}/healthz`);
    await fetch(`${h.url}/api/orders?email=secret@example.com`, { method: "POST", headers: { "x-request-id": "req-log", "x-keelson-caller": "storefront" } });
    await waitFor(() => lines.some((l) => l.msg === "request"), { what: "access log line" });
    const access = lines.filter((l) => l.msg === "request");
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ level: "info", requestId: "req-log", caller: "storefront", method: "POST", path: "/api/orders", status: 201 });
    expect(typeof access[0]?.durationMs).toBe("number");
    // The query string can carry personal data; it stays out of the log.
    expect(JSON.stringify(access[0])).not.toContain("secret@example.com");
  });

  it("writes no access lines when turned off", async () => {
    const { lines, logger } = captureLogs();
    const h = await start({ logger, accessLog: false, handler: (_req, res) => json(res, 200, {}) });
    expect((await fetch(`${h.url}/x`)).status).toBe(200);
    await h.close();
    expect(lines.filter((l) => l.msg === "request")).toEqual([]);
    expect(lines.map((l) => l.msg)).toContain("shut down");
  });
});

describe("serve: errors", () => {
  it("turns a thrown error into a 500 JSON answer with the request id, logs it and keeps serving", async () => {
    const { lines, logger } = captureLogs();
    const h = await start({
      logger,
      handler: (req, res) => {
        if (req.url === "/sync") throw new Error("secret detail");
        if (req.url === "/async") return Promise.reject(new Error("async detail"));
        json(res, 200, { fine: true });
      },
    });
    for (const path of ["/sync", "/async"]) {
      const res = await fetch(`${h.url}${path}`, { headers: { "x-request-id": `id${path.replace("/", "-")}` } });
      expect(res.status).toBe(500);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("INTERNAL");
      expect(body.error.message).toBe(`internal error (request id id${path.replace("/", "-")})`);
      expect(body.error.message).not.toContain("detail");
    }
    expect(await (await fetch(`${h.url}/ok`)).json()).toEqual({ fine: true });
    const failures = lines.filter((l) => l.msg === "request failed");
    expect(failures.map((l) => [l.requestId, (l.err as { message: string }).message])).toEqual([
      ["id-sync", "secret detail"],
      ["id-async", "async detail"],
    ]);
  });

  it("answers an HttpError with its status and body", async () => {
    const h = await start({ handler: () => {
      throw new HttpError(409, "OUT_OF_STOCK", "sku A is out of stock", { sku: "A" });
    } });
    const res = await fetch(`${h.url}/x`);
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ error: { code: "OUT_OF_STOCK", message: "sku A is out of stock", details: { sku: "A" } } });
  });

  it("cuts the connection when the handler fails after starting its answer", async () => {
    const h = await start({ handler: async (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("partial");
      await new Promise((r) => setImmediate(r));
      throw new Error("mid-stream");
    } });
    await expect(fetch(`${h.url}/x`).then((r) => r.text())).rejects.toThrow();
    expect((await fetch(`${h.url}/ready`)).status).toBe(200);
  });
});

describe("serve: port", () => {
  it("listens on $PORT by default and reports it in the handle", async () => {
    const port = await freePort();
    vi.stubEnv("PORT", String(port));
    const h = await serve({ handler: (_q, res) => json(res, 200, {}), signals: [], logger: createLogger({ level: "silent" }) });
    handles.push(h);
    expect(h.port).toBe(port);
    expect(h.url).toBe(`http://127.0.0.1:${port}`);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });

  it("fails fast when there is no usable port", async () => {
    vi.stubEnv("PORT", "");
    const err = await serve({ handler: () => {}, signals: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_INVALID_INPUT");
    expect((err as KeelsonError).message).toBe('serve(): $PORT must be a port number 0-65535 (got ""); set it or pass options.port');
    await expect(serve({ handler: () => {}, port: 70000, signals: [] })).rejects.toThrow(/options.port/);
  });

  it("reports a taken port with KEELSON_ERR_PORT_IN_USE", async () => {
    const first = await start({ handler: () => {} });
    const err = await serve({ handler: () => {}, port: first.port, signals: [], logger: createLogger({ level: "silent" }) }).catch((e: unknown) => e);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_PORT_IN_USE");
  });
});

describe("serve: graceful shutdown", () => {
  it("lets an in-flight request finish, refuses new connections, then runs onShutdown", async () => {
    const events: string[] = [];
    const slow = gate();
    const entered = gate();
    const h = await serve({
      port: 0,
      signals: [],
      logger: createLogger({ level: "silent" }),
      handler: async (_req, res) => {
        entered.open();
        await slow.promise;
        json(res, 200, { done: true });
        events.push("answered");
      },
      onShutdown: async () => {
        events.push("onShutdown");
      },
    });
    const agent = new Agent({ keepAlive: true });
    const inFlight = get(`${h.url}/slow`, agent);
    await entered.promise;

    const closed = h.close().then(() => events.push("closed"));
    // New connections are refused at once.
    await waitFor(async () => {
      try {
        await fetch(`${h.url}/ready`);
        return false;
      } catch {
        return true;
      }
    }, { what: "listener to close" });
    expect(events).toEqual([]);

    slow.open();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ done: true });
    // The keep-alive client is told not to reuse the connection.
    expect(res.headers.connection).toBe("close");
    await closed;
    expect(events).toEqual(["answered", "onShutdown", "closed"]);
    agent.destroy();
  });

  it("answers readiness 503 once draining, even for a probe that was already running", async () => {
    const readyGate = gate();
    const probing = gate();
    const h = await serve({
      port: 0,
      signals: [],
      logger: createLogger({ level: "silent" }),
      handler: () => {},
      ready: async () => {
        probing.open();
        await readyGate.promise;
        return true;
      },
    });
    const probe = fetch(`${h.url}/ready`);
    await probing.promise;
    const closed = h.close();
    readyGate.open();
    const res = await probe;
    expect(res.status).toBe(503);
    expect(res.headers.get("connection")).toBe("close");
    expect(await res.json()).toEqual({ status: "draining" });
    // Regression: the probe's keep-alive connection used to hold close() for about 4 s.
    const answeredAt = Date.now();
    await closed;
    expect(Date.now() - answeredAt).toBeLessThan(1000);
  });

  it("closes idle keep-alive connections instead of waiting for their timeout", async () => {
    const h = await serve({ port: 0, signals: [], logger: createLogger({ level: "silent" }), handler: (_q, res) => json(res, 200, {}) });
    const agent = new Agent({ keepAlive: true });
    expect((await get(`${h.url}/a`, agent)).status).toBe(200);
    const started = Date.now();
    await h.close();
    // Node's keep-alive timeout is 5 s; an idle socket left open would hold close() that long.
    expect(Date.now() - started).toBeLessThan(2000);
    agent.destroy();
  });

  it("closes a keep-alive connection whose answer had started before the shutdown", async () => {
    const rest = gate();
    const headSent = gate();
    const h = await serve({
      port: 0,
      signals: [],
      logger: createLogger({ level: "silent" }),
      handler: async (_q, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("part one;");
        headSent.open();
        await rest.promise;
        res.end("part two");
      },
    });
    const agent = new Agent({ keepAlive: true });
    const answer = get(`${h.url}/stream`, agent);
    await headSent.promise;
    const closed = h.close();
    rest.open();
    const res = await answer;
    // Too late to say "connection: close"; the server has to close the idle socket itself.
    expect(res.headers.connection).toBe("keep-alive");
    expect(res.body).toBe("part one;part two");
    const answeredAt = Date.now();
    await closed;
    expect(Date.now() - answeredAt).toBeLessThan(1000);
    agent.destroy();
  });

  it("gives up on requests still running after shutdownTimeoutMs", async () => {
    const never = gate();
    const entered = gate();
    const events: string[] = [];
    const h = await serve({
      port: 0,
      signals: [],
      shutdownTimeoutMs: 100,
      logger: createLogger({ level: "silent" }),
      handler: async () => {
        entered.open();
        await never.promise;
      },
      onShutdown: async () => {
        events.push("onShutdown");
      },
    });
    const stuck = fetch(`${h.url}/stuck`).then(
      () => "answered",
      () => "connection closed",
    );
    await entered.promise;
    await h.close();
    expect(await stuck).toBe("connection closed");
    expect(events).toEqual(["onShutdown"]);
    never.open();
  });

  it("shuts down on a signal and exits 0; a second signal exits 1 at once", async () => {
    const exits: number[] = [];
    const slow = gate();
    const entered = gate();
    const h = await serve({
      port: 0,
      // SIGUSR2 stands in for SIGTERM: emitting SIGTERM would reach the test runner's own handlers.
      signals: ["SIGUSR2"],
      exit: (code) => exits.push(code),
      logger: createLogger({ level: "silent" }),
      handler: async (_q, res) => {
        entered.open();
        await slow.promise;
        json(res, 200, {});
      },
    });
    const inFlight = fetch(`${h.url}/slow`);
    await entered.promise;
    process.emit("SIGUSR2", "SIGUSR2");
    process.emit("SIGUSR2", "SIGUSR2");
    expect(exits).toEqual([1]);
    slow.open();
    expect((await inFlight).status).toBe(200);
    await waitFor(() => exits.length === 2, { what: "exit after drain" });
    expect(exits).toEqual([1, 0]);
    // The handlers are gone once shut down.
    expect(process.listenerCount("SIGUSR2")).toBe(0);
  });

  it("exits 1 when onShutdown fails", async () => {
    const exits: number[] = [];
    const { lines, logger } = captureLogs();
    await serve({
      port: 0,
      signals: ["SIGUSR2"],
      exit: (code) => exits.push(code),
      logger,
      handler: () => {},
      onShutdown: () => Promise.reject(new Error("flush failed")),
    });
    process.emit("SIGUSR2", "SIGUSR2");
    await waitFor(() => exits.length === 1, { what: "exit" });
    expect(exits).toEqual([1]);
    expect(lines.find((l) => l.msg === "shutdown failed")?.err).toMatchObject({ message: "flush failed" });
  });
});
