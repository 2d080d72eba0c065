// The software bill of materials stored with each release: the service's locked npm
// dependencies as a CycloneDX 1.5 JSON BOM (https://cyclonedx.org/docs/1.5/json/).
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { isCompoundLicense, parseLicenseExpression } from "./license-policy.js";
import type { Component } from "./vuln-audit.js";

/** A license entry of a CycloneDX component: an SPDX id, a free name, or a compound expression. */
export type CycloneDxLicense = { license: { id: string } } | { license: { name: string } } | { expression: string };

/** A CycloneDX component (the fields Keelson writes). */
export interface CycloneDxComponent {
  type: "library" | "application";
  "bom-ref": string;
  group?: string;
  name: string;
  version: string;
  scope?: "required" | "optional";
  purl?: string;
  licenses?: CycloneDxLicense[];
}

/** A CycloneDX 1.5 BOM as Keelson writes it. */
export interface CycloneDxBom {
  $schema: string;
  bomFormat: "CycloneDX";
  specVersion: "1.5";
  serialNumber: string;
  version: 1;
  metadata: {
    timestamp: string;
    tools: { components: Array<{ type: "application"; name: string; version: string }> };
    component: CycloneDxComponent;
  };
  components: CycloneDxComponent[];
}

let cachedVersion: string | undefined;

/** Keelson's version from the platform package (src and dist both sit two folders below it). */
function keelsonVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
      cachedVersion = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      cachedVersion = "unknown";
    }
  }
  return cachedVersion;
}

/** Percent-encodes a purl segment: everything but letters, digits and `.-_~`. */
function purlEncode(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The package URL of an npm package: `pkg:npm/name@version`, or `pkg:npm/%40scope/name@version`
 * for a scoped one (https://github.com/package-url/purl-spec).
 */
export function npmPurl(name: string, version: string): string {
  const slash = name.startsWith("@") ? name.indexOf("/") : -1;
  const path = slash === -1 ? purlEncode(name) : `${purlEncode(name.slice(0, slash))}/${purlEncode(name.slice(slash + 1))}`;
  return `pkg:npm/${path}@${purlEncode(version)}`;
}

/** How a lockfile license is written in a BOM: a compound expression, an SPDX-looking id, or a name. */
export function cycloneDxLicense(license: string): CycloneDxLicense {
  const expr = parseLicenseExpression(license);
  if (expr && (isCompoundLicense(license) || ("id" in expr && expr.exception !== undefined))) return { expression: license };
  if (expr && "id" in expr && !/^UNLICENSED$/i.test(expr.id)) return { license: { id: expr.id } };
  return { license: { name: license } };
}

function componentOf(c: Component): CycloneDxComponent {
  const slash = c.name.startsWith("@") ? c.name.indexOf("/") : -1;
  const purl = npmPurl(c.name, c.version);
  return {
    type: "library",
    "bom-ref": purl,
    ...(slash === -1 ? { name: c.name } : { group: c.name.slice(0, slash), name: c.name.slice(slash + 1) }),
    version: c.version,
    scope: c.dev ? "optional" : "required",
    purl,
    ...(c.license ? { licenses: [cycloneDxLicense(c.license)] } : {}),
  };
}

/**
 * A CycloneDX 1.5 BOM for a release of a service: the service as the BOM's subject (an
 * application whose version is the release id) and one library component per locked package
 * (dev dependencies with scope "optional"). `now` and `serialNumber` make it reproducible in tests.
 *
 * @example
 * const bom = buildSbom({ service: "orders", release: "r-3f9a1c2b7d4e", components: (await readLockfile(dir))?.components ?? [] });
 */
export function buildSbom(input: { service: string; release: string; components: readonly Component[]; now?: Date; serialNumber?: string; toolVersion?: string }): CycloneDxBom {
  const seen = new Set<string>();
  const components: CycloneDxComponent[] = [];
  for (const c of input.components) {
    const comp = componentOf(c);
    if (seen.has(comp["bom-ref"])) continue;
    seen.add(comp["bom-ref"]);
    components.push(comp);
  }
  return {
    $schema: "http://cyclonedx.org/schema/bom-1.5.schema.json",
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: input.serialNumber ?? `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: (input.now ?? new Date()).toISOString(),
      tools: { components: [{ type: "application", name: "keelson", version: input.toolVersion ?? keelsonVersion() }] },
      component: { type: "application", "bom-ref": `keelson:service/${input.service}@${input.release}`, name: input.service, version: input.release },
    },
    components,
  };
}
