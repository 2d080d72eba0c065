// ESLint for the whole monorepo: typescript-eslint, with the type-aware rules we rely on
// for product code (tests are type-checked by tsconfig.test.json instead).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const testFiles = ["**/*.test.ts", "**/*.conformance.ts", "test/**/*.ts", "scripts/**/*.ts", "bench/**", "*.config.ts"];

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "**/.keelson/**", "bench/results/**", "test-output/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["packages/*/src/**/*.ts", "packages/dashboard/src/**/*.tsx", "examples/shop/services/*/src/**/*.ts"],
    ignores: testFiles,
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
    },
  },
  {
    files: ["**/*.ts", "**/*.tsx"],
    rules: {
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
    },
  },
  { rules: { "no-empty": ["error", { allowEmptyCatch: true }] } },
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", URL: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", Buffer: "readonly", fetch: "readonly" },
    },
  },
);
