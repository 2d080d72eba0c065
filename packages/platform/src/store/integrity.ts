// Keelson's own consistency rules over any Store: what a crash mid-write must never leave behind.
import type { IntegrityReport, Store } from "./store.js";

/**
 * Checks references between services, releases and replicas through the Store interface, after
 * the engine's own check (its problems and event count are passed in).
 */
export async function checkReferences(store: Store, engine: { name: string; problems: string[]; events: number }): Promise<IntegrityReport> {
  const problems = [...engine.problems];
  const checked = { engine: engine.name, projects: 0, services: 0, releases: 0, replicas: 0, events: engine.events };
  const projects = await store.listProjects();
  checked.projects = projects.length;
  for (const project of projects) {
    const services = await store.listServices(project.name);
    checked.services += services.length;
    const releaseIds = new Set<string>();
    for (const service of services) {
      const releases = await store.listReleases(project.name, service.name);
      checked.releases += releases.length;
      for (const r of releases) releaseIds.add(r.id);
      if (service.release !== undefined && !releases.some((r) => r.id === service.release)) {
        problems.push(`service ${project.name}/${service.name} points at release ${service.release}, which is not stored`);
      }
    }
    const names = new Set(services.map((s) => s.name));
    const replicas = await store.listReplicas(project.name);
    checked.replicas += replicas.length;
    for (const r of replicas) {
      if (!names.has(r.service)) problems.push(`replica ${r.id} belongs to service ${r.service}, which is not stored`);
      else if (!releaseIds.has(r.release) && (await store.getRelease(r.release)) === undefined) problems.push(`replica ${r.id} runs release ${r.release}, which is not stored`);
    }
  }
  return { ok: problems.length === 0, problems, checked };
}
