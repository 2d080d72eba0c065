import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir } from "#test-support";
import { auditDependencies, componentsFromLockfile, cvss3BaseScore, loadAdvisories, parseNpmAudit, readLockfile, runNpmAudit, severityBlocks, type Advisory, type Component } from "./vuln-audit.js";

const LOCK_V3 = {
  name: "api",
  version: "1.0.0",
  lockfileVersion: 3,
  requires: true,
  packages: {
    "": { name: "api", version: "1.0.0", dependencies: { "left-pad": "1.1.0" } },
    "node_modules/left-pad": { version: "1.1.0", resolved: "https://registry.npmjs.org/left-pad/-/left-pad-1.1.0.tgz", license: "WTFPL" },
    "node_modules/@scope/util": { version: "2.0.0", license: "MIT", dev: true },
    "node_modules/a": { version: "1.0.0", license: { type: "ISC" } },
    "node_modules/a/node_modules/left-pad": { version: "1.3.0", license: "WTFPL" },
    "node_modules/b/node_modules/@scope/util": { version: "2.0.0", license: "MIT" },
    "node_modules/alias": { name: "real-name", version: "3.0.0" },
    "node_modules/shared": { resolved: "packages/shared", link: true },
    "packages/shared": { name: "shared", version: "0.0.1" },
  },
};

function component(name: string, version: string, extra: Partial<Component> = {}): Component {
  return { name, version, dev: false, paths: [`node_modules/${name}`], ...extra };
}

function osv(id: string, pkg: string, events: Array<Record<string, string>>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schema_version: "1.6.0", id, summary: `${pkg} is bad`, affected: [{ package: { ecosystem: "npm", name: pkg }, ranges: [{ type: "SEMVER", events }] }], ...extra };
}

describe("lockfiles", () => {
  it("lists each installed name@version once, without the root, workspace folders or links", () => {
    const comps = componentsFromLockfile(LOCK_V3);
    expect(comps.map((c) => `${c.name}@${c.version}`)).toEqual(["@scope/util@2.0.0", "a@1.0.0", "left-pad@1.1.0", "left-pad@1.3.0", "real-name@3.0.0"]);
    expect(comps.find((c) => c.name === "a")?.license).toBe("ISC");
    // Dev only when every copy is dev.
    expect(comps.find((c) => c.name === "@scope/util")).toMatchObject({ dev: false, paths: ["node_modules/@scope/util", "node_modules/b/node_modules/@scope/util"] });
  });

  it("reads lockfileVersion 1 dependencies as a fallback", () => {
    const comps = componentsFromLockfile({ lockfileVersion: 1, dependencies: { x: { version: "1.0.0", dev: true, dependencies: { y: { version: "2.0.0" } } }, z: { version: "file:../z" } } });
    expect(comps.map((c) => `${c.name}@${c.version}:${c.dev}:${c.paths.join()}`)).toEqual(["x@1.0.0:true:node_modules/x", "y@2.0.0:false:node_modules/x/node_modules/y"]);
  });

  describe("files", () => {
    let dir: string;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ dir, cleanup } = await makeTempDir("keelson-lock-")));
    afterEach(async () => cleanup());

    it("reads package-lock.json, is undefined without one, and names a broken one", async () => {
      expect(await readLockfile(dir)).toBeUndefined();
      await writeFile(join(dir, "package-lock.json"), JSON.stringify(LOCK_V3));
      expect((await readLockfile(dir))?.components).toHaveLength(5);
      await writeFile(join(dir, "package-lock.json"), "{ nope");
      await expect(readLockfile(dir)).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT", message: expect.stringContaining(join(dir, "package-lock.json")) });
    });
  });
});

describe("CVSS v3 base scores", () => {
  it.each([
    ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8],
    ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10],
    ["CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1],
    ["CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5],
    ["CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9],
    ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0],
  ])("%s → %s", (vector, score) => {
    expect(cvss3BaseScore(vector)).toBe(score);
  });

  it("is undefined for other vectors", () => {
    expect(cvss3BaseScore("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")).toBeUndefined();
    expect(cvss3BaseScore("CVSS:3.1/AV:N")).toBeUndefined();
  });
});

describe("advisories", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir("keelson-osv-")));
  afterEach(async () => cleanup());

  it("reads single advisories, lists and folders, keeping npm packages and their severity", async () => {
    await mkdir(join(dir, "db", "nested"), { recursive: true });
    await writeFile(join(dir, "one.json"), JSON.stringify(osv("GHSA-aaaa-bbbb-cccc", "left-pad", [{ introduced: "0" }, { fixed: "1.3.0" }], { database_specific: { severity: "CRITICAL" } })));
    await writeFile(
      join(dir, "db", "list.json"),
      JSON.stringify([
        osv("GHSA-medium", "x", [{ introduced: "1.0.0" }], { database_specific: { severity: "MEDIUM" } }),
        osv("CVE-cvss", "y", [{ introduced: "0" }], { severity: [{ type: "CVSS_V3", score: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N" }] }),
        osv("CVE-numeric", "z", [{ introduced: "0" }], { severity: [{ type: "CVSS_V3", score: "7.5" }] }),
        osv("CVE-none", "w", [{ introduced: "0" }]),
        { id: "PYSEC-1", affected: [{ package: { ecosystem: "PyPI", name: "requests" }, ranges: [{ type: "ECOSYSTEM", events: [{ introduced: "0" }] }] }] },
      ]),
    );
    await writeFile(join(dir, "db", "nested", "low.json"), JSON.stringify(osv("GHSA-low", "v", [{ introduced: "0" }], { database_specific: { severity: "LOW" } })));
    await writeFile(join(dir, "db", "README.md"), "not an advisory");
    const advisories = await loadAdvisories([join(dir, "one.json"), join(dir, "db")]);
    expect(advisories.map((a) => `${a.id}:${a.severity}`)).toEqual(["GHSA-aaaa-bbbb-cccc:critical", "GHSA-medium:moderate", "CVE-cvss:moderate", "CVE-numeric:high", "CVE-none:unknown", "GHSA-low:low"]);
    expect(advisories[0]).toMatchObject({ summary: "left-pad is bad", source: join(dir, "one.json"), affected: [{ package: "left-pad" }] });
  });

  it("names the file and the entry for broken input", async () => {
    await writeFile(join(dir, "broken.json"), "{ not json");
    await expect(loadAdvisories([join(dir, "broken.json")])).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT", message: expect.stringContaining(`${join(dir, "broken.json")}: not valid JSON`) });
    await writeFile(join(dir, "shape.json"), JSON.stringify([osv("A", "a", [{ introduced: "0" }]), { id: "B", affected: [{ package: { ecosystem: "npm" } }] }]));
    await expect(loadAdvisories([join(dir, "shape.json")])).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT", message: expect.stringContaining(`${join(dir, "shape.json")}[1] affected[0].package.name: expected a non-empty string`) });
    await writeFile(join(dir, "noid.json"), JSON.stringify({ affected: [] }));
    await expect(loadAdvisories([join(dir, "noid.json")])).rejects.toThrow(/noid\.json id: expected a non-empty string/);
    await writeFile(join(dir, "events.json"), JSON.stringify(osv("C", "c", [{ introduced: 1 } as unknown as Record<string, string>])));
    await expect(loadAdvisories([join(dir, "events.json")])).rejects.toThrow(/events\.json affected\[0\]\.ranges\[0\]\.events\[0\]: expected one of introduced/);
    await expect(loadAdvisories([join(dir, "missing")])).rejects.toThrow(/missing does not exist/);
  });
});

function adv(id: string, pkg: string, ranges: Array<Array<Record<string, string>>>, extra: Partial<Advisory> = {}): Advisory {
  return { id, aliases: [], summary: "bad", severity: "high", affected: [{ package: pkg, ranges: ranges.map((events) => ({ events: events as Advisory["affected"][number]["ranges"][number]["events"] })), versions: [] }], source: "test.json", ...extra };
}

describe("auditDependencies", () => {
  it("matches SEMVER ranges: introduced inclusive, fixed exclusive, last_affected inclusive, with the fix", () => {
    const components = ["0.9.0", "1.0.0", "1.2.9", "1.3.0", "2.0.0", "2.1.0", "2.1.1", "3.0.0-beta.1"].map((v) => component("p", v));
    const advisories = [adv("GHSA-1", "p", [[{ introduced: "1.0.0" }, { fixed: "1.3.0" }, { introduced: "2.0.0" }, { last_affected: "2.1.0" }], [{ introduced: "3.0.0-alpha" }, { fixed: "3.0.0" }]])];
    const hits = auditDependencies({ components, advisories });
    expect(hits.map((f) => `${f.version}${f.fixed ? `→${f.fixed}` : ""}`).sort()).toEqual(["1.0.0→1.3.0", "1.2.9→1.3.0", "2.0.0", "2.1.0", "3.0.0-beta.1→3.0.0"].sort());
  });

  it("matches exact versions lists and ignores versions ranges cannot compare", () => {
    const components = [component("q", "1.0.1"), component("q", "git+https://example.test/q.git")];
    const a: Advisory = { id: "X", aliases: [], summary: "", severity: "low", affected: [{ package: "q", ranges: [{ events: [{ introduced: "0" }] }], versions: ["1.0.1", "git+https://example.test/q.git"] }], source: "s" };
    expect(auditDependencies({ components, advisories: [a] }).map((f) => f.version).sort()).toEqual(["1.0.1", "git+https://example.test/q.git"]);
  });

  it("reports aliases of one advisory once and sorts worst first", () => {
    const components = [component("a", "1.0.0"), component("b", "1.0.0", { dev: true })];
    const advisories = [
      adv("CVE-2020-1", "a", [[{ introduced: "0" }]], { severity: "low" }),
      adv("GHSA-dup", "a", [[{ introduced: "0" }]], { aliases: ["CVE-2020-1"], severity: "low" }),
      adv("GHSA-b", "b", [[{ introduced: "0" }]], { severity: "critical" }),
    ];
    const hits = auditDependencies({ components, advisories });
    expect(hits.map((f) => `${f.id} ${f.package}@${f.version} ${f.severity} dev=${f.dev}`)).toEqual(["GHSA-b b@1.0.0 critical dev=true", "CVE-2020-1 a@1.0.0 low dev=false"]);
  });

  it("ranks severities against the block threshold, unknown as moderate", () => {
    expect(severityBlocks("critical", "critical")).toBe(true);
    expect(severityBlocks("high", "critical")).toBe(false);
    expect(severityBlocks("unknown", "moderate")).toBe(true);
    expect(severityBlocks("unknown", "high")).toBe(false);
    expect(severityBlocks("critical", "none")).toBe(false);
    expect(severityBlocks("low", "low")).toBe(true);
  });
});

const NPM_REPORT = {
  auditReportVersion: 2,
  vulnerabilities: {
    "left-pad": {
      name: "left-pad",
      severity: "critical",
      isDirect: true,
      via: [{ source: 1099, name: "left-pad", dependency: "left-pad", title: "Prototype pollution in left-pad", url: "https://github.com/advisories/GHSA-abcd-efgh-ijkl", severity: "critical", range: "<1.3.0" }],
      effects: ["a"],
      range: "<1.3.0",
      nodes: ["node_modules/left-pad", "node_modules/a/node_modules/left-pad"],
      fixAvailable: true,
    },
    a: { name: "a", severity: "critical", via: ["left-pad"], effects: [], range: "*", nodes: ["node_modules/a"], fixAvailable: true },
  },
  metadata: {},
};

describe("npm audit", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir("keelson-npm-audit-")));
  afterEach(async () => cleanup());

  async function fakeNpm(body: string): Promise<string> {
    const file = join(dir, "fake-npm");
    await writeFile(file, `#!${process.execPath}\n${body}\n`);
    await chmod(file, 0o755);
    return file;
  }

  it("parses a version 2 report into findings for the installed versions in range", () => {
    const components = componentsFromLockfile(LOCK_V3);
    expect(parseNpmAudit(NPM_REPORT, components)).toEqual([{ id: "GHSA-abcd-efgh-ijkl", package: "left-pad", version: "1.1.0", severity: "critical", summary: "Prototype pollution in left-pad", source: "npm audit", dev: false }]);
    expect(parseNpmAudit({ advisories: {} })).toBeUndefined();
  });

  it("runs npm with the lockfile only and reads its report even when it exits 1", async () => {
    await writeFile(join(dir, "package-lock.json"), JSON.stringify(LOCK_V3));
    const command = await fakeNpm(`if (process.argv.slice(2).join(" ") !== "audit --json --package-lock-only") process.exit(9); process.stdout.write(${JSON.stringify(JSON.stringify(NPM_REPORT))}); process.exit(1);`);
    const result = await runNpmAudit({ dir, timeoutMs: 10_000, command });
    expect(result).toEqual({ findings: [expect.objectContaining({ id: "GHSA-abcd-efgh-ijkl", version: "1.1.0" })] });
  });

  it("skips with a reason, never throwing, when npm is missing, hangs, fails or prints no report", async () => {
    expect(await runNpmAudit({ dir, timeoutMs: 5_000, command: join(dir, "no-such-npm") })).toEqual({ skipped: expect.stringMatching(/is not installed/) });
    const hang = await fakeNpm("setTimeout(() => {}, 60_000);");
    const t = Date.now();
    expect(await runNpmAudit({ dir, timeoutMs: 300, command: hang })).toEqual({ skipped: "npm audit did not answer within 300 ms" });
    expect(Date.now() - t).toBeLessThan(10_000);
    const offline = await fakeNpm(`process.stdout.write(JSON.stringify({ error: { code: "ENOTFOUND", summary: "request to https://registry.npmjs.org failed" } })); process.exit(1);`);
    expect(await runNpmAudit({ dir, timeoutMs: 5_000, command: offline })).toEqual({ skipped: "npm audit failed: ENOTFOUND: request to https://registry.npmjs.org failed" });
    const garbage = await fakeNpm(`process.stdout.write("npm ERR! something"); process.exit(1);`);
    expect(await runNpmAudit({ dir, timeoutMs: 5_000, command: garbage })).toEqual({ skipped: "npm audit printed no JSON report: npm ERR! something" });
    const old = await fakeNpm(`process.stdout.write(JSON.stringify({ advisories: {} }));`);
    expect(await runNpmAudit({ dir, timeoutMs: 5_000, command: old })).toEqual({ skipped: expect.stringMatching(/unrecognised report/) });
  });
});
