// The storefront's settings, read once from the environment at startup.

export interface StorefrontConfig {
  /** Shown in the page title and header. */
  shopName: string;
  /** Timeout for each call to inventory and orders. */
  callTimeoutMs: number;
  /** Timeout for the shop page's call to recommendations: past it, the page goes without them. */
  recommendationsTimeoutMs: number;
}

/** Reads the settings; a malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): StorefrontConfig {
  const shopName = (env.SHOP_NAME ?? "Keelson Coffee").trim();
  if (shopName === "" || shopName.length > 80) throw new Error(`SHOP_NAME must be 1 to 80 characters, got ${JSON.stringify(env.SHOP_NAME)}`);
  return Object.freeze({
    shopName,
    callTimeoutMs: milliseconds(env, "CALL_TIMEOUT_MS", 2000),
    recommendationsTimeoutMs: milliseconds(env, "RECOMMENDATIONS_TIMEOUT_MS", 300),
  });
}

function milliseconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 60_000) {
    throw new Error(`${name} must be a whole number from 1 to 60000, got ${JSON.stringify(raw)}`);
  }
  return value;
}
