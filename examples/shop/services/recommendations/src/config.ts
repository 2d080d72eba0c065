// The recommendations service's settings, read once from the environment at startup.

export interface RecommendationsConfig {
  /** Concurrent lookups one replica may have open at the model store. */
  modelSlots: number;
  /** How long each model store lookup takes. */
  modelLatencyMs: number;
  /** Lookups that may wait for a slot; beyond that, requests get 503 OVERLOADED. */
  modelQueueLimit: number;
}

/** Reads the settings; a malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): RecommendationsConfig {
  return Object.freeze({
    modelSlots: wholeNumber(env, "MODEL_SLOTS", 4, 1, 1000),
    modelLatencyMs: wholeNumber(env, "MODEL_LATENCY_MS", 20, 0, 60_000),
    modelQueueLimit: wholeNumber(env, "MODEL_QUEUE_LIMIT", 1000, 0, 100_000),
  });
}

function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  // An empty value is a mistake, not a zero (Number("") is 0).
  const value = raw === undefined ? fallback : raw.trim() === "" ? Number.NaN : Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
