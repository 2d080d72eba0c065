// The notifications service's settings, read once from the environment at startup.

export interface NotificationsConfig {
  /** Folder for the outbox file (shared by replicas, survives releases). */
  dataDir: string;
  /** Sender address put on every message. */
  mailFrom: string;
  /** Most messages GET /api/notifications returns. */
  listLimit: number;
}

/** Reads the settings; a missing or malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): NotificationsConfig {
  const dataDir = env.KEELSON_DATA_DIR;
  if (dataDir === undefined || dataDir === "") throw new Error("KEELSON_DATA_DIR must be set to a folder for the outbox");
  const mailFrom = env.MAIL_FROM ?? "orders@shop.example";
  if (!/^[^\s@]+@[^\s@]+$/.test(mailFrom)) throw new Error(`MAIL_FROM must be an email address, got ${JSON.stringify(mailFrom)}`);
  const listLimit = Number(env.OUTBOX_LIST_LIMIT ?? "20");
  if (!Number.isInteger(listLimit) || listLimit < 1 || listLimit > 1000) {
    throw new Error(`OUTBOX_LIST_LIMIT must be a whole number from 1 to 1000, got ${JSON.stringify(env.OUTBOX_LIST_LIMIT)}`);
  }
  return Object.freeze({ dataDir, mailFrom, listLimit });
}
