// The payments service's settings, read once from the environment at startup.

export interface PaymentsConfig {
  /** Folder for charge records (shared by replicas, survives releases). */
  dataDir: string;
  /** Cards whose number ends with this are declined: the test-card rule of this fake processor. */
  declinedCardSuffix: string;
}

/** Reads the settings; a missing or malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): PaymentsConfig {
  const dataDir = env.KEELSON_DATA_DIR;
  if (dataDir === undefined || dataDir === "") throw new Error("KEELSON_DATA_DIR must be set to a folder for charge records");
  const suffix = env.DECLINED_CARD_SUFFIX ?? "0000";
  if (!/^\d{1,8}$/.test(suffix)) throw new Error(`DECLINED_CARD_SUFFIX must be 1-8 digits, got ${JSON.stringify(suffix)}`);
  return Object.freeze({ dataDir, declinedCardSuffix: suffix });
}
