// The settings of {{name}}, read once from the environment at startup.

export interface Config {
  /** Folder of the job queue, shared by the replicas (KEELSON_DATA_DIR, set by Keelson). */
  dataDir: string;
  /** How often the loop looks for jobs. */
  pollMs: number;
}

/** Reads the settings; a missing or malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const dataDir = env.KEELSON_DATA_DIR;
  if (dataDir === undefined || dataDir === "") throw new Error("KEELSON_DATA_DIR must be set to the folder of the job queue");
  const pollMs = Number(env.POLL_MS ?? "500");
  if (!Number.isInteger(pollMs) || pollMs < 10 || pollMs > 60_000) throw new Error(`POLL_MS must be a whole number from 10 to 60000, got ${JSON.stringify(env.POLL_MS)}`);
  return Object.freeze({ dataDir, pollMs });
}
