// A job queue in a folder, shared by every replica: a job is a JSON file in inbox/; a replica
// claims it by renaming it into working/ (only one rename can win), then writes the outcome to
// done/ or failed/. Jobs a crashed replica left in working/ go back to inbox/ after a while.
import { randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Job } from "./work.js";

export type JobState = "queued" | "working" | "done" | "failed";

export interface JobRecord {
  id: string;
  state: JobState;
  result?: unknown;
  error?: string;
}

export interface Queue {
  enqueue(input: { text: string }): Promise<Job>;
  /** The oldest queued job, now this replica's; undefined when there is none. */
  claim(): Promise<Job | undefined>;
  finish(job: Job, outcome: { result: unknown } | { error: string }): Promise<void>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Jobs per state. */
  depth(): Promise<Record<JobState, number>>;
  /** Puts jobs claimed longer ago than `olderThanMs` back in the inbox; returns how many. */
  requeueStale(olderThanMs: number): Promise<number>;
}

const STATES = { queued: "inbox", working: "working", done: "done", failed: "failed" } as const;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export async function createQueue(options: { dir: string }): Promise<Queue> {
  const folder = (state: JobState) => join(options.dir, STATES[state]);
  for (const state of Object.keys(STATES) as JobState[]) await mkdir(folder(state), { recursive: true });
  const file = (state: JobState, id: string) => join(folder(state), `${id}.json`);

  // Written under a temporary name, then renamed, so a reader never sees half a file.
  async function put(state: JobState, id: string, body: unknown): Promise<void> {
    const tmp = join(options.dir, `.${id}.${randomUUID()}.tmp`);
    await writeFile(tmp, JSON.stringify(body));
    await rename(tmp, file(state, id));
  }

  return {
    async enqueue(input) {
      // Time-ordered ids: the inbox sorted by name is the inbox in arrival order.
      const job: Job = { id: `${Date.now().toString(36).padStart(9, "0")}-${randomUUID().slice(0, 8)}`, text: input.text };
      await put("queued", job.id, job);
      return job;
    },
    async claim() {
      for (const name of (await readdir(folder("queued"))).sort()) {
        if (!name.endsWith(".json")) continue;
        const id = name.slice(0, -5);
        try {
          await rename(file("queued", id), file("working", id));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // another replica took it
          throw err;
        }
        return JSON.parse(await readFile(file("working", id), "utf8")) as Job;
      }
      return undefined;
    },
    async finish(job, outcome) {
      const done = "result" in outcome;
      await put(done ? "done" : "failed", job.id, { id: job.id, state: done ? "done" : "failed", ...outcome });
      await unlink(file("working", job.id)).catch(() => undefined);
    },
    async get(id) {
      if (!ID.test(id)) return undefined;
      for (const state of ["done", "failed", "working", "queued"] as const) {
        try {
          const body = JSON.parse(await readFile(file(state, id), "utf8")) as Partial<JobRecord>;
          return { id, state, ...(body.result !== undefined ? { result: body.result } : {}), ...(body.error !== undefined ? { error: body.error } : {}) };
        } catch {
          // not in this state
        }
      }
      return undefined;
    },
    async depth() {
      const counts = { queued: 0, working: 0, done: 0, failed: 0 };
      for (const state of Object.keys(STATES) as JobState[]) counts[state] = (await readdir(folder(state))).filter((n) => n.endsWith(".json")).length;
      return counts;
    },
    async requeueStale(olderThanMs) {
      let moved = 0;
      for (const name of await readdir(folder("working"))) {
        const info = await stat(join(folder("working"), name)).catch(() => undefined);
        if (info === undefined || Date.now() - info.mtimeMs < olderThanMs) continue;
        await rename(join(folder("working"), name), join(folder("queued"), name)).then(() => moved++, () => undefined);
      }
      return moved;
    },
  };
}
