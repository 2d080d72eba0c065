// Test settings for this service on its own: `npm test` in this folder (as Keelson's
// pipeline runs it) must not pick up the monorepo's root config and its root-relative paths.
import { defineConfig } from "vitest/config";

// A default export is what vitest looks for in a config file.
export default defineConfig({
  test: { include: ["test/**/*.test.ts"], testTimeout: 30_000 },
});
