// Benchmark: what the dashboard costs a browser. Reads the built files (packages/dashboard/dist,
// `npm run build -w packages/dashboard`) and reports each asset's size, raw and gzipped (level 9,
// as a server would), split into what index.html loads at once (the initial JavaScript and CSS)
// and what loads on demand (the service map's layout chunk). Budget: initial JS under 300 KB
// gzipped (issue #12). Reference, side by side: Preact and its hooks (their minified builds), the smallest the app could be.
// Usage: node bench/dashboard-size.mjs
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(ROOT, "packages", "dashboard", "dist");
const BUDGET = 300 * 1024;

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const gz = (buf) => gzipSync(buf, { level: 9 }).length;

const html = readFileSync(join(DIST, "index.html"), "utf8");
const initial = new Set([...html.matchAll(/(?:src|href)="\/assets\/([^"]+)"/g)].map((m) => m[1]));
const rows = readdirSync(join(DIST, "assets"))
  .filter((f) => /\.(js|css)$/.test(f))
  .map((file) => {
    const buf = readFileSync(join(DIST, "assets", file));
    return { file, raw: buf.length, gzip: gz(buf), initial: initial.has(file) };
  })
  .sort((a, b) => Number(b.initial) - Number(a.initial) || b.gzip - a.gzip);

for (const r of rows) console.log(`${r.initial ? "initial  " : "on demand"} ${r.file.padEnd(34)} ${kb(r.raw).padStart(9)} raw ${kb(r.gzip).padStart(8)} gzip`);
const initialJs = rows.filter((r) => r.initial && r.file.endsWith(".js")).reduce((n, r) => n + r.gzip, 0);
const initialCss = rows.filter((r) => r.initial && r.file.endsWith(".css")).reduce((n, r) => n + r.gzip, 0);
const requireFromDashboard = createRequire(join(ROOT, "packages", "dashboard", "package.json"));
const preact = ["preact", "preact/hooks"].reduce((n, m) => n + gz(readFileSync(requireFromDashboard.resolve(m))), 0);
console.log(`\ninitial JavaScript ${kb(initialJs)} gzipped (budget ${kb(BUDGET)}: ${initialJs < BUDGET ? "met" : "NOT met"}, ${((100 * initialJs) / BUDGET).toFixed(0)} % of it); initial CSS ${kb(initialCss)} gzipped`);
console.log(`reference: Preact and its hooks alone ${kb(preact)} gzipped; the app is ${(initialJs / preact).toFixed(1)}× that`);
