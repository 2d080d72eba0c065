// The operations endpoints of the control-plane API: the autoscaler's decisions, waking a service
// scaled to zero, chaos experiments, and the store's integrity check.
import { KeelsonError, type KeelsonEvent } from "@keelson/protocol";
import type { Autoscaler } from "../autoscale/index.js";
import { parseChaosRequest, type ChaosController } from "../runtime/index.js";
import type { Store } from "../store/index.js";
import type { IncomingMessage } from "node:http";
import { noteChange } from "./access.js";
import { readJson, sendJson, type Route } from "./http.js";

export interface OperationsDeps {
  store: Store;
  project: string;
  autoscaler?: Autoscaler;
  chaos?: ChaosController;
  actorOf: (req: IncomingMessage) => string;
  /** Throws NOT_FOUND for a service the project does not have; returns its name. */
  serviceParam: (name: string | undefined) => Promise<string>;
  /** The control plane's pid, which `keelson chaos controlplane` signals. */
  pid: number;
}

/**
 * Registers GET /v1/services/:name/autoscale, POST /v1/services/:name/activate, the chaos
 * endpoints (/v1/chaos, /v1/services/:name/chaos) and GET /v1/integrity.
 */
export function addOperationsRoutes(route: Route, deps: OperationsDeps): void {
  const { store, project, actorOf, serviceParam } = deps;

  function requireAutoscaler(): Autoscaler {
    if (!deps.autoscaler) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", "this control plane runs without an autoscaler");
    return deps.autoscaler;
  }
  function requireChaos(): ChaosController {
    if (!deps.chaos) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", "this control plane runs without chaos tooling");
    return deps.chaos;
  }

  route("GET", "/v1/services/:name/autoscale", "read", async (_req, res, params, u) => {
    const name = await serviceParam(params.name);
    const limitText = u.searchParams.get("limit");
    const limit = limitText === null ? 20 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `limit: expected an integer 1-500, got ${JSON.stringify(limitText)}`);
    const events: KeelsonEvent[] = await store.listEvents({ project, subject: `service/${name}`, kinds: ["autoscale.scaled", "autoscale.held", "service.activated"], descending: true, limit });
    sendJson(res, 200, { service: name, status: requireAutoscaler().status(name) ?? null, events });
  });

  // The gateway asks for a replica of a service scaled to zero when a request arrives for it.
  route("POST", "/v1/services/:name/activate", "watch", async (req, res, params) => {
    const name = await serviceParam(params.name);
    const result = await requireAutoscaler().activate(name);
    sendJson(res, 202, { service: name, ...result });
  });

  route("GET", "/v1/chaos", "read", async (_req, res) => sendJson(res, 200, { experiments: requireChaos().list() }));

  // Experiments on every service need an admin; on one service, a deployer of its team.
  route("POST", "/v1/chaos", "admin", async (req, res) => {
    const body = await readJson(req);
    if (body.kind === "controlplane") {
      // The CLI stops and restarts the control plane itself; this records the injection first.
      const signal = controlPlaneSignal(body);
      await store.appendEvent({ project, kind: "chaos.injected", actor: actorOf(req), subject: `project/${project}`, details: { kind: "controlplane", pid: deps.pid, signal } });
      noteChange(req, { after: { kind: "controlplane", pid: deps.pid, signal } });
      sendJson(res, 202, { kind: "controlplane", pid: deps.pid, signal });
      return;
    }
    if (body.service !== undefined) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "service: an experiment on one service goes to POST /v1/services/<name>/chaos");
    const experiment = await requireChaos().start(parseChaosRequest(body), actorOf(req));
    noteChange(req, { after: { experiment: experiment.id, kind: experiment.kind } });
    sendJson(res, 201, experiment);
  });
  route("POST", "/v1/services/:name/chaos", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    if (body.service !== undefined && body.service !== name) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `service: the path names "${name}", the body "${String(body.service)}"`);
    const experiment = await requireChaos().start(parseChaosRequest({ ...body, service: name }), actorOf(req));
    noteChange(req, { after: { experiment: experiment.id, kind: experiment.kind } });
    sendJson(res, 201, experiment);
  });
  route("DELETE", "/v1/chaos/:id", "admin", async (req, res, params) => {
    sendJson(res, 200, await requireChaos().stop(params.id as string, actorOf(req)));
  });
  route("DELETE", "/v1/services/:name/chaos/:id", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const chaos = requireChaos();
    const found = chaos.get(params.id as string);
    if (found === undefined || found.service !== name) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no chaos experiment "${params.id}" on service "${name}"`);
    sendJson(res, 200, await chaos.stop(found.id, actorOf(req)));
  });

  route("GET", "/v1/integrity", "read", async (_req, res) => sendJson(res, 200, await store.checkIntegrity()));
}

/** The signal of a `controlplane` injection (what `keelson chaos controlplane --signal` sends), checked as parseChaosRequest checks the others. */
function controlPlaneSignal(body: Record<string, unknown>): "SIGKILL" | "SIGTERM" {
  for (const field of Object.keys(body)) {
    if (field !== "kind" && field !== "signal") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: not an option of a controlplane injection (options: signal)`);
  }
  const signal = body.signal ?? "SIGKILL";
  if (signal !== "SIGKILL" && signal !== "SIGTERM") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `signal: expected "SIGKILL" or "SIGTERM", got ${JSON.stringify(body.signal)}`);
  return signal;
}
