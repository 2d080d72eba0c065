// Usage sampling from /proc: exact figures from a fake /proc tree (CPU over the interval, memory
// of the group's live members), and a pass over the real one.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir } from "#test-support";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readProcStat } from "./proc-stat.js";
import { createUsageSampler } from "./usage-sampler.js";

interface FakeProcess {
  pid: number;
  pgrp: number;
  state?: string;
  /** utime + stime, ticks (split 3:1 to check both count). */
  ticks: number;
  startTicks: number;
  residentPages: number;
}

describe("usage sampler", () => {
  let proc: string;
  let cleanup: () => Promise<void>;
  let clock = 0;

  beforeEach(async () => {
    ({ dir: proc, cleanup } = await makeTempDir("keelson-fake-proc-"));
    clock = 0;
  });
  afterEach(async () => {
    await cleanup();
  });

  async function writeProc(uptimeSeconds: number, processes: FakeProcess[]): Promise<void> {
    await writeFile(join(proc, "uptime"), `${uptimeSeconds.toFixed(2)} 123.45\n`);
    for (const p of processes) {
      await mkdir(join(proc, String(p.pid)), { recursive: true });
      const utime = Math.floor((p.ticks * 3) / 4);
      const stime = p.ticks - utime;
      await writeFile(join(proc, String(p.pid), "stat"), `${p.pid} (node app) ${p.state ?? "S"} 1 ${p.pgrp} ${p.pgrp} 0 -1 4194560 100 0 0 0 ${utime} ${stime} 0 0 20 0 7 0 ${p.startTicks} 1000 100\n`);
      await writeFile(join(proc, String(p.pid), "statm"), `9000 ${p.residentPages} 300 5 0 700 0\n`);
    }
  }

  it("sums the live members of each group asked for: resident memory, and CPU over the interval", async () => {
    const sampler = createUsageSampler({ procDir: proc, now: () => clock });
    // Group 500 started at 900 s after boot; it is 1000 s now, so it has been up 100 s.
    await writeProc(1000, [
      { pid: 500, pgrp: 500, ticks: 400, startTicks: 90_000, residentPages: 1000 },
      { pid: 501, pgrp: 500, ticks: 600, startTicks: 90_010, residentPages: 500 },
      { pid: 502, pgrp: 500, state: "Z", ticks: 5_000, startTicks: 90_020, residentPages: 0 },
      { pid: 600, pgrp: 600, ticks: 9_000, startTicks: 10, residentPages: 7000 },
    ]);
    await mkdir(join(proc, "self"));

    const first = await sampler.sample([{ pgid: 500, startTime: 90_000 }]);
    // 10 s of CPU in 100 s of life; the zombie and the other group are left out.
    expect(first).toEqual(new Map([[500, { cpuPercent: 10, memoryBytes: 1500 * 4096, members: 2 }]]));

    // 2 s later: 1 s and 0.5 s more CPU, and a new member that used 0.2 s since it started.
    clock += 2000;
    await writeProc(1002, [
      { pid: 500, pgrp: 500, ticks: 500, startTicks: 90_000, residentPages: 1200 },
      { pid: 501, pgrp: 500, ticks: 650, startTicks: 90_010, residentPages: 500 },
      { pid: 503, pgrp: 500, ticks: 20, startTicks: 100_150, residentPages: 100 },
    ]);
    expect((await sampler.sample([{ pgid: 500, startTime: 90_000 }]))?.get(500)).toEqual({ cpuPercent: 85, memoryBytes: 1800 * 4096, members: 3 });
  });

  it("leaves out a group with no live member, tells a re-used pgid from the group it sampled, and gives undefined without /proc", async () => {
    const sampler = createUsageSampler({ procDir: proc, now: () => clock });
    await writeProc(200, [{ pid: 700, pgrp: 700, ticks: 100, startTicks: 10_000, residentPages: 10 }]);
    expect(await sampler.sample([{ pgid: 700, startTime: 10_000 }, { pgid: 800, startTime: 1 }])).toEqual(new Map([[700, { cpuPercent: 1, memoryBytes: 40_960, members: 1 }]]));
    // The pid and pgid now belong to a process that started later (at 150 s, 50 s ago): its own first sample.
    clock += 1000;
    await writeProc(200, [{ pid: 700, pgrp: 700, ticks: 2_500, startTicks: 15_000, residentPages: 10 }]);
    expect((await sampler.sample([{ pgid: 700, startTime: 15_000 }]))?.get(700)?.cpuPercent).toBe(50);

    expect(await createUsageSampler({ procDir: join(proc, "no-such-dir") }).sample([{ pgid: 700, startTime: 15_000 }])).toBeUndefined();
    expect(await sampler.sample([])).toEqual(new Map());
  });

  it("samples this process's group from the real /proc", async () => {
    const own = readProcStat(process.pid);
    expect(own).toBeDefined();
    const pgid = own?.pgrp ?? -1;
    const usage = (await createUsageSampler().sample([{ pgid, startTime: readProcStat(pgid)?.startTime }]))?.get(pgid);
    expect(usage?.members).toBeGreaterThanOrEqual(1);
    expect(usage?.memoryBytes).toBeGreaterThanOrEqual(process.memoryUsage().rss / 2);
    expect(usage?.cpuPercent).toBeGreaterThanOrEqual(0);
  });
});
