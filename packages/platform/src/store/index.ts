// The store domain: the Store interface and its implementations.
export type * from "./store.js";
