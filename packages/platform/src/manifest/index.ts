// The manifest domain: keelson.yaml parsing, validation and its JSON Schema.
export { ByteSize, Duration, ManifestSchema, NOTIFICATION_KINDS, PipelineFileSchema, ServiceSpecSchema, meshPortOf, mtlsEnabled, parseByteSize, parseDuration } from "./schema.js";
export type { AnalysisSpecOut, AutoscaleSpecOut, ScalingRulesSpecOut, CallSpecOut, DeploySpecOut, DeployStepOut, Manifest, ManifestInput, ProbeSpec, ResilienceSpecOut, RouteAuthOut, RouteSpecOut, SecuritySpecOut, ServiceSpec, NotificationKind, WebhookSpecOut } from "./schema.js";
export type { ManifestWritten, PipelineSpecOut, PipelineStageOut, PipelineTemplateOut, ServiceSpecWritten } from "./schema.js";
export { MANIFEST_FILE, loadManifest, parseManifest } from "./load-manifest.js";
export type { LoadedManifest, ParseManifestOptions } from "./load-manifest.js";
export { formatIssuePath, formatManifestIssue } from "./manifest-issue.js";
export type { ManifestIssue, PathIssue, PathSegment } from "./manifest-issue.js";
// Reused by other YAML inputs (service templates) so their problems read like the manifest's.
export { parseYamlSource } from "./yaml-source.js";
export type { PlacedIssue, YamlSource } from "./yaml-source.js";
export { checkAgainstSchema } from "./check-against-schema.js";
export { didYouMean } from "./did-you-mean.js";
export { manifestJsonSchema } from "./json-schema.js";
export { manifestTemplate } from "./manifest-template.js";
export * from "./starter-service.js";
