// The manifest domain: keelson.yaml parsing, validation and its JSON Schema.
export { ByteSize, Duration, ManifestSchema, NOTIFICATION_KINDS, ServiceSpecSchema, meshPortOf, mtlsEnabled, parseByteSize, parseDuration } from "./schema.js";
export type { AnalysisSpecOut, AutoscaleSpecOut, ScalingRulesSpecOut, CallSpecOut, DeploySpecOut, DeployStepOut, Manifest, ManifestInput, ProbeSpec, ResilienceSpecOut, RouteAuthOut, RouteSpecOut, SecuritySpecOut, ServiceSpec, NotificationKind, WebhookSpecOut } from "./schema.js";
export { MANIFEST_FILE, loadManifest, parseManifest } from "./load-manifest.js";
export type { LoadedManifest, ParseManifestOptions } from "./load-manifest.js";
export { formatManifestIssue } from "./manifest-issue.js";
export type { ManifestIssue } from "./manifest-issue.js";
export { manifestJsonSchema } from "./json-schema.js";
export { manifestTemplate } from "./manifest-template.js";
export * from "./starter-service.js";
