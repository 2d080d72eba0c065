// Checks that every port the manifest names is free, or held by this project's own running
// processes (its control plane, gateway or replicas), by trying to listen on it.
import { createServer } from "node:net";
import { meshPortOf, type Manifest } from "../manifest/index.js";
import { fail, pass, type CheckResult } from "./check-result.js";
import { describeProcess, findPortHolders, type PortHolder } from "./port-holders.js";
import { projectPids, type RunningProject } from "./running-project.js";

/** A port the manifest names, and who in the project listens on it. */
export interface ManifestPort {
  host: string;
  port: number;
  /** Where it comes from, as people read it: "gateway.port", "services.orders.port + 1". */
  label: string;
  owner: { kind: "control plane" } | { kind: "gateway" } | { kind: "service"; service: string; first: number; last: number };
}

/** The control plane's and gateway's ports, and every port of each service with a fixed `port` (port .. port + max replicas - 1). */
export function manifestPorts(manifest: Manifest): ManifestPort[] {
  const out: ManifestPort[] = [
    { host: manifest.controlPlane.host, port: manifest.controlPlane.port, label: "controlPlane.port", owner: { kind: "control plane" } },
    { host: manifest.gateway.host, port: manifest.gateway.port, label: "gateway.port", owner: { kind: "gateway" } },
    { host: manifest.gateway.host, port: manifest.gateway.adminPort, label: "gateway.adminPort", owner: { kind: "gateway" } },
    { host: manifest.gateway.host, port: meshPortOf(manifest.gateway), label: "gateway.meshPort", owner: { kind: "gateway" } },
  ];
  for (const [name, spec] of Object.entries(manifest.services)) {
    if (spec.port === undefined) continue;
    // Replica i listens on port + i, so the service owns as many ports as it may ever have replicas.
    const count = Math.max(1, spec.replicas, spec.autoscale?.max ?? 0);
    const last = Math.min(65535, spec.port + count - 1);
    for (let p = spec.port; p <= last; p++) {
      const label = p === spec.port ? `services.${name}.port` : `services.${name}.port + ${p - spec.port}`;
      out.push({ host: "127.0.0.1", port: p, label, owner: { kind: "service", service: name, first: spec.port, last } });
    }
  }
  return out;
}

export type PortProbe = "free" | "in-use" | "denied" | "not-local";

/** Whether this process could listen on host:port now (it listens and closes at once). */
export function probePort(host: string, port: number): Promise<PortProbe> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") resolve("in-use");
      else if (err.code === "EACCES" || err.code === "EPERM") resolve("denied");
      else if (err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") resolve("not-local");
      else reject(err);
    });
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve("free")));
  });
}

export interface CheckPortsInput {
  manifest: Manifest;
  running?: RunningProject;
  /** Who listens on each port; default: read from /proc (Linux). */
  findHolders?: (ports: readonly number[]) => Promise<Map<number, PortHolder>>;
  /** Describes a process (for its parents); default: from /proc. */
  describe?: (pid: number) => Promise<PortHolder>;
}

/**
 * A pass line when every port is free or the project's own, else a fail line per port held by
 * another process (naming it when /proc tells), that needs privileges, or whose host is not here.
 */
export async function checkPorts(input: CheckPortsInput): Promise<CheckResult[]> {
  const { manifest, running } = input;
  const ports = manifestPorts(manifest);
  const probes = await Promise.all(ports.map(async (p) => ({ ...p, probe: await probePort(p.host, p.port) })));
  const used = probes.filter((p) => p.probe === "in-use");
  const holders = used.length === 0 ? new Map<number, PortHolder>() : await (input.findHolders ?? findPortHolders)(used.map((p) => p.port));
  const own = projectPids(running);
  const describe = input.describe ?? describeProcess;

  async function ownedBy(p: ManifestPort, holder: PortHolder | undefined): Promise<boolean> {
    if (holder !== undefined) {
      // A replica's server is often a child of the shell that started it (the replica's pid).
      let current: PortHolder | undefined = holder;
      for (let depth = 0; current !== undefined && depth < 5; depth++) {
        if (own.has(current.pid) || (current.pgid !== undefined && own.has(current.pgid))) return true;
        current = current.ppid === undefined || current.ppid <= 1 ? undefined : await describe(current.ppid);
      }
      return false;
    }
    // Nothing told us who listens: trust what the project's own records say it runs.
    switch (p.owner.kind) {
      case "control plane":
        return running?.controlPlane !== undefined && new URL(running.controlPlane.url).port === String(p.port);
      case "gateway":
        return running?.gateway !== undefined;
      case "service": {
        const service = p.owner.service;
        return (running?.status?.services.find((s) => s.name === service)?.instances ?? []).some((i) => i.port === p.port);
      }
    }
  }

  const results: CheckResult[] = [];
  const owners = new Set<string>();
  let free = 0;
  for (const p of probes) {
    const where = `port ${p.port} (${p.label})`;
    const move = p.owner.kind === "service" ? `move services.${p.owner.service}.port (the service needs ports ${p.owner.first}-${p.owner.last})` : `set ${p.label} in keelson.yaml to a free port`;
    switch (p.probe) {
      case "free":
        free++;
        break;
      case "denied":
        results.push(fail("ports", `${where}: listening on it needs privileges this user does not have`, `choose a port above 1023: ${move}`));
        break;
      case "not-local":
        results.push(fail("ports", `${where}: ${p.host} is not an address of this machine`, `set ${p.label.startsWith("controlPlane") ? "controlPlane" : "gateway"}.host to an address of this machine, e.g. 127.0.0.1`));
        break;
      case "in-use": {
        const holder = holders.get(p.port);
        if (await ownedBy(p, holder)) {
          owners.add(p.owner.kind === "service" ? `service ${p.owner.service}` : p.owner.kind);
          break;
        }
        const who = holder === undefined ? "another process" : `pid ${holder.pid} (${holder.command})`;
        results.push(fail("ports", `${where} is in use by ${who}`, `stop that process, or ${move}`));
        break;
      }
    }
  }
  if (results.length === 0) {
    if (free === ports.length) results.push(pass("ports", `the manifest's ${ports.length} ports are free`));
    else results.push(pass("ports", `${free} of the manifest's ${ports.length} ports are free, ${ports.length - free} held by this project's ${[...owners].join(", ")}`));
  }
  return results;
}
