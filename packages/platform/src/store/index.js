export { createSqliteStore } from "./sqlite-store.js";
export { createMemoryStore } from "./memory-store.js";
export { canonicalJson } from "./canonical-json.js";
