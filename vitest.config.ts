import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const CHAOS = "test/e2e/chaos.test.ts";

export default defineConfig({
  resolve: {
    alias: { "#test-support": fileURLToPath(new URL("./test/support/index.ts", import.meta.url)) },
  },
  test: {
    exclude: ["**/node_modules/**", "**/dist/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites start real processes and bind ports; two workers fit a 2-core machine.
    maxWorkers: 2,
    reporters: ["default", fileURLToPath(new URL("./scripts/summary-reporter.ts", import.meta.url))],
    projects: [
      {
        extends: true,
        test: {
          name: "suite",
          include: ["packages/*/src/**/*.test.ts", "examples/shop/services/*/test/**/*.test.ts", "test/**/*.test.ts"],
          exclude: ["**/node_modules/**", "**/dist/**", CHAOS],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // The chaos suite measures latency and reaction times of the shop under load: it runs
        // last and alone, so other suites do not share the two cores with it.
        extends: true,
        test: { name: "chaos", include: [CHAOS], fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
