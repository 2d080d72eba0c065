// The CPU and MEM columns of `keelson status`, per replica and added up per service.
import type { ReplicaStatus, ReplicaUsage } from "@keelson/protocol";
import { describe, expect, it } from "vitest";
import { formatCpu, formatMemory, formatUsageMemory, serviceUsage } from "./usage-format.js";

const MIB = 1024 * 1024;

function instance(usage: ReplicaUsage | undefined): ReplicaStatus {
  return {
    id: "orders-r-1-0",
    service: "orders",
    release: "r-1",
    index: 0,
    state: "ready",
    pid: 1,
    port: 3000,
    url: "http://127.0.0.1:3000",
    restarts: 0,
    startedAt: undefined,
    lastExit: undefined,
    ...(usage === undefined ? {} : { usage }),
  };
}

describe("usage columns", () => {
  it("shows a replica's CPU in whole percent of a core and its memory against its limit", () => {
    const at = "2026-11-27T00:00:00.000Z";
    expect(formatCpu({ cpuPercent: 12.4 })).toBe("12%");
    expect(formatCpu({ cpuPercent: 187.6 })).toBe("188%");
    expect(formatCpu(undefined)).toBe("-");
    expect(formatUsageMemory({ memoryBytes: 48.2 * MIB, memoryLimitBytes: 256 * MIB })).toBe("48 MiB / 256 MiB");
    expect(formatUsageMemory({ memoryBytes: 48 * MIB })).toBe("48 MiB");
    expect(formatUsageMemory(undefined)).toBe("-");
    expect(formatMemory(1536 * MIB)).toBe("1.5 GiB");
    expect(formatUsageMemory(instance({ cpuPercent: 1, memoryBytes: 300 * MIB, memoryLimitBytes: 2048 * MIB, at }).usage)).toBe("300 MiB / 2.0 GiB");
  });

  it("adds a service's sampled replicas up, limits included only when every one has one", () => {
    const at = "2026-11-27T00:00:00.000Z";
    const limited = (cpu: number, mib: number) => instance({ cpuPercent: cpu, memoryBytes: mib * MIB, memoryLimitBytes: 256 * MIB, at });
    expect(serviceUsage([limited(10, 40), limited(30, 60), instance(undefined)])).toEqual({ cpuPercent: 40, memoryBytes: 100 * MIB, memoryLimitBytes: 512 * MIB });
    expect(serviceUsage([limited(10, 40), instance({ cpuPercent: 5, memoryBytes: 10 * MIB, at })])).toEqual({ cpuPercent: 15, memoryBytes: 50 * MIB });
    expect(serviceUsage([instance(undefined)])).toBeUndefined();
    expect(serviceUsage([])).toBeUndefined();
  });
});
