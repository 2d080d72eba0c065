// The recommendations service's HTTP API: products often bought together with a given one.
// Every answer waits for a lookup at the model store, whose slots bound what a replica serves.
import { createRouter, HttpError, json } from "@keelson/sdk";
import type { Handler } from "@keelson/sdk";
import type { ModelStore } from "./model-store.js";
import type { Pairing } from "./pairings.js";
import { PoolFullError } from "./slot-pool.js";

export interface RecommendationsAppOptions {
  store: ModelStore;
}

/** The shop's SKUs: capitals, digits and dashes. */
const SKU = /^[A-Z0-9][A-Z0-9-]{0,63}$/;
const DEFAULT_LIMIT = 3;
const MAX_LIMIT = 10;

/**
 * GET /api/recommendations?sku=<sku>&limit=<1-10, default 3>
 *   → 200 { sku, items: [{ sku, score }] }, highest score first
 *   → 400 VALIDATION naming `sku` or `limit`, 400 UNKNOWN_SKU for a product the model does not know
 *   → 503 OVERLOADED (with retry-after) when the replica's lookup queue is full
 */
export function createApp(options: RecommendationsAppOptions): Handler {
  const { store } = options;
  return createRouter().get("/api/recommendations", async ({ res, query }) => {
    const { sku, limit } = parseQuery(query);
    // A caller that gave up (a timeout upstream) gives up its place in the queue too, so
    // abandoned requests never take a slot from live ones.
    const gone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) gone.abort(new Error("the caller went away"));
    });
    let pairings: readonly Pairing[] | undefined;
    try {
      pairings = await store.lookup(sku, { signal: gone.signal });
    } catch (err) {
      // Nobody is left to answer; serve() logs the request as aborted.
      if (gone.signal.aborted) return;
      if (err instanceof PoolFullError) {
        throw new HttpError(503, "OVERLOADED", "too many recommendations are waiting for the model store; try again shortly", { queueLimit: err.queueLimit }, { "retry-after": "1" });
      }
      throw err;
    }
    if (pairings === undefined) throw new HttpError(400, "UNKNOWN_SKU", `sku: no product ${JSON.stringify(sku)}`, { field: "sku", sku });
    json(res, 200, { sku, items: pairings.slice(0, limit).map((p) => ({ sku: p.sku, score: p.score })) });
  }).handle;
}

function parseQuery(query: URLSearchParams): { sku: string; limit: number } {
  const fail = (field: string, problem: string) => new HttpError(400, "VALIDATION", `${field} ${problem}`, { field });
  const skus = query.getAll("sku");
  if (skus.length !== 1) throw fail("sku", "must be given once, e.g. ?sku=BEAN-ETH-250");
  const sku = skus[0] as string;
  if (!SKU.test(sku)) throw fail("sku", "must be 1-64 capital letters, digits or '-'");
  const limits = query.getAll("limit");
  if (limits.length > 1) throw fail("limit", "must be given at most once");
  const raw = limits[0];
  const limit = raw === undefined ? DEFAULT_LIMIT : /^\d{1,2}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw fail("limit", `must be a whole number from 1 to ${MAX_LIMIT}`);
  return { sku, limit };
}
