// The CPU and MEM columns of `keelson status`: a replica's last usage sample, or a service's
// replicas added up ("-" where the runtime reports none).
import type { ReplicaStatus, ReplicaUsage } from "@keelson/protocol";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** "48 MiB", "1.5 GiB". */
export function formatMemory(bytes: number): string {
  return bytes >= GIB ? `${(bytes / GIB).toFixed(1)} GiB` : `${Math.round(bytes / MIB)} MiB`;
}

/** "12%" (of one core; "180%" is nearly two), or "-" without a sample. */
export function formatCpu(usage: Pick<ReplicaUsage, "cpuPercent"> | undefined): string {
  return usage === undefined ? "-" : `${Math.round(usage.cpuPercent)}%`;
}

/** "48 MiB", "48 MiB / 256 MiB" with a limit, or "-" without a sample. */
export function formatUsageMemory(usage: Pick<ReplicaUsage, "memoryBytes" | "memoryLimitBytes"> | undefined): string {
  if (usage === undefined) return "-";
  return usage.memoryLimitBytes === undefined ? formatMemory(usage.memoryBytes) : `${formatMemory(usage.memoryBytes)} / ${formatMemory(usage.memoryLimitBytes)}`;
}

/**
 * A service's usage: the sum over its sampled replicas (limits add up too, as each replica
 * has its own), or undefined when none is sampled.
 */
export function serviceUsage(instances: readonly ReplicaStatus[]): Pick<ReplicaUsage, "cpuPercent" | "memoryBytes" | "memoryLimitBytes"> | undefined {
  const sampled = instances.flatMap((i) => (i.usage === undefined ? [] : [i.usage]));
  if (sampled.length === 0) return undefined;
  const limited = sampled.every((u) => u.memoryLimitBytes !== undefined);
  return {
    cpuPercent: sampled.reduce((n, u) => n + u.cpuPercent, 0),
    memoryBytes: sampled.reduce((n, u) => n + u.memoryBytes, 0),
    ...(limited ? { memoryLimitBytes: sampled.reduce((n, u) => n + (u.memoryLimitBytes ?? 0), 0) } : {}),
  };
}
