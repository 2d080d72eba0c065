// The flag endpoints of the control-plane API: CRUD with history and rollback, the kill
// switch, evaluation, the change stream (Server-Sent Events), OFREP, usage and stale flags, and
// scheduled changes (whose timer runs from start() to close()).
import type { IncomingMessage, ServerResponse } from "node:http";
import { importFlagd, KeelsonError, exportFlagd } from "@keelson/protocol";
import {
  createFlagSchedule,
  createFlagUsage,
  findStaleFlags,
  flagTag,
  ofrepContext,
  ofrepEvaluate,
  ofrepEvaluateAll,
  readDeclaredFlags,
  ScheduleRequestSchema,
  type FlagService,
  type FlagSnapshot,
  type FlagUsage,
  type GatewayFlagRequests,
} from "../flags/index.js";
import type { Store } from "../store/index.js";
import { readJson, sendJson, type Route } from "./http.js";


/** What a client sees of a snapshot. */
function view(s: FlagSnapshot) {
  return { revision: s.revision, etag: s.etag, updatedAt: s.updatedAt ?? null, flags: s.set.flags, ...(s.set.$evaluators ? { $evaluators: s.set.$evaluators } : {}) };
}

export interface FlagRoutesDeps {
  flags: FlagService;
  actorOf(req: IncomingMessage): string;
  store: Store;
  project: string;
  /** Wall clock for usage, staleness and scheduled changes (default: the system clock). */
  now?: () => Date;
  log?: { warn(obj: object, msg?: string): void };
  /** The gateways' per-variant flag requests (the metric store): requests a flag routed count as its evaluations. */
  gateway?: GatewayFlagRequests;
}

export interface FlagRoutes {
  /** Evaluation counts, also fed by the SDK's event batches. */
  readonly usage: FlagUsage;
  /** Applies overdue scheduled changes and starts checking every second (once the server listens). */
  start(): Promise<void>;
  /** Ends every open stream, stops the schedule timer and writes pending evaluation counts. */
  close(): Promise<void>;
}

/** A positive whole number of days from the query, or undefined when absent. */
function daysParam(u: URL, name: string): number | undefined {
  const text = u.searchParams.get(name);
  if (text === null || text === "") return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${name}: expected a whole number of days, got ${JSON.stringify(text)}`);
  return n;
}

/** Registers the flag routes. */
export function addFlagRoutes(route: Route, deps: FlagRoutesDeps): FlagRoutes {
  const { flags, actorOf, store, project } = deps;
  const now = deps.now ?? (() => new Date());
  const usage = createFlagUsage({
    store,
    project,
    flags,
    now,
    onError: (err) => deps.log?.warn({ err }, "writing flag evaluation counts failed; retrying"),
    ...(deps.gateway ? { gateway: deps.gateway } : {}),
  });
  const schedule = createFlagSchedule({ store, project, flags, now, onError: (err) => deps.log?.warn({ err }, "applying scheduled flag changes failed; retrying") });
  const streams = new Set<ServerResponse>();
  const frame = (s: FlagSnapshot) => `event: flags\nid: ${s.revision}\ndata: ${JSON.stringify(view(s))}\n\n`;
  const unsubscribe = flags.subscribe((s) => {
    // One serialization per change, whatever the number of listeners.
    const text = frame(s);
    for (const res of streams) res.write(text);
  });
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(": heartbeat\n\n");
  }, 15_000);
  heartbeat.unref();

  route("GET", "/v1/flags", "evaluate", async (req, res) => {
    // Pollers send the last ETag back and get 304 while nothing changed. Weak comparison, as
    // for OFREP: a proxy that compresses the answer hands the client W/"…" to send back.
    const s = await flags.snapshot();
    const etag = `"${s.etag}"`;
    const inm = req.headers["if-none-match"];
    if (typeof inm === "string" && inm.split(",").some((t) => t.trim() === etag || t.trim() === `W/${etag}`)) return sendJson(res, 304, undefined, { etag });
    sendJson(res, 200, view(s), { etag });
  });
  route("PUT", "/v1/flags", "admin", async (req, res) => {
    // A whole set: a Keelson set ({ flags, $evaluators }) or a flagd file, which has the same shape.
    const body = await readJson(req);
    const imported = importFlagd(JSON.stringify(body));
    if (!imported.ok) {
      const lines = imported.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`);
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `invalid flag set:\n  ${lines.join("\n  ")}`, { details: { issues: imported.issues } });
    }
    sendJson(res, 200, view(await flags.replace(imported.set, actorOf(req), { source: "import" })));
  });
  route("GET", "/v1/flags/export", "read", async (_req, res) => {
    const text = exportFlagd((await flags.snapshot()).set);
    res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
    res.end(text);
  });
  route("GET", "/v1/flags/stream", "evaluate", async (req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.flushHeaders();
    streams.add(res);
    req.once("close", () => streams.delete(res));
    res.write(frame(await flags.snapshot()));
  });
  route("GET", "/v1/flags/usage", "read", async (_req, res) => sendJson(res, 200, await usage.read()));
  route("GET", "/v1/flags/stale", "read", async (_req, res, _params, u) => {
    const days = daysParam(u, "days");
    const unchangedDays = daysParam(u, "unchangedDays");
    sendJson(res, 200, await findStaleFlags({ flags, usage, now: now(), ...(days !== undefined ? { days } : {}), ...(unchangedDays !== undefined ? { unchangedDays } : {}) }));
  });
  route("GET", "/v1/flags/schedule", "read", async (_req, res) => sendJson(res, 200, { changes: await schedule.list() }));
  route("POST", "/v1/flags/schedule", "admin", async (req, res) => {
    const parsed = ScheduleRequestSchema.safeParse(await readJson(req));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`, { details: { issues: parsed.error.issues.slice(0, 10) } });
    }
    sendJson(res, 201, await schedule.add(parsed.data, actorOf(req)));
  });
  route("DELETE", "/v1/flags/schedule/:id", "admin", async (req, res, params) => sendJson(res, 200, await schedule.cancel(params.id as string, actorOf(req))));
  route("GET", "/v1/flags/:key", "read", async (_req, res, params) => {
    const s = await flags.snapshot();
    const key = params.key as string;
    const flag = s.set.flags[key];
    if (!flag) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `flag "${key}" does not exist; \`keelson flags list\` shows the flags`);
    // Declared in keelson.yaml: the next `keelson up` puts the manifest's definition back.
    const declared = (await readDeclaredFlags({ store, project })).flags.includes(key);
    sendJson(res, 200, { key, revision: s.revision, flag, declared, tag: flagTag(flag) }, { etag: flagTag(flag) });
  });
  route("PUT", "/v1/flags/:key", { flag: "key" }, async (req, res, params) => {
    const key = params.key as string;
    // If-Match: the tag the caller read (GET's etag); a flag changed since is a 409, not overwritten.
    const ifMatch = req.headers["if-match"];
    const s = await flags.put(key, await readJson(req), actorOf(req), typeof ifMatch === "string" && ifMatch.trim() !== "" ? { ifMatch: ifMatch.trim() } : {});
    sendJson(res, 200, { key, revision: s.revision, flag: s.set.flags[key], tag: flagTag(s.set.flags[key]) }, { etag: flagTag(s.set.flags[key]) });
  });
  route("DELETE", "/v1/flags/:key", { flag: "key" }, async (req, res, params) => {
    const s = await flags.remove(params.key as string, actorOf(req));
    sendJson(res, 200, { key: params.key, revision: s.revision });
  });
  route("POST", "/v1/flags/:key/kill", { flag: "key" }, async (req, res, params) => {
    const key = params.key as string;
    const s = await flags.kill(key, actorOf(req));
    sendJson(res, 200, { key, revision: s.revision, flag: s.set.flags[key] });
  });
  route("GET", "/v1/flags/:key/history", "read", async (_req, res, params, u) => {
    const limit = Number(u.searchParams.get("limit") ?? "50");
    sendJson(res, 200, { key: params.key, changes: await flags.history(params.key as string, Number.isInteger(limit) && limit > 0 ? Math.min(limit, 1000) : 50) });
  });
  route("POST", "/v1/flags/:key/rollback", { flag: "key" }, async (req, res, params) => {
    const key = params.key as string;
    const body = await readJson(req);
    if (typeof body.to !== "number" || !Number.isInteger(body.to) || body.to < 1) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `to: expected the sequence number of a change (from \`keelson flags history ${key}\`), got ${JSON.stringify(body.to)}`);
    }
    const s = await flags.rollback(key, body.to, actorOf(req));
    sendJson(res, 200, { key, revision: s.revision, flag: s.set.flags[key] ?? null });
  });
  route("POST", "/v1/flags/:key/evaluate", "evaluate", async (req, res, params) => {
    const parsed = ofrepContext(await readJson(req));
    if (!parsed.ok) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${parsed.failure.errorCode}: ${parsed.failure.errorDetails}`);
    const key = params.key as string;
    const snap = await flags.snapshot();
    if (snap.set.flags[key]) usage.record(key);
    sendJson(res, 200, snap.compiled.evaluate(key, parsed.context));
  });

  // OFREP: errors in its own shape, never the Keelson error envelope.
  const ofrepBody = async (req: IncomingMessage): Promise<unknown> => {
    try {
      return await readJson(req);
    } catch {
      return "unparseable";
    }
  };
  route("POST", "/ofrep/v1/evaluate/flags/:key", "evaluate", async (req, res, params) => {
    const key = params.key as string;
    const snap = await flags.snapshot();
    const answer = ofrepEvaluate(snap, key, await ofrepBody(req));
    if (snap.set.flags[key]) usage.record(key);
    sendJson(res, answer.status, answer.body, answer.headers);
  });
  route("POST", "/ofrep/v1/evaluate/flags", "evaluate", async (req, res) => {
    const inm = req.headers["if-none-match"];
    const snap = await flags.snapshot();
    const answer = ofrepEvaluateAll(snap, await ofrepBody(req), typeof inm === "string" ? inm : undefined);
    // A 304 is the client going on with the values it has: the flags are still in use.
    if (answer.status !== 400) for (const key of Object.keys(snap.set.flags)) usage.record(key);
    sendJson(res, answer.status, answer.body, answer.headers);
  });

  // Counting began when this control plane first ran with it: written now, not at the first read.
  usage.read().catch((err: unknown) => deps.log?.warn({ err }, "reading flag evaluation counts failed"));

  return {
    usage,
    start: () => schedule.start(),
    async close() {
      clearInterval(heartbeat);
      unsubscribe();
      for (const res of streams) res.end();
      streams.clear();
      await schedule.close();
      await usage.close().catch((err: unknown) => deps.log?.warn({ err }, "writing flag evaluation counts failed"));
    },
  };
}
