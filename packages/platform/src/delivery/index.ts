// The delivery domain: plans, releases, builds and the reconciler that rolls them out.
export * from "./plan.js";
export * from "./reconciler.js";
export * from "./release-id.js";
export * from "./replica-plan.js";
export { hashServiceSource, listSourceFiles } from "./source-hash.js";
export { runBuild, type BuildOptions, type BuildResult } from "./build.js";
export { canonicalJson, sha256 } from "./canonical-json.js";
