import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: { "#test-support": fileURLToPath(new URL("./test/support/index.ts", import.meta.url)) },
  },
  test: {
    include: ["packages/*/src/**/*.test.ts", "examples/shop/services/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites start real processes and bind ports; two workers fit a 2-core machine.
    maxWorkers: 2,
    reporters: ["default", fileURLToPath(new URL("./scripts/summary-reporter.ts", import.meta.url))],
  },
});
