// The orders service's settings, read once from the environment at startup.

export interface OrdersConfig {
  /** Folder for order files (shared by replicas, survives releases). */
  dataDir: string;
  /** Timeout for each call to inventory, payments and notifications. */
  callTimeoutMs: number;
  /** Most lines one order may have. */
  maxLines: number;
}

/** Reads the settings; a missing or malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): OrdersConfig {
  const dataDir = env.KEELSON_DATA_DIR;
  if (dataDir === undefined || dataDir === "") throw new Error("KEELSON_DATA_DIR must be set to a folder for order files");
  return Object.freeze({
    dataDir,
    callTimeoutMs: wholeNumber(env, "CALL_TIMEOUT_MS", 3000, 1, 60_000),
    maxLines: wholeNumber(env, "MAX_ORDER_LINES", 20, 1, 100),
  });
}

function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
