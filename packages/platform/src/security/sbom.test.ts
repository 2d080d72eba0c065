import { describe, expect, it } from "vitest";
import { buildSbom, cycloneDxLicense, npmPurl, type CycloneDxBom } from "./sbom.js";
import type { Component } from "./vuln-audit.js";

const components: Component[] = [
  { name: "@scope/util", version: "2.0.0", license: "MIT", dev: true, paths: ["node_modules/@scope/util"] },
  { name: "left-pad", version: "1.1.0", license: "WTFPL", dev: false, paths: ["node_modules/left-pad"] },
  { name: "dual", version: "1.0.0-rc.1+build.5", license: "(MIT OR Apache-2.0)", dev: false, paths: ["node_modules/dual"] },
  { name: "odd", version: "0.1.0", license: "SEE LICENSE IN LICENSE.md", dev: false, paths: ["node_modules/odd"] },
  { name: "nolicense", version: "3.0.0", dev: false, paths: ["node_modules/nolicense"] },
];

/** The parts of the CycloneDX 1.5 JSON schema Keelson relies on, checked by hand (no schema validator offline). */
function checkBom(bom: CycloneDxBom): string[] {
  const problems: string[] = [];
  const purl = /^pkg:npm\/(?:%40[A-Za-z0-9._~%-]+\/)?[A-Za-z0-9._~%-]+@[A-Za-z0-9._~%-]+$/;
  if (bom.bomFormat !== "CycloneDX") problems.push("bomFormat");
  if (bom.specVersion !== "1.5") problems.push("specVersion");
  if (!/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(bom.serialNumber)) problems.push("serialNumber");
  if (!Number.isInteger(bom.version) || bom.version < 1) problems.push("version");
  if (Number.isNaN(Date.parse(bom.metadata.timestamp))) problems.push("metadata.timestamp");
  if (bom.metadata.component.type !== "application" || !bom.metadata.component.name) problems.push("metadata.component");
  const refs = new Set<string>();
  for (const [i, c] of bom.components.entries()) {
    if (c.type !== "library" || !c.name || !c.version) problems.push(`components[${i}] type/name/version`);
    if (!c.purl || !purl.test(c.purl)) problems.push(`components[${i}].purl ${c.purl}`);
    if (refs.has(c["bom-ref"])) problems.push(`components[${i}] duplicate bom-ref`);
    refs.add(c["bom-ref"]);
    for (const l of c.licenses ?? []) {
      const keys = Object.keys(l);
      if (keys.length !== 1 || !(keys[0] === "license" || keys[0] === "expression")) problems.push(`components[${i}].licenses`);
      if ("license" in l && Object.keys(l.license).length !== 1) problems.push(`components[${i}].licenses.license`);
    }
  }
  return problems;
}

describe("buildSbom", () => {
  it("builds a structurally valid CycloneDX 1.5 BOM of the release", () => {
    const bom = buildSbom({ service: "api", release: "r-0123456789ab", components, now: new Date("2026-01-02T03:04:05Z") });
    expect(checkBom(bom)).toEqual([]);
    expect(bom.metadata).toEqual({
      timestamp: "2026-01-02T03:04:05.000Z",
      tools: { components: [{ type: "application", name: "keelson", version: expect.stringMatching(/^\d+\.\d+\.\d+/) }] },
      component: { type: "application", "bom-ref": "keelson:service/api@r-0123456789ab", name: "api", version: "r-0123456789ab" },
    });
    // Round-trips through JSON unchanged (what is stored is what was built).
    expect(JSON.parse(JSON.stringify(bom))).toEqual(bom);
  });

  it("splits scoped names into group and name, marks dev dependencies optional and writes licenses", () => {
    const bom = buildSbom({ service: "api", release: "r-1", components, serialNumber: "urn:uuid:00000000-0000-4000-8000-000000000000" });
    expect(bom.serialNumber).toBe("urn:uuid:00000000-0000-4000-8000-000000000000");
    const [scoped, leftPad, dual, odd, none] = bom.components;
    expect(scoped).toEqual({ type: "library", "bom-ref": "pkg:npm/%40scope/util@2.0.0", group: "@scope", name: "util", version: "2.0.0", scope: "optional", purl: "pkg:npm/%40scope/util@2.0.0", licenses: [{ license: { id: "MIT" } }] });
    expect(leftPad).toMatchObject({ name: "left-pad", scope: "required", purl: "pkg:npm/left-pad@1.1.0", licenses: [{ license: { id: "WTFPL" } }] });
    expect(leftPad).not.toHaveProperty("group");
    expect(dual).toMatchObject({ purl: "pkg:npm/dual@1.0.0-rc.1%2Bbuild.5", licenses: [{ expression: "(MIT OR Apache-2.0)" }] });
    expect(odd?.licenses).toEqual([{ license: { name: "SEE LICENSE IN LICENSE.md" } }]);
    expect(none).not.toHaveProperty("licenses");
  });

  it("lists each package once and makes serial numbers unique", () => {
    const a = buildSbom({ service: "api", release: "r-1", components: [...components, components[1] as Component] });
    expect(a.components).toHaveLength(components.length);
    expect(buildSbom({ service: "api", release: "r-1", components: [] }).serialNumber).not.toBe(a.serialNumber);
  });
});

describe("purls and licenses", () => {
  it("percent-encodes the scope's @ and anything outside the unreserved set", () => {
    expect(npmPurl("@babel/core", "7.0.0")).toBe("pkg:npm/%40babel/core@7.0.0");
    expect(npmPurl("left-pad", "1.1.0")).toBe("pkg:npm/left-pad@1.1.0");
    expect(npmPurl("weird(name)", "1.0.0+x")).toBe("pkg:npm/weird%28name%29@1.0.0%2Bx");
  });

  it("writes an expression for AND/OR/WITH, an id for one SPDX-looking id, a name otherwise", () => {
    expect(cycloneDxLicense("MIT AND ISC")).toEqual({ expression: "MIT AND ISC" });
    expect(cycloneDxLicense("GPL-2.0-only WITH Classpath-exception-2.0")).toEqual({ expression: "GPL-2.0-only WITH Classpath-exception-2.0" });
    expect(cycloneDxLicense("Apache-2.0")).toEqual({ license: { id: "Apache-2.0" } });
    expect(cycloneDxLicense("UNLICENSED")).toEqual({ license: { name: "UNLICENSED" } });
  });
});
