// Tests for asking the control plane to start a replica of a service scaled to zero: one ask per
// episode, failed asks repeated at most every retryMs while the episode lasts, and the HTTP call
// itself against a stand-in control plane on 127.0.0.1 (path, credential, answers).
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "#test-support";
import type { ActivateAnswer } from "./service-activator.js";
import { createActivateCall, createServiceActivator } from "./service-activator.js";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An activate call whose outcomes the test lists in order (true: accepted). */
function scriptedCall(outcomes: boolean[]) {
  const calls: Array<{ service: string; at: number }> = [];
  return {
    calls,
    call: async (service: string): Promise<ActivateAnswer> => {
      calls.push({ service, at: performance.now() });
      if (outcomes.shift() ?? true) return { service, from: 0, to: 1 };
      throw new Error("the control plane answered 503");
    },
  };
}

describe("createServiceActivator", () => {
  it("asks once per episode, however often holding is reported", async () => {
    const script = scriptedCall([true]);
    const activator = createServiceActivator({ activate: script.call, retryMs: 20 });
    cleanups.push(() => activator.stop());
    for (let i = 0; i < 50; i++) activator.holding("orders");
    activator.holding("billing");
    await waitFor(() => script.calls.length === 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(script.calls.map((c) => c.service)).toEqual(["orders", "billing"]);
    // A new episode asks again.
    activator.released("orders");
    activator.holding("orders");
    await waitFor(() => script.calls.length === 3);
  });

  it("asks again after a failure, no sooner than retryMs, until one is accepted", async () => {
    const script = scriptedCall([false, false, true]);
    const warnings: string[] = [];
    const log = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (_o: object, msg?: string) => void warnings.push(msg ?? "") };
    const activator = createServiceActivator({ activate: script.call, retryMs: 60, log });
    cleanups.push(() => activator.stop());
    activator.holding("orders");
    await waitFor(() => script.calls.length === 3, { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 150));
    expect(script.calls).toHaveLength(3);
    for (let i = 1; i < 3; i++) expect(script.calls[i]!.at - script.calls[i - 1]!.at).toBeGreaterThanOrEqual(55);
    expect(warnings).toHaveLength(2);
  });

  it("stops asking when the episode ends or the activator stops", async () => {
    const script = scriptedCall([false, false, false, false]);
    const activator = createServiceActivator({ activate: script.call, retryMs: 40 });
    activator.holding("orders");
    await waitFor(() => script.calls.length === 1);
    activator.released("orders");
    activator.holding("billing");
    await waitFor(() => script.calls.length === 2);
    await activator.stop();
    activator.holding("search");
    await new Promise((r) => setTimeout(r, 150));
    expect(script.calls.map((c) => c.service)).toEqual(["orders", "billing"]);
  });
});

describe("createActivateCall", () => {
  async function startControlPlane(answer: (service: string) => { status: number; body: unknown }) {
    const seen: Array<{ method: string; url: string; authorization: string | undefined }> = [];
    const server = createServer((req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization });
      req.resume();
      const service = decodeURIComponent(/^\/v1\/services\/([^/]+)\/activate$/.exec(req.url ?? "")?.[1] ?? "");
      const a = answer(service);
      res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen };
  }

  it("POSTs to /v1/services/<name>/activate with the gateway's identity token and reads the 202", async () => {
    const cp = await startControlPlane((service) => ({ status: 202, body: { service, from: 0, to: 1 } }));
    const tmp = await makeTempDir("keelson-activate-");
    cleanups.push(tmp.cleanup);
    const credentialFile = join(tmp.dir, "gateway.token");
    await writeFile(credentialFile, "token-1\n");
    const activate = createActivateCall({ controlPlaneUrl: `${cp.url}/`, credentialFile });
    cleanups.push(() => activate.close());
    expect(await activate.call("order s", new AbortController().signal)).toEqual({ service: "order s", from: 0, to: 1 });
    expect(cp.seen).toEqual([{ method: "POST", url: "/v1/services/order%20s/activate", authorization: "Bearer token-1" }]);
  });

  it("rejects with the status and the error's code when the control plane refuses", async () => {
    const cp = await startControlPlane((service) =>
      service === "ghost"
        ? { status: 404, body: { error: { code: "KEELSON_ERR_NOT_FOUND", message: "no service ghost" } } }
        : { status: 401, body: { error: { code: "KEELSON_ERR_UNAUTHENTICATED", message: "no credential" } } },
    );
    const activate = createActivateCall({ controlPlaneUrl: cp.url });
    cleanups.push(() => activate.close());
    const signal = new AbortController().signal;
    await expect(activate.call("orders", signal)).rejects.toThrow("the control plane answered 401 (KEELSON_ERR_UNAUTHENTICATED: no credential)");
    await expect(activate.call("ghost", signal)).rejects.toThrow("answered 404");
    // Without a credential file, no authorization header.
    expect(cp.seen[0]!.authorization).toBeUndefined();
  });
});
