// Helpers shared by tests: polling with a deadline, temp folders, free ports, git, calls to a
// project's control-plane API with the token `keelson up` stored for it, and a PostgreSQL.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeelsonError, type ErrorCode } from "@keelson/protocol";
import { afterAll, beforeAll, expect, vi } from "vitest";

/**
 * Polls `check` until it returns a value other than undefined/false, or throws after
 * `timeoutMs` with the last error seen. Never sleeps longer than `intervalMs` at a time.
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 25, what = "condition" } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A fresh temp folder; call the returned cleanup in afterEach/afterAll. */
export async function makeTempDir(prefix = "keelson-test-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Ports for tests to hand to the processes they start, below Linux's ephemeral range
 * (32768-60999): a port from the OS (`listen(0)`) is an ephemeral one, which any outgoing
 * connection of a concurrent test may take before the process binds it (a flake CI met as
 * KEELSON_ERR_PORT_IN_USE). Each vitest worker draws from its own slice of 20000-31999, every
 * other port from a random start, never handing out a port twice, and checks that it binds.
 */
const PORT_FLOOR = 20_000;
const PORT_SLICE = 1_500;
const handedOut = new Set<number>();
const worker = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? "0") % 8;
const slice = { from: PORT_FLOOR + worker * PORT_SLICE, size: PORT_SLICE };
let cursor = Math.floor(Math.random() * slice.size);

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A port that was free a moment ago on 127.0.0.1, outside the ephemeral range. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < slice.size / 2; tries++) {
    // Every other port: the one after a port handed out stays free for a service's second replica
    // (a fixed `port:` serves replica i on port + i).
    const port = slice.from + ((cursor += 2) % slice.size);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port left in ${slice.from}-${slice.from + slice.size - 1}`);
}

/**
 * Whether an outside component (PostgreSQL, dockerd, Prometheus, Chromium) is there.
 * Without it the suite is skipped with a printed reason; with KEELSON_REQUIRE_ALL=1
 * (set by CI) a missing component fails the run instead.
 */
export function requireComponent(name: string, available: boolean, reason: string): boolean {
  if (available) return true;
  if (process.env.KEELSON_REQUIRE_ALL === "1") {
    throw new Error(`${name} is required (KEELSON_REQUIRE_ALL=1) but missing: ${reason}`);
  }
  process.stderr.write(`SKIP ${name} suite: ${reason}\n`);
  return false;
}

/**
 * The API token `keelson up` (via `keelson serve`) stored for a project: `<projectDir>/.keelson/token`, trimmed.
 * Throws when the control plane has not written it (yet).
 */
export async function apiToken(projectDir: string): Promise<string> {
  const token = (await readFile(join(projectDir, ".keelson", "token"), "utf8")).trim();
  if (token === "") throw new Error(`${join(projectDir, ".keelson", "token")} is empty`);
  return token;
}

/**
 * fetch() against the project's control-plane API with `authorization: Bearer <apiToken(projectDir)>`
 * (an authorization header in `init` wins).
 *
 * @example
 * const status = await (await apiFetch(dir, `${controlPlaneUrl}/v1/status`)).json();
 */
export async function apiFetch(projectDir: string, url: string | URL, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${await apiToken(projectDir)}`);
  return fetch(url, { ...init, headers });
}

const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: "Ada Author",
  GIT_AUTHOR_EMAIL: "ada@example.test",
  GIT_COMMITTER_NAME: "Cy Committer",
  GIT_COMMITTER_EMAIL: "cy@example.test",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
};
/** Variables that point git at one repository (set inside hooks); never inherited by test repositories. */
const GIT_LOCATION = ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX"];

/**
 * The environment test repositories are made with: a fixed identity, no user or system git
 * config, and nothing that points git at another repository.
 */
export function gitTestEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...GIT_IDENTITY, LC_ALL: "C", ...extra };
  for (const name of GIT_LOCATION) if (!(name in extra)) delete env[name];
  return env;
}

/**
 * For a test file whose code under test runs git itself: the same environment for the whole
 * file, so neither the user's git config nor an enclosing repository changes what git does.
 */
export function useGitTestEnv(): void {
  beforeAll(() => {
    for (const [name, value] of Object.entries(GIT_IDENTITY)) vi.stubEnv(name, value);
    for (const name of GIT_LOCATION) vi.stubEnv(name, undefined);
  });
  afterAll(() => {
    vi.unstubAllEnvs();
  });
}

/** Runs git in `dir` (main as the default branch, no signing) with gitTestEnv; resolves with trimmed stdout. */
export function git(dir: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("git", ["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", ...args], { cwd: dir, env: gitTestEnv(env), maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`git ${args.join(" ")} in ${dir}: ${stderr || err.message}`)) : resolve(stdout.trim()),
    );
  });
}

/**
 * Runs a CLI entry point (the `main` of packages/platform/src/cli) in this process with stdout and
 * stderr captured; resolves with its exit code and what it printed.
 *
 * @example
 * const { code, out } = await runCli(main, ["catalog", "-C", dir]);
 */
export async function runCli(main: (argv: string[]) => Promise<number>, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const stdout = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
  const stderr = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true));
  process.exitCode = undefined;
  try {
    const code = await main(["node", "keelson", ...args]);
    return { code, out, err };
  } finally {
    process.exitCode = undefined;
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

/** The KeelsonError `promise` rejects with, after checking its code; fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<KeelsonError> {
  const outcome = await promise.then(
    () => new Error("expected a rejection, but the call succeeded"),
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(KeelsonError);
  expect((outcome as KeelsonError).code).toBe(code);
  return outcome as KeelsonError;
}
export { hasOpenssl, opensslCa } from "./openssl-ca.js";
export { apiServerSource, writeOneServiceProject } from "./one-service-project.js";
export type { OneServiceProject } from "./one-service-project.js";
export { dockerAvailability, startTestDocker } from "./docker.js";
export type { DockerAvailability, TestDocker } from "./docker.js";
export { postgresAvailability, startTestPostgres } from "./postgres.js";
export type { PostgresAvailability, TestDatabase, TestPostgres, TestSchema } from "./postgres.js";
