// Checks, while the project runs, that each service's readiness path answers 2xx on every one
// of its replicas, asking each replica directly (not through the gateway's load balancing).
import type { ReplicaStatus, StatusReport } from "@keelson/protocol";
import type { Manifest } from "../manifest/index.js";
import { fail, pass, skip, warn, type CheckResult } from "./check-result.js";

/** What asking one replica found: undefined when it answered 2xx, else why not. */
async function probe(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    await res.body?.cancel();
    return res.status >= 200 && res.status < 300 ? undefined : `HTTP ${res.status}`;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    if ((err as Error).name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
    return cause ?? (err instanceof Error ? err.message : String(err));
  }
}

const LIVE: ReadonlySet<ReplicaStatus["state"]> = new Set(["starting", "ready", "unready", "backoff"]);

/**
 * A line per service: pass when its readiness path answers on every replica, fail naming the
 * replicas that do not (or when none of the replicas it should have runs), warn for a service
 * without a readiness path; skip when nothing runs, fail when the control plane's status could
 * not be read.
 */
export async function checkReadiness(input: { manifest: Manifest; status: StatusReport | undefined; statusError?: string }): Promise<CheckResult[]> {
  const { manifest, status } = input;
  if (status === undefined) {
    if (input.statusError === undefined) return [skip("readiness", "the project is not running; `keelson up` starts it")];
    return [fail("readiness", `the control plane runs but its status could not be read: ${input.statusError}`, "`keelson status` shows whether the control plane answers; if it hangs, `keelson down` and `keelson up` restart it")];
  }
  const results = await Promise.all(
    Object.entries(manifest.services).map(async ([name, spec]): Promise<CheckResult> => {
      const running = status.services.find((s) => s.name === name);
      if (running === undefined) return warn("readiness", `${name} is in the manifest but does not run`, "run `keelson up` to apply the manifest");
      const probeSpec = spec.readiness;
      if (probeSpec === undefined) {
        return warn("readiness", `${name} has no readiness path: its replicas get traffic as soon as they start`, `set services.${name}.readiness to a path that answers 2xx once the service can serve, e.g. readiness: /health`);
      }
      const replicas = running.instances.filter((i) => LIVE.has(i.state));
      if (replicas.length === 0) {
        if (running.replicas.desired === 0) return pass("readiness", `${name}: no replica runs (0 desired)`);
        return fail("readiness", `${name}: 0 of ${running.replicas.desired} replicas run`, `\`keelson status ${name}\` shows each replica; \`keelson logs ${name}\` shows why they stopped`);
      }
      if (spec.tls) {
        // Its replicas serve HTTPS with certificates of the project's CA; the control plane probes them with it.
        const unready = replicas.filter((i) => i.state !== "ready");
        return unready.length === 0
          ? pass("readiness", `${name}: ${replicas.length}/${replicas.length} replicas ready (TLS, as probed by the control plane)`)
          : fail("readiness", `${name}: ${unready.map((i) => `${i.id} is ${i.state}`).join(", ")}`, `\`keelson logs ${name}\` shows why; \`keelson status ${name}\` shows each replica`);
      }
      const answers = await Promise.all(replicas.map(async (i) => ({ replica: i, problem: await probe(new URL(probeSpec.path, i.url).href, probeSpec.timeout) })));
      const bad = answers.filter((a) => a.problem !== undefined);
      if (bad.length === 0) return pass("readiness", `${name}: ${probeSpec.path} answers on ${replicas.length}/${replicas.length} replicas`);
      return fail(
        "readiness",
        `${name}: ${probeSpec.path} fails on ${bad.length} of ${replicas.length} replicas: ${bad.map((a) => `${a.replica.id} (port ${a.replica.port}): ${a.problem}`).join(", ")}`,
        `\`keelson logs ${name}\` shows why; \`keelson status ${name}\` shows each replica`,
      );
    }),
  );
  return results;
}
