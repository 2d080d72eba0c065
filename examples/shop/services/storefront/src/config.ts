// The storefront's settings, read once from the environment at startup.

export interface StorefrontConfig {
  /** Shown in the page title and header. */
  shopName: string;
  /** Timeout for each call to inventory and orders. */
  callTimeoutMs: number;
}

/** Reads the settings; a malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): StorefrontConfig {
  const shopName = (env.SHOP_NAME ?? "Keelson Coffee").trim();
  if (shopName === "" || shopName.length > 80) throw new Error(`SHOP_NAME must be 1 to 80 characters, got ${JSON.stringify(env.SHOP_NAME)}`);
  const raw = env.CALL_TIMEOUT_MS;
  const callTimeoutMs = raw === undefined ? 2000 : Number(raw);
  if (!Number.isInteger(callTimeoutMs) || callTimeoutMs < 1 || callTimeoutMs > 60_000) {
    throw new Error(`CALL_TIMEOUT_MS must be a whole number from 1 to 60000, got ${JSON.stringify(raw)}`);
  }
  return Object.freeze({ shopName, callTimeoutMs });
}
