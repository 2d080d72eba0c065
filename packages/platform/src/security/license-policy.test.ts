import { describe, expect, it } from "vitest";
import { checkLicenses, isCompoundLicense, normalizeLicenseId, parseLicenseExpression } from "./license-policy.js";
import type { Component } from "./vuln-audit.js";

const c = (name: string, license: string | undefined, dev = false): Component => ({ name, version: "1.0.0", ...(license ? { license } : {}), dev, paths: [`node_modules/${name}`] });

describe("SPDX expressions", () => {
  it("parses ids, WITH, AND over OR precedence and parentheses", () => {
    expect(parseLicenseExpression("MIT")).toEqual({ id: "MIT" });
    expect(parseLicenseExpression("GPL-2.0-only WITH Classpath-exception-2.0")).toEqual({ id: "GPL-2.0-only", exception: "Classpath-exception-2.0" });
    expect(parseLicenseExpression("MIT OR Apache-2.0 AND BSD-3-Clause")).toEqual({ op: "OR", left: { id: "MIT" }, right: { op: "AND", left: { id: "Apache-2.0" }, right: { id: "BSD-3-Clause" } } });
    expect(parseLicenseExpression("(MIT OR Apache-2.0) AND ISC")).toEqual({ op: "AND", left: { op: "OR", left: { id: "MIT" }, right: { id: "Apache-2.0" } }, right: { id: "ISC" } });
    expect(parseLicenseExpression("(MIT")).toBeUndefined();
    expect(parseLicenseExpression("SEE LICENSE IN LICENSE.md")).toBeUndefined();
    expect(parseLicenseExpression("MIT OR")).toBeUndefined();
  });

  it("tells compound expressions from single ids and normalises old spellings", () => {
    expect(isCompoundLicense("(MIT OR Apache-2.0)")).toBe(true);
    expect(isCompoundLicense("MIT")).toBe(false);
    expect(isCompoundLicense("SEE LICENSE IN x")).toBe(false);
    expect(normalizeLicenseId("GPL-3.0")).toBe("gpl-3.0-only");
    expect(normalizeLicenseId("GPL-2.0+")).toBe("gpl-2.0-or-later");
    expect(normalizeLicenseId("AGPL-3.0-only")).toBe("agpl-3.0-only");
  });
});

describe("checkLicenses", () => {
  const components = [
    c("plain-mit", "MIT"),
    c("agpl", "AGPL-3.0"),
    c("either", "(MIT OR GPL-3.0-only)"),
    c("both", "MIT AND GPL-3.0-only"),
    c("no-way-out", "GPL-3.0-only OR AGPL-3.0-only"),
    c("custom", "SEE LICENSE IN LICENSE"),
    c("unlicensed", undefined),
    c("dev-gpl", "GPL-3.0-only", true),
  ];

  it("denies ids, ANDs with a denied id and ORs without an allowed choice", () => {
    const findings = checkLicenses({ components, deny: ["AGPL-3.0-only", "GPL-3.0-only"] });
    expect(findings.map((f) => `${f.package}: ${f.denied.join(",")}`)).toEqual(["agpl: AGPL-3.0-only", "both: GPL-3.0-only", "no-way-out: GPL-3.0-only,AGPL-3.0-only", "dev-gpl: GPL-3.0-only"]);
    expect(findings.find((f) => f.package === "dev-gpl")).toMatchObject({ dev: true, license: "GPL-3.0-only", version: "1.0.0" });
  });

  it("matches a non-SPDX license only by equality, and denies nothing with an empty list", () => {
    expect(checkLicenses({ components, deny: ["SEE LICENSE IN LICENSE"] }).map((f) => f.package)).toEqual(["custom"]);
    expect(checkLicenses({ components, deny: [] })).toEqual([]);
  });
});
