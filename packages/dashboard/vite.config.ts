// Builds the dashboard to static files (dist/) that the control plane serves at /.
import { defineConfig } from "vite";

export default defineConfig({
  // Preact's automatic JSX runtime, without a plugin (and without Babel).
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Hashed file names under /assets/: the control plane caches them for a year.
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
  },
});
