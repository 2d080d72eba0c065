// Regenerates the table in docs/errors.md from packages/protocol/src/errors.ts (run after `npm run build`).
import { readFileSync, writeFileSync } from "node:fs";
import { ERRORS } from "../packages/protocol/dist/errors.js";

const file = new URL("../docs/errors.md", import.meta.url);
const rows = Object.entries(ERRORS).map(([code, { status, summary }]) => `| \`${code}\` | ${status} | ${summary} |`);
const table = ["| code | HTTP status | meaning |", "|---|---|---|", ...rows].join("\n");
const text = readFileSync(file, "utf8");
writeFileSync(file, text.replace(/<!-- table -->[\s\S]*<!-- \/table -->/, `<!-- table -->\n${table}\n<!-- /table -->`));
