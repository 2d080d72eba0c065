// Where a project's state lives: `.keelson/` beside the manifest, and the files that
// tell the CLI which control plane and gateway serve it.
import { join } from "node:path";

export const STATE_DIR_NAME = ".keelson";
export const CONTROL_PLANE_FILE = "controlplane.json";
export const GATEWAY_DIR = "gateway";

export function stateDirOf(projectDir: string): string {
  return join(projectDir, STATE_DIR_NAME);
}

/** The admin token `keelson up` stores for the CLI (mode 0600), inside the state folder. */
export const TOKEN_FILE = "token";
