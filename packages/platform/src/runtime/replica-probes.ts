// Readiness and liveness probes for replicas that listen on a local port: HTTP GET (2xx
// passes; HTTPS with a client certificate for replicas that serve TLS) or, without a readiness
// probe, a TCP connect. Probe loops count consecutive failures and report state changes; they
// never overlap checks of one replica.
import { stat, readFile } from "node:fs/promises";
import { get, type IncomingMessage } from "node:http";
import { get as httpsGet } from "node:https";
import { connect } from "node:net";
import { join } from "node:path";
import type { ProbeConfig, ReplicaSpec } from "./runtime-driver.js";

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/** The client certificate, its key and the CA a probe of a TLS replica uses (PEM). */
export interface ProbeTls {
  cert: string;
  key: string;
  ca: string;
}

const TLS_FILES = ["cert.pem", "key.pem", "ca.pem"] as const;
/** Per folder, the files as last read and their mtimes: the files are renewed in place, so each probe stats them. */
const tlsCache = new Map<string, { stamp: string; tls: ProbeTls }>();

/** cert.pem, key.pem and ca.pem of `dir`, read again only when one of them changed. */
export async function readProbeTls(dir: string): Promise<ProbeTls> {
  const stamp = (await Promise.all(TLS_FILES.map(async (name) => (await stat(join(dir, name))).mtimeMs))).join(",");
  const cached = tlsCache.get(dir);
  if (cached?.stamp === stamp) return cached.tls;
  const [cert, key, ca] = (await Promise.all(TLS_FILES.map((name) => readFile(join(dir, name), "utf8")))) as [string, string, string];
  const tls = { cert, key, ca };
  tlsCache.set(dir, { stamp, tls });
  return tls;
}

/**
 * GET http://127.0.0.1:<port><path> (https with `tls`: presenting its certificate, trusting
 * only its CA, and expecting a server certificate for "localhost"); passes on 2xx within timeoutMs.
 */
export function checkHttp(port: number, path: string, timeoutMs: number, tls?: ProbeTls): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    // agent: false so that no pooled keep-alive socket outlives the check or hides a dead server.
    const onResponse = (res: IncomingMessage) => {
      res.resume();
      const status = res.statusCode ?? 0;
      settle(status >= 200 && status < 300 ? { ok: true } : { ok: false, reason: `GET ${path} answered ${status}` });
    };
    const request = { host: "127.0.0.1", port, path, agent: false, headers: { "user-agent": "keelson-probe" } } as const;
    const req =
      tls === undefined
        ? get(request, onResponse)
        : httpsGet({ ...request, cert: tls.cert, key: tls.key, ca: tls.ca, servername: "localhost", minVersion: "TLSv1.2" }, onResponse);
    req.on("error", (err) => settle({ ok: false, reason: `GET ${path}: ${err.message}` }));
    const timer = setTimeout(() => settle({ ok: false, reason: `GET ${path}: no answer within ${timeoutMs} ms` }), timeoutMs);
  });
}

/** Passes when 127.0.0.1:<port> accepts a TCP connection within timeoutMs. */
export function checkTcp(port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => settle({ ok: true }));
    socket.once("error", (err) => settle({ ok: false, reason: `port ${port}: ${err.message}` }));
    const timer = setTimeout(() => settle({ ok: false, reason: `port ${port}: no connection within ${timeoutMs} ms` }), timeoutMs);
  });
}

/**
 * The probe used when a spec has no readiness probe: a TCP connect, quick until the
 * first success so a fresh replica is published soon, then at the manifest's default pace.
 */
export const PORT_PROBE = { firstIntervalMs: 100, intervalMs: 500, timeoutMs: 1000, failureThreshold: 3 } as const;

export interface ProbeLoopOptions {
  spec: ReplicaSpec;
  /** Readiness passed (the first time, or again after "unready"). */
  onReady: () => void;
  /** Readiness failed failureThreshold times in a row after having passed. */
  onUnready: (reason: string) => void;
  /** Liveness failed failureThreshold times in a row; the loops stop. */
  onLivenessFailed: (reason: string) => void;
  /**
   * Start from ready (an adopted replica that was ready): no onReady at the first pass,
   * onUnready only after failureThreshold failures, liveness from the start.
   */
  initiallyReady?: boolean;
}

/** Starts readiness (and, after the first ready, liveness) checks; returns a stop function. */
export function startProbeLoops(options: ProbeLoopOptions): () => void {
  const { spec } = options;
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const later = (fn: () => void, ms: number): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!stopped) fn();
    }, ms);
    timer.unref();
    timers.add(timer);
  };

  const readiness: ProbeConfig | undefined = spec.readiness;
  const tlsDir = spec.tls?.clientDir;
  /** An HTTP(S) check; unreadable certificate files fail the check (and say why) rather than the loop. */
  const probeHttp = async (probe: ProbeConfig): Promise<ProbeResult> => {
    if (tlsDir === undefined) return checkHttp(spec.port, probe.path, probe.timeoutMs);
    let tls: ProbeTls;
    try {
      tls = await readProbeTls(tlsDir);
    } catch (err) {
      return { ok: false, reason: `GET ${probe.path}: cannot read the probe's client certificate in ${tlsDir}: ${err instanceof Error ? err.message : String(err)}` };
    }
    return checkHttp(spec.port, probe.path, probe.timeoutMs, tls);
  };
  const checkReady = (): Promise<ProbeResult> => (readiness === undefined ? checkTcp(spec.port, PORT_PROBE.timeoutMs) : probeHttp(readiness));
  const threshold = readiness?.failureThreshold ?? PORT_PROBE.failureThreshold;
  let ready = options.initiallyReady === true;
  let everReady = ready;
  let failures = 0;

  const readinessTick = async (): Promise<void> => {
    const result = await checkReady();
    if (stopped) return;
    if (result.ok) {
      failures = 0;
      if (!ready) {
        ready = true;
        options.onReady();
        if (!everReady) {
          everReady = true;
          // Liveness only starts once the replica was ready: a slow start is not a dead process.
          if (spec.liveness !== undefined) later(() => void livenessTick(spec.liveness as ProbeConfig), spec.liveness.intervalMs);
        }
      }
    } else {
      failures += 1;
      if (ready && failures >= threshold) {
        ready = false;
        options.onUnready(`readiness failed ${failures} times: ${result.reason}`);
      }
    }
    // Quick until the first success so a fresh replica is published soon (a deploy waits on
    // it), then at the configured pace.
    const interval = everReady
      ? (readiness?.intervalMs ?? PORT_PROBE.intervalMs)
      : Math.min(readiness?.intervalMs ?? PORT_PROBE.firstIntervalMs, PORT_PROBE.firstIntervalMs);
    later(() => void readinessTick(), interval);
  };

  let livenessFailures = 0;
  const livenessTick = async (probe: ProbeConfig): Promise<void> => {
    const result = await probeHttp(probe);
    if (stopped) return;
    if (result.ok) {
      livenessFailures = 0;
    } else {
      livenessFailures += 1;
      if (livenessFailures >= probe.failureThreshold) {
        stop();
        options.onLivenessFailed(`liveness failed ${livenessFailures} times: ${result.reason}`);
        return;
      }
    }
    later(() => void livenessTick(probe), probe.intervalMs);
  };

  const stop = (): void => {
    stopped = true;
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  };

  if (everReady && spec.liveness !== undefined) later(() => void livenessTick(spec.liveness as ProbeConfig), spec.liveness.intervalMs);
  void readinessTick();
  return stop;
}
