// The templates domain: service templates (built-in and the user's), their variables and
// placeholders, and `keelson new`'s all-or-nothing creation of a service from one.
export { createService, SERVICE_NAME } from "./create-service.js";
export type { CreatedService, CreateServiceOptions } from "./create-service.js";
export { addTemplate, BUILTIN_TEMPLATES_DIR, findTemplate, isGitSource, listTemplates, removeTemplate, userTemplatesDir } from "./template-library.js";
export type { AddedTemplate, AddTemplateOptions, LibraryOptions, TemplateListing, TemplateSourceNote } from "./template-library.js";
export { loadTemplate, renderTemplateFiles } from "./service-template.js";
export type { RenderedFile, ServiceTemplate, TemplateFile, TemplateOrigin } from "./service-template.js";
export { BUILTIN_VARIABLES, parseTemplateDefinition } from "./template-definition.js";
export type { TemplateDefinition, TemplateVariable, VariableType } from "./template-definition.js";
export { resolveVariables } from "./template-variables.js";
export type { Asker, VariableQuestion } from "./template-variables.js";
export { FILTER_NAMES, renderPlaceholders, scanPlaceholders } from "./placeholders.js";
export type { TemplateValue } from "./placeholders.js";
export { addServiceEntry } from "./service-entry.js";
export { stageFile, writeFileAtomic } from "./atomic-file.js";
export { findPackageDir, planPackages, PLATFORM_PACKAGE_DIR } from "./provided-packages.js";
export type { PackageLink, PackagePlan } from "./provided-packages.js";
