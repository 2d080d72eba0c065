// The inventory service's settings, read once from the environment at startup.

export interface InventoryConfig {
  /** Folder for the stock file (shared by replicas, survives releases). */
  dataDir: string;
  /** Stock at or below this count is flagged `low` in the listing. */
  lowStockThreshold: number;
}

/** Reads the settings; a missing or malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): InventoryConfig {
  const dataDir = env.KEELSON_DATA_DIR;
  if (dataDir === undefined || dataDir === "") throw new Error("KEELSON_DATA_DIR must be set to a folder for the stock file");
  const threshold = Number(env.LOW_STOCK_THRESHOLD ?? "3");
  if (!Number.isInteger(threshold) || threshold < 0) {
    throw new Error(`LOW_STOCK_THRESHOLD must be a whole number >= 0, got ${JSON.stringify(env.LOW_STOCK_THRESHOLD)}`);
  }
  return Object.freeze({ dataDir, lowStockThreshold: threshold });
}
