// Chaos experiments (`keelson chaos`): kill or hang replicas at an interval, or have the gateway
// inject latency or errors into a share of a service's requests. Every experiment is bounded in
// time, every injection is an event, and stopping one undoes what it did (hung replicas resume,
// faults leave the routing table). Gateway faults also carry their end time, so they stop on
// time even when this control plane is gone.
import { KeelsonError, type Fault } from "@keelson/protocol";
import type { Store } from "../store/index.js";
import type { RuntimeDriver } from "./runtime-driver.js";

export const CHAOS_KINDS = ["kill", "hang", "latency", "error"] as const;
export type ChaosKind = (typeof CHAOS_KINDS)[number];

/** What `keelson chaos` asks for; checked by `parseChaosRequest`. */
export interface ChaosRequest {
  kind: ChaosKind;
  /** Absent: every service (kill and hang only). */
  service?: string;
  /** latency/error: a release id or split label; kill/hang: a release id. Absent: every version. */
  version?: string;
  /** How long the experiment runs (ms, at most an hour). */
  durationMs: number;
  /** kill/hang: time between injections (ms, default 10 s). */
  intervalMs?: number;
  /** latency/error: share of requests, 0-1 (default 1). */
  share?: number;
  /** latency: the delay added (ms). */
  delayMs?: number;
  /** error: the status answered (default 503). */
  status?: number;
  /** hang: how long each hung replica stays hung (ms, default: until the experiment ends). */
  hangMs?: number;
  /** kill/hang: may hit a service's last ready replica (default false: a replica fault, not an outage). */
  allowLast?: boolean;
}

export interface ChaosInjection {
  at: string;
  replica: string;
  service: string;
  pid: number | undefined;
}

export interface ChaosExperiment extends ChaosRequest {
  id: string;
  actor: string;
  startedAt: string;
  endsAt: string;
  state: "running" | "finished" | "stopped";
  stoppedAt?: string;
  stoppedBy?: string;
  /** Replicas killed or hung. */
  injections: number;
  /** Rounds where no replica could be hit (none ready, or only last ones without allowLast). */
  skipped: number;
  recent: ChaosInjection[];
}

export interface ChaosControllerOptions {
  store: Store;
  project: string;
  driver: RuntimeDriver;
  /** Services known to the project (for checking a named service). */
  services: () => Promise<string[]>;
  now?: () => number;
  random?: () => number;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: object) => void;
}

export interface ChaosController {
  start(request: ChaosRequest, actor: string): Promise<ChaosExperiment>;
  /** Stops a running experiment (undoing hangs and faults); a finished one is returned as it is. */
  stop(id: string, actor: string): Promise<ChaosExperiment>;
  get(id: string): ChaosExperiment | undefined;
  /** Running experiments, then the last finished ones, newest first. */
  list(): ChaosExperiment[];
  /** The gateway faults of running experiments for a service. */
  faults(service: string): Fault[];
  /** Called when the faults change (start or end of a latency/error experiment). */
  subscribe(listener: () => void): () => void;
  /** Stops every experiment (the control plane is exiting). */
  close(): Promise<void>;
}

const MAX_DURATION_MS = 3_600_000;
const MAX_RUNNING = 10;
const KEEP_FINISHED = 20;
const RECENT = 20;

interface Running {
  experiment: ChaosExperiment;
  timers: NodeJS.Timeout[];
  /** Replicas this experiment hung and has not resumed (resumed when it ends; harmless if the runtime restarted them). */
  paused: Set<string>;
}

/**
 * Checks an API body, naming the bad field. Durations are milliseconds.
 *
 * @example
 * parseChaosRequest({ kind: "kill", service: "orders", durationMs: 60_000, intervalMs: 1_000 });
 */
export function parseChaosRequest(body: Record<string, unknown>): ChaosRequest {
  const bad = (field: string, expected: string): never => {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: expected ${expected}, got ${JSON.stringify(body[field])}`);
  };
  const kind = body.kind;
  if (typeof kind !== "string" || !(CHAOS_KINDS as readonly string[]).includes(kind)) bad("kind", CHAOS_KINDS.join(", "));
  const k = kind as ChaosKind;
  const num = (field: string, min: number, max: number, integer = true): number | undefined => {
    const v = body[field];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) bad(field, `${integer ? "an integer" : "a number"} from ${min} to ${max}`);
    return v as number;
  };
  const str = (field: string): string | undefined => {
    const v = body[field];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v.length === 0 || v.length > 200) bad(field, "a non-empty string");
    return v as string;
  };
  const allowed: Record<ChaosKind, string[]> = {
    kill: ["kind", "service", "version", "durationMs", "intervalMs", "allowLast"],
    hang: ["kind", "service", "version", "durationMs", "intervalMs", "hangMs", "allowLast"],
    latency: ["kind", "service", "version", "durationMs", "share", "delayMs"],
    error: ["kind", "service", "version", "durationMs", "share", "status"],
  };
  for (const field of Object.keys(body)) {
    if (!allowed[k].includes(field)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `${field}: not an option of a ${k} experiment (options: ${allowed[k].slice(1).join(", ")})`);
  }
  const durationMs = num("durationMs", 1, MAX_DURATION_MS) ?? bad("durationMs", `an integer from 1 to ${MAX_DURATION_MS} (an hour)`);
  const request: ChaosRequest = { kind: k, durationMs };
  const service = str("service");
  if (service !== undefined) request.service = service;
  const version = str("version");
  if (version !== undefined) request.version = version;
  if (k === "kill" || k === "hang") {
    request.intervalMs = num("intervalMs", 100, MAX_DURATION_MS) ?? 10_000;
    if (body.allowLast !== undefined) {
      if (typeof body.allowLast !== "boolean") bad("allowLast", "true or false");
      request.allowLast = body.allowLast as boolean;
    }
    const hangMs = num("hangMs", 1, MAX_DURATION_MS);
    if (hangMs !== undefined) request.hangMs = hangMs;
  } else {
    if (service === undefined) bad("service", "the service whose requests get the fault");
    request.share = num("share", 0, 1, false) ?? 1;
    if (request.share === 0) bad("share", "a number above 0 and at most 1");
    if (k === "latency") request.delayMs = num("delayMs", 1, 600_000) ?? bad("delayMs", "an integer from 1 to 600000 (ms)");
    else request.status = num("status", 400, 599) ?? 503;
  }
  return request;
}

/** Creates the controller; nothing runs until `start`. */
export function createChaosController(options: ChaosControllerOptions): ChaosController {
  const { store, project, driver } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const log = options.log ?? (() => undefined);
  const running = new Map<string, Running>();
  const finished: ChaosExperiment[] = [];
  const listeners = new Set<() => void>();
  let counter = 0;

  async function event(kind: "chaos.started" | "chaos.injected" | "chaos.stopped", actor: string, subject: string, details: Record<string, unknown>): Promise<void> {
    try {
      await store.appendEvent({ project, kind, actor, subject, details });
    } catch (err) {
      log("error", "could not record chaos event", { err, kind });
    }
  }

  function changed(): void {
    for (const l of [...listeners]) {
      try {
        l();
      } catch (err) {
        log("error", "chaos listener failed", { err });
      }
    }
  }

  /**
   * Ready replicas this experiment may hit now: never one that is hung already (a hung replica
   * that the runtime restarted runs again and may be hung again), never a service's last ready
   * one unless allowed.
   */
  function candidates(run: Running): string[] {
    const x = run.experiment;
    const mine = driver.list().filter((r) => r.spec.project === project);
    const ready = mine.filter((r) => r.state === "ready" && r.paused !== true);
    const readyByService = new Map<string, number>();
    for (const r of ready) readyByService.set(r.spec.service, (readyByService.get(r.spec.service) ?? 0) + 1);
    return ready
      .filter((r) => (x.service === undefined || r.spec.service === x.service) && (x.version === undefined || r.spec.release === x.version))
      .filter((r) => x.allowLast === true || (readyByService.get(r.spec.service) ?? 0) > 1)
      .map((r) => r.spec.id)
      .sort();
  }

  async function inject(run: Running): Promise<void> {
    const x = run.experiment;
    if (x.state !== "running") return;
    const ids = candidates(run);
    if (ids.length === 0) {
      x.skipped++;
      return;
    }
    const id = ids[Math.min(ids.length - 1, Math.floor(random() * ids.length))] as string;
    const info = driver.get(id);
    const hit = x.kind === "kill" ? await driver.kill(id) : await driver.pause(id);
    if (!hit || info === undefined) {
      x.skipped++;
      return;
    }
    if (x.kind === "hang") {
      run.paused.add(id);
      if (x.hangMs !== undefined && x.hangMs < Date.parse(x.endsAt) - now()) {
        const t = setTimeout(() => void resume(run, id), x.hangMs);
        t.unref();
        run.timers.push(t);
      }
    }
    x.injections++;
    const injection: ChaosInjection = { at: new Date(now()).toISOString(), replica: id, service: info.spec.service, pid: info.pid };
    x.recent.unshift(injection);
    x.recent.length = Math.min(x.recent.length, RECENT);
    log("warn", `chaos: ${x.kind === "kill" ? "killed" : "hung"} a replica`, { experiment: x.id, replica: id, pid: info.pid });
    await event("chaos.injected", x.actor, `replica/${id}`, { experiment: x.id, kind: x.kind, service: info.spec.service, release: info.spec.release, pid: info.pid });
  }

  async function resume(run: Running, id: string): Promise<void> {
    if (!run.paused.delete(id)) return;
    try {
      await driver.resume(id);
    } catch (err) {
      log("warn", "chaos: could not resume a hung replica", { err, replica: id });
    }
  }

  async function end(run: Running, state: "finished" | "stopped", actor: string): Promise<void> {
    const x = run.experiment;
    if (x.state !== "running") return;
    x.state = state;
    x.stoppedAt = new Date(now()).toISOString();
    if (state === "stopped") x.stoppedBy = actor;
    for (const t of run.timers) clearTimeout(t);
    run.timers.length = 0;
    await Promise.all([...run.paused].map((id) => resume(run, id)));
    running.delete(x.id);
    finished.unshift(x);
    finished.length = Math.min(finished.length, KEEP_FINISHED);
    if (x.kind === "latency" || x.kind === "error") changed();
    await event("chaos.stopped", actor, subjectOf(x), { experiment: x.id, kind: x.kind, state, injections: x.injections, skipped: x.skipped });
  }

  return {
    async start(request, actor) {
      if (running.size >= MAX_RUNNING) {
        throw new KeelsonError("KEELSON_ERR_CONFLICT", `${running.size} chaos experiments are running already (at most ${MAX_RUNNING}); stop one with \`keelson chaos stop <id>\``);
      }
      if (request.service !== undefined && !(await options.services()).includes(request.service)) {
        throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service: "${request.service}" does not exist in project "${project}"`);
      }
      const started = now();
      const id = `chaos-${started.toString(36)}-${(++counter).toString(36)}`;
      const experiment: ChaosExperiment = {
        ...request,
        id,
        actor,
        startedAt: new Date(started).toISOString(),
        endsAt: new Date(started + request.durationMs).toISOString(),
        state: "running",
        injections: 0,
        skipped: 0,
        recent: [],
      };
      const run: Running = { experiment, timers: [], paused: new Set() };
      running.set(id, run);
      await event("chaos.started", actor, subjectOf(experiment), { experiment: id, ...request });
      const stopTimer = setTimeout(() => void end(run, "finished", actor), request.durationMs);
      stopTimer.unref();
      run.timers.push(stopTimer);
      if (request.kind === "kill" || request.kind === "hang") {
        // The first injection at once, then one per interval until the end.
        await inject(run);
        const tick = setInterval(() => void inject(run).catch((err: unknown) => log("error", "chaos injection failed", { err, experiment: id })), request.intervalMs);
        tick.unref();
        run.timers.push(tick as unknown as NodeJS.Timeout);
      } else {
        changed();
        await event("chaos.injected", actor, subjectOf(experiment), { experiment: id, kind: request.kind, share: request.share, ...(request.delayMs ? { delayMs: request.delayMs } : { status: request.status }), until: experiment.endsAt });
      }
      return experiment;
    },
    async stop(id, actor) {
      const run = running.get(id);
      if (run) {
        await end(run, "stopped", actor);
        return run.experiment;
      }
      const done = finished.find((x) => x.id === id);
      if (done) return done;
      throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no chaos experiment "${id}"; \`keelson chaos list\` shows them`);
    },
    get(id) {
      return running.get(id)?.experiment ?? finished.find((x) => x.id === id);
    },
    list() {
      return [...[...running.values()].map((r) => r.experiment).sort((a, b) => b.startedAt.localeCompare(a.startedAt)), ...finished];
    },
    faults(service) {
      const out: Fault[] = [];
      for (const { experiment: x } of running.values()) {
        if ((x.kind !== "latency" && x.kind !== "error") || x.service !== service) continue;
        out.push({
          id: x.id,
          ...(x.version === undefined ? {} : { version: x.version }),
          share: x.share ?? 1,
          ...(x.kind === "latency" ? { delayMs: x.delayMs as number } : { abortStatus: x.status ?? 503 }),
          until: x.endsAt,
        });
      }
      return out.sort((a, b) => a.id.localeCompare(b.id));
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      await Promise.all([...running.values()].map((r) => end(r, "stopped", "controlplane")));
    },
  };
}

function subjectOf(x: ChaosRequest): string {
  return x.service === undefined ? "services/*" : `service/${x.service}`;
}
