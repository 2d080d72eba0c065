// A real Prometheus for integration tests: started on 127.0.0.1 with its own config and storage
// in a temp folder, scraping the given targets every second, stopped by its pid.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, waitFor } from "./index.js";

export function onPath(binary: string): boolean {
  const r = spawnSync(binary, ["--version"], { stdio: "ignore" });
  return r.error === undefined && r.status === 0;
}


export interface RunningPrometheus {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** A scrape job's host:port targets, and the bearer token to scrape them with (a control plane's /metrics needs one). */
export type ScrapeJob = string[] | { targets: string[]; bearerToken?: string };

/** Starts Prometheus scraping `jobs` (job name → host:port targets) every second. */
export async function startPrometheus(dir: string, jobs: Record<string, ScrapeJob>): Promise<RunningPrometheus> {
  const port = await freePort();
  const config = join(dir, "prometheus.yml");
  const entries = Object.entries(jobs)
    .map(([job, spec]) => ({ job, ...(Array.isArray(spec) ? { targets: spec } : spec) }))
    .filter((j) => j.targets.length > 0);
  const scrape =
    entries.length === 0
      ? "scrape_configs: []"
      : `scrape_configs:\n${entries
          .map(
            (j) =>
              `  - job_name: ${j.job}\n    scrape_interval: 1s\n    scrape_timeout: 1s\n` +
              (j.bearerToken === undefined ? "" : `    authorization:\n      type: Bearer\n      credentials: ${JSON.stringify(j.bearerToken)}\n`) +
              `    static_configs:\n      - targets: [${j.targets.map((t) => `"${t}"`).join(", ")}]`,
          )
          .join("\n")}`;
  await writeFile(config, `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n${scrape}\n`);
  await mkdir(join(dir, "data"), { recursive: true });
  const child: ChildProcess = spawn(
    "prometheus",
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    if (stderr.length < 20_000) stderr += c.toString();
  });
  const exited = once(child, "exit");
  const pid = child.pid as number;
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(pid, "SIGTERM");
    const done = await Promise.race([exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 15_000).unref())]);
    if (!done) {
      process.kill(pid, "SIGKILL");
      await exited;
    }
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
        return (await fetch(`${url}/-/ready`)).ok;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: "Prometheus to be ready" },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, pid, stop };
}

/** Runs a PromQL instant query; the vector's values. */
export async function instant(url: string, query: string): Promise<number[]> {
  const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query })}`);
  const body = (await res.json()) as { data?: { result?: Array<{ value: [number, string] }> } };
  return (body.data?.result ?? []).map((r) => Number(r.value[1]));
}

