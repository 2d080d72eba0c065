// The runtime domain: the RuntimeDriver interface and its implementations.
export * from "./runtime-driver.js";
