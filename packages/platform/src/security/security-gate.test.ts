import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { git, makeTempDir, useGitTestEnv } from "#test-support";
import { createMemoryStore, type Store } from "../store/index.js";
import { createSecurityGate, scannedCommitKey, type ScanPolicy, type SecurityFinding, type SecurityGateInput } from "./security-gate.js";

const AWS_EXAMPLE = "AKIA" + "IOSFODNN7EXAMPLE";
const GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";

function policy(overrides: { secrets?: ScanPolicy["secrets"]; allowlist?: string; block?: ScanPolicy["vulnerabilities"]["block"]; advisories?: string[]; npmAudit?: boolean; deny?: string[] } = {}): ScanPolicy {
  return {
    secrets: overrides.secrets ?? "block",
    ...(overrides.allowlist !== undefined ? { allowlist: overrides.allowlist } : {}),
    vulnerabilities: { block: overrides.block ?? "critical", advisories: overrides.advisories ?? ["advisories"], npmAudit: overrides.npmAudit ?? false },
    licenses: { deny: overrides.deny ?? [] },
  };
}

const LOCK = {
  name: "api",
  lockfileVersion: 3,
  packages: {
    "": { name: "api", version: "1.0.0" },
    "node_modules/left-pad": { version: "1.1.0", license: "WTFPL" },
    "node_modules/@acme/gpl-thing": { version: "2.0.0", license: "GPL-3.0-only" },
    "node_modules/fine": { version: "1.0.0", license: "MIT", dev: true },
  },
};

const LEFT_PAD_ADVISORY = {
  schema_version: "1.6.0",
  id: "GHSA-lp00-0000-0001",
  summary: "left-pad drops characters",
  affected: [{ package: { ecosystem: "npm", name: "left-pad" }, ranges: [{ type: "SEMVER", events: [{ introduced: "0" }, { fixed: "1.3.0" }] }] }],
  database_specific: { severity: "CRITICAL" },
};

describe("security gate", () => {
  let project: string;
  let serviceDir: string;
  let cleanup: () => Promise<void>;
  let lines: string[];

  const input = (extra: Partial<SecurityGateInput> = {}): SecurityGateInput => ({ service: "api", run: "run-1", release: "r-0123456789ab", workspace: project, serviceDir, log: (l) => lines.push(l), path: "services/api", ...extra });

  async function blocked(promise: Promise<unknown>): Promise<KeelsonError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeelsonError);
    expect((err as KeelsonError).code).toBe("KEELSON_ERR_SECURITY_GATE");
    return err as KeelsonError;
  }

  beforeEach(async () => {
    ({ dir: project, cleanup } = await makeTempDir("keelson-gate-"));
    serviceDir = join(project, "services", "api");
    await mkdir(join(serviceDir, "src"), { recursive: true });
    await mkdir(join(project, "advisories"), { recursive: true });
    await writeFile(join(serviceDir, "src", "index.ts"), "export const ok = true;\n");
    lines = [];
  });
  afterEach(async () => cleanup());

  describe("planted fixtures", () => {
    it("blocks an AWS key in src/config.ts:3, naming file and line but never showing the key", async () => {
      await writeFile(join(serviceDir, "src", "config.ts"), `// config\nexport const region = "eu-west-1";\nconst key = "${AWS_EXAMPLE}";\n`);
      const err = await blocked(createSecurityGate({ projectDir: project, policy: policy() })(input()));
      expect(err.message).toBe("api: release blocked: aws-access-key-id in src/config.ts:3");
      const findings = (err.details as { findings: SecurityFinding[] }).findings;
      expect(findings).toEqual([expect.objectContaining({ kind: "secret", blocking: true, rule: "aws-access-key-id", file: "src/config.ts", line: 3, excerpt: 'const key = "AKIA…";' })]);
      expect(JSON.stringify(err.details)).not.toContain(AWS_EXAMPLE);
      expect(lines.join("\n")).not.toContain(AWS_EXAMPLE);
      const fingerprint = findings[0]?.kind === "secret" ? findings[0].fingerprint : "";
      expect(lines).toContain(`  src/config.ts:3 aws-access-key-id (fingerprint ${fingerprint})`);
      expect(lines).toContain("secrets: 2 files scanned: 1 finding (blocks the release)");
    });

    it("blocks left-pad@1.1.0 under a critical advisory at block: critical and reports it as a warning at block: none", async () => {
      await writeFile(join(serviceDir, "package-lock.json"), JSON.stringify({ ...LOCK, packages: { "": LOCK.packages[""], "node_modules/left-pad": LOCK.packages["node_modules/left-pad"] } }));
      await writeFile(join(project, "advisories", "left-pad.json"), JSON.stringify(LEFT_PAD_ADVISORY));
      const err = await blocked(createSecurityGate({ projectDir: project, policy: policy({ block: "critical" }) })(input()));
      expect(err.message).toBe("api: release blocked: left-pad@1.1.0 has GHSA-lp00-0000-0001 (critical), fixed in 1.3.0");
      expect(lines).toContain("vulnerabilities: 1 package against 1 advisory: 1 critical; 1 at or above the block level (critical)");

      lines = [];
      const result = await createSecurityGate({ projectDir: project, policy: policy({ block: "none" }) })(input());
      expect(result.findings).toEqual([expect.objectContaining({ kind: "vulnerability", blocking: false, id: "GHSA-lp00-0000-0001", package: "left-pad", version: "1.1.0", severity: "critical", fixed: "1.3.0" })]);
      expect(lines).toContain("security gate: passed with 1 warning");
      expect(result.sbom.components.map((c) => c.purl)).toEqual(["pkg:npm/left-pad@1.1.0"]);
    });

    it("lets an allow-list entry silence the planted secret", async () => {
      await writeFile(join(serviceDir, "src", "config.ts"), `//\n//\nconst key = "${AWS_EXAMPLE}";\n`);
      for (const entry of ["services/api/src/config.ts:3", "src/config.ts:3", "# test fixture\nservices/api/src/*.ts"]) {
        await writeFile(join(project, "security-allow.txt"), `${entry}\n`);
        lines = [];
        const result = await createSecurityGate({ projectDir: project, policy: policy({ allowlist: "security-allow.txt" }) })(input());
        expect(result.findings).toEqual([]);
        expect(lines).toContain("secrets: 2 files scanned: 0 findings, 1 allowed by security-allow.txt");
      }
    });
  });

  it("only warns for secrets under secrets: warn, and skips them under off", async () => {
    await writeFile(join(serviceDir, "src", "config.ts"), `const t = "${GITHUB}";\n`);
    const warned = await createSecurityGate({ projectDir: project, policy: policy({ secrets: "warn" }) })(input());
    expect(warned.findings).toEqual([expect.objectContaining({ kind: "secret", blocking: false, rule: "github-token", file: "src/config.ts", line: 1 })]);
    lines = [];
    const off = await createSecurityGate({ projectDir: project, policy: policy({ secrets: "off" }) })(input());
    expect(off.findings).toEqual([]);
    expect(lines[0]).toBe("secrets: not scanned (security.scan.secrets: off)");
  });

  it("blocks a denied license, orders blocking findings and counts the rest", async () => {
    await writeFile(join(serviceDir, "package-lock.json"), JSON.stringify(LOCK));
    await writeFile(join(project, "advisories", "left-pad.json"), JSON.stringify(LEFT_PAD_ADVISORY));
    await writeFile(join(serviceDir, "src", "config.ts"), `const t = "${GITHUB}";\n`);
    const err = await blocked(createSecurityGate({ projectDir: project, policy: policy({ deny: ["GPL-3.0-only"] }) })(input()));
    expect(err.message).toBe("api: release blocked: github-token in src/config.ts:1 (+2 more)");
    const kinds = (err.details as { findings: SecurityFinding[] }).findings.map((f) => f.kind);
    expect(kinds).toEqual(["secret", "vulnerability", "license"]);

    const licenseOnly = await blocked(createSecurityGate({ projectDir: project, policy: policy({ secrets: "off", block: "none", deny: ["GPL-3.0-only"] }) })(input()));
    expect(licenseOnly.message).toBe("api: release blocked: @acme/gpl-thing@2.0.0 is licensed GPL-3.0-only, which security.scan.licenses.deny rules out");
  });

  it("returns a CycloneDX SBOM of the release with every locked package", async () => {
    await writeFile(join(serviceDir, "package-lock.json"), JSON.stringify(LOCK));
    const result = await createSecurityGate({ projectDir: project, policy: policy(), now: () => new Date("2026-02-03T04:05:06Z") })(input());
    expect(result.sbom).toMatchObject({ bomFormat: "CycloneDX", specVersion: "1.5", metadata: { timestamp: "2026-02-03T04:05:06.000Z", component: { name: "api", version: "r-0123456789ab" } } });
    expect(result.sbom.components.map((c) => `${c.group ?? ""}/${c.name}@${c.version} ${c.scope}`)).toEqual(["@acme/gpl-thing@2.0.0 required", "/fine@1.0.0 optional", "/left-pad@1.1.0 required"]);
    expect(lines).toContain("sbom: CycloneDX 1.5 with 3 components");
    expect(lines).toContain("licenses: 3 packages, nothing denied: 0 findings");
  });

  it("without a lockfile still builds an (empty) SBOM and says what it did not audit", async () => {
    const result = await createSecurityGate({ projectDir: project, policy: policy() })(input());
    expect(result.sbom.components).toEqual([]);
    expect(lines).toContain("vulnerabilities: not audited (no package-lock.json in the service folder)");
  });

  it("adds npm audit's findings when enabled and notes why it was skipped", async () => {
    await writeFile(join(serviceDir, "package-lock.json"), JSON.stringify(LOCK));
    const fake = join(project, "fake-npm");
    const report = { auditReportVersion: 2, vulnerabilities: { fine: { name: "fine", severity: "high", via: [{ source: 7, name: "fine", title: "not so fine", url: "https://github.com/advisories/GHSA-fine-fine-fine", severity: "high", range: "<2.0.0" }], nodes: ["node_modules/fine"] } } };
    await writeFile(fake, `#!${process.execPath}\nprocess.stdout.write(${JSON.stringify(JSON.stringify(report))}); process.exit(1);\n`);
    await chmod(fake, 0o755);
    const result = await createSecurityGate({ projectDir: project, policy: policy({ npmAudit: true }), npmCommand: fake })(input());
    expect(result.findings).toEqual([expect.objectContaining({ kind: "vulnerability", id: "GHSA-fine-fine-fine", package: "fine", version: "1.0.0", severity: "high", source: "npm audit", dev: true, blocking: false })]);
    expect(lines).toContain("vulnerabilities: 3 packages against 0 advisories and npm audit: 1 high; 0 at or above the block level (critical)");

    const skipped = await createSecurityGate({ projectDir: project, policy: policy({ npmAudit: true }), npmCommand: join(project, "no-npm") })(input());
    expect(skipped.notes).toEqual([expect.stringMatching(/^npm audit skipped: .*not installed/)]);
  });

  it("fails on a broken policy file, naming it", async () => {
    await writeFile(join(project, "advisories", "bad.json"), "[{]");
    await expect(createSecurityGate({ projectDir: project, policy: policy() })(input())).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT", message: expect.stringContaining(join(project, "advisories", "bad.json")) });
    await rm(join(project, "advisories", "bad.json"));
    await expect(createSecurityGate({ projectDir: project, policy: policy({ allowlist: "nope.txt" }) })(input())).rejects.toThrow(/security\.scan\.allowlist: .*nope\.txt does not exist/);
  });

  it("reads the current policy when given a function", async () => {
    await writeFile(join(serviceDir, "src", "config.ts"), `const t = "${GITHUB}";\n`);
    let current = policy();
    const gate = createSecurityGate({ projectDir: project, policy: () => current });
    await blocked(gate(input()));
    current = policy({ secrets: "warn" });
    expect((await gate(input())).findings).toHaveLength(1);
  });

  describe("commits", () => {
    useGitTestEnv();
    let store: Store;
    beforeEach(async () => {
      store = createMemoryStore();
      await git(project, ["init", "-q"]);
      await git(project, ["add", "-A"]);
      await git(project, ["commit", "-qm", "base"]);
    });
    afterEach(async () => store.close());

    const head = () => git(project, ["rev-parse", "HEAD"]);
    const gitInput = async () => input({ git: { repoDir: project, servicePath: "services/api", commit: await head() } });

    it("scans the commits since the last passed scan, blocking on a secret a later commit removed", async () => {
      const gate = createSecurityGate({ projectDir: project, policy: policy({ allowlist: "allow.txt" }), store, project: "p" });
      await writeFile(join(project, "allow.txt"), "");
      const base = await head();
      await gate(await gitInput());
      expect(await store.getSetting(scannedCommitKey("p", "api"))).toBe(base);

      await writeFile(join(serviceDir, "src", "leak.ts"), `export const token = "${GITHUB}";\n`);
      await git(project, ["add", "-A"]);
      await git(project, ["commit", "-qm", "oops"]);
      const leak = await head();
      await rm(join(serviceDir, "src", "leak.ts"));
      await git(project, ["add", "-A"]);
      await git(project, ["commit", "-qm", "remove it"]);

      lines = [];
      const err = await blocked(gate(await gitInput()));
      expect(err.message).toBe(`api: release blocked: github-token in src/leak.ts:1 (commit ${leak.slice(0, 12)})`);
      expect(lines).toContain("secrets: 1 file and 2 commits scanned: 1 finding (blocks the release)");
      // A blocked scan does not move the mark: the same commits are scanned until the finding is dealt with.
      expect(await store.getSetting(scannedCommitKey("p", "api"))).toBe(base);

      const fingerprint = (err.details as { findings: Array<{ fingerprint: string }> }).findings[0]?.fingerprint as string;
      await writeFile(join(project, "allow.txt"), `${fingerprint} # rotated on 2026-01-01\n`);
      await gate(await gitInput());
      expect(await store.getSetting(scannedCommitKey("p", "api"))).toBe(await head());
    });

    it("scans only the newest commit on the first run, and reports a secret still in the files once", async () => {
      await writeFile(join(serviceDir, "src", "config.ts"), `const t = "${GITHUB}";\n`);
      await git(project, ["add", "-A"]);
      await git(project, ["commit", "-qm", "add config"]);
      const err = await blocked(createSecurityGate({ projectDir: project, policy: policy(), store, project: "p" })(await gitInput()));
      expect(err.message).toBe("api: release blocked: github-token in src/config.ts:1");
      expect((err.details as { findings: unknown[] }).findings).toHaveLength(1);
      expect(lines).toContain("secrets: 2 files and 1 commit scanned: 1 finding (blocks the release)");
    });

    it("notes, and does not fail, when the source is not in a repository after all", async () => {
      const result = await createSecurityGate({ projectDir: project, policy: policy() })(input({ git: { repoDir: join(project, "..", "definitely-not-here"), servicePath: "x", commit: "abc" } }));
      expect(result.notes).toEqual([expect.stringMatching(/commits were not scanned/)]);
    });
  });
});
