// The settings of {{name}}, read once from the environment at startup (keelson.yaml's `env`).

export interface Config {
  /** The word the service greets with. */
  greeting: string;
}

/** Reads the settings; a malformed variable stops the start with its name in the message. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const greeting = env.GREETING ?? "Hello";
  if (greeting.trim() === "" || greeting.length > 40) throw new Error(`GREETING must be 1 to 40 characters, got ${JSON.stringify(env.GREETING)}`);
  return Object.freeze({ greeting });
}
