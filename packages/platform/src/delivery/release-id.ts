// A release is identified by the content of what runs: the sources and the config the
// replicas start with. Scaling or routing changes keep the release; env or command changes make a new one.
import type { ServiceSpec } from "../manifest/index.js";
import { canonicalJson, sha256 } from "./canonical-json.js";

/**
 * The parts of a service's spec that are baked into a release: how it is built and tested
 * (path, build, test, pipeline) and what its replicas start with (start, env, secrets, and `tls`
 * only when on, so releases made before the field existed keep their ids).
 */
export function releaseConfig(spec: ServiceSpec): Record<string, unknown> {
  return { path: spec.path, build: spec.build, test: spec.test, stages: spec.pipeline?.stages, include: spec.pipeline?.include, start: spec.start, env: spec.env, secrets: spec.secrets, ...(spec.tls ? { tls: true } : {}) };
}

export function configHash(spec: ServiceSpec): string {
  return sha256(canonicalJson(releaseConfig(spec)));
}

/** `r-` + 12 hex digits of sha256(sourceHash, configHash). */
export function releaseId(sourceHash: string, cfgHash: string): string {
  return `r-${sha256(`${sourceHash}\n${cfgHash}`).slice(0, 12)}`;
}
