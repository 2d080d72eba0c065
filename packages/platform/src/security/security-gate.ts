// The pipeline's security stage: secret scan (files and new commits), dependency audit, license
// check and SBOM for one service, judged against the manifest's `security.scan` policy. What
// the policy blocks throws KEELSON_ERR_SECURITY_GATE; the rest is returned as warnings.
import { resolve } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import type { SecuritySpecOut } from "../manifest/index.js";
import type { Store } from "../store/index.js";
import { checkLicenses, type LicenseFinding } from "./license-policy.js";
import { buildSbom, type CycloneDxBom } from "./sbom.js";
import { loadAllowList, scanCommitsForSecrets, scanForSecrets, type SecretFinding } from "./secret-scan.js";
import { auditDependencies, loadAdvisories, readLockfile, runNpmAudit, severityBlocks, severityRank, type Component, type VulnerabilityFinding } from "./vuln-audit.js";

/** The manifest's `security.scan` (defaults applied). */
export type ScanPolicy = SecuritySpecOut["scan"];

/** One finding of the gate. `blocking`: the policy stops the release for it. Never holds a secret. */
export type SecurityFinding =
  | ({ kind: "secret"; blocking: boolean } & SecretFinding)
  | ({ kind: "vulnerability"; blocking: boolean } & VulnerabilityFinding)
  | ({ kind: "license"; blocking: boolean } & LicenseFinding);

/** What the pipeline hands the gate (the pipeline's ScanHook input). */
export interface SecurityGateInput {
  service: string;
  run: string;
  workspace: string;
  /** The service's files as the pipeline built them. */
  serviceDir: string;
  log: (line: string) => void;
  /** The release being built (the SBOM's subject); the run id when absent. */
  release?: string;
  /** The service folder relative to the manifest, as allow-list entries may name files. */
  path?: string;
  /** The repository the sources come from, for scanning the commits since the last scan. */
  git?: { repoDir: string; servicePath: string; commit?: string };
}

/** What a passed gate gives the pipeline: the SBOM and the findings that did not block. */
export interface SecurityGateResult {
  sbom: CycloneDxBom;
  findings: SecurityFinding[];
  /** Parts that did not run fully and why (npm audit offline, no lockfile, commits not scanned). */
  notes: string[];
}

/** The gate as the pipeline calls it. */
export type SecurityGate = (input: SecurityGateInput) => Promise<SecurityGateResult>;

export interface SecurityGateOptions {
  /** The manifest's folder: allow-list and advisory paths are relative to it. */
  projectDir: string;
  /** The policy, or a function giving the current one (the manifest may be reloaded). */
  policy: ScanPolicy | (() => ScanPolicy);
  /** With `project`: remembers the last scanned commit per service, so only new commits are scanned. */
  store?: Store;
  project?: string;
  /** Longest wait for `npm audit` (default 60 s). */
  npmAuditTimeoutMs?: number;
  /** The npm binary (tests use a stand-in). */
  npmCommand?: string;
  now?: () => Date;
}

/** The store setting holding the last commit the gate scanned for a service. */
export function scannedCommitKey(project: string, service: string): string {
  return `security.scan-commit/${project}/${service}`;
}

/** A finding in one line, for logs and the blocking error. Never the secret. */
export function describeFinding(f: SecurityFinding): string {
  switch (f.kind) {
    case "secret":
      return `${f.rule} in ${f.file}:${f.line}${f.commit ? ` (commit ${f.commit.slice(0, 12)})` : ""}`;
    case "vulnerability":
      return `${f.package}@${f.version} has ${f.id} (${f.severity})${f.fixed ? `, fixed in ${f.fixed}` : ""}`;
    case "license":
      return `${f.package}@${f.version} is licensed ${f.license}, which security.scan.licenses.deny rules out`;
  }
}

const KIND_ORDER = { secret: 0, vulnerability: 1, license: 2 } as const;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * Creates the security gate the pipeline runs as its "scan" stage. Per service it scans the
 * files (and, with a git source, the commits since the last passed scan; the newest commit
 * on the first run) for secrets, audits package-lock.json against the OSV advisories (and
 * `npm audit` when enabled), checks licenses against the deny list and builds a CycloneDX
 * SBOM. It logs one summary line per check and one line per finding, then either returns
 * `{ sbom, findings, notes }` or throws KEELSON_ERR_SECURITY_GATE naming the first blocking
 * finding, with every finding (redacted) in `details.findings`.
 *
 * @example
 * const scan = createSecurityGate({ projectDir, policy: manifest.security.scan, store, project });
 * createPipelineRunner({ store, project, stateDir, scan });
 */
export function createSecurityGate(options: SecurityGateOptions): SecurityGate {
  const policyOf = () => (typeof options.policy === "function" ? options.policy() : options.policy);
  const now = options.now ?? (() => new Date());

  return async (input) => {
    const policy = policyOf();
    const { service, log } = input;
    const notes: string[] = [];
    const findings: SecurityFinding[] = [];
    const note = (text: string) => {
      notes.push(text);
      log(`  note: ${text}`);
    };

    // Secrets: the service's files, then the lines new commits added.
    let scannedCommit: string | undefined;
    if (policy.secrets === "off") log("secrets: not scanned (security.scan.secrets: off)");
    else {
      const allow = await loadAllowList(policy.allowlist === undefined ? undefined : resolve(options.projectDir, policy.allowlist));
      const files = await scanForSecrets({ dir: input.serviceDir, allow, ...(input.path !== undefined ? { allowAs: input.path } : {}) });
      const secrets: SecretFinding[] = [...files.findings];
      let allowed = files.allowed;
      let commits = 0;
      if (input.git?.commit !== undefined) {
        const { repoDir, servicePath, commit } = input.git;
        const last = options.store && options.project ? await options.store.getSetting(scannedCommitKey(options.project, service)) : undefined;
        try {
          const scanned = await scanCommitsForSecrets({
            repoDir,
            toCommit: commit,
            ...(last ? { fromCommit: last } : { maxCommits: 1 }),
            paths: [servicePath === "" ? "." : servicePath],
            relativeTo: servicePath === "" ? "." : servicePath,
            allow,
            ...(input.path !== undefined ? { allowAs: input.path } : {}),
          });
          commits = scanned.commits;
          allowed += scanned.allowed;
          if (scanned.note) note(scanned.note);
          // A secret still in the files is reported once, from the files.
          const inFiles = new Set(files.findings.map((f) => f.fingerprint));
          const seen = new Set<string>();
          for (const f of scanned.findings) {
            if (inFiles.has(f.fingerprint) || seen.has(`${f.fingerprint} ${f.commit}`)) continue;
            seen.add(`${f.fingerprint} ${f.commit}`);
            secrets.push(f);
          }
          if (scanned.note === undefined || !/not a git repository|not installed/.test(scanned.note)) scannedCommit = commit;
        } catch (err) {
          note(`commits were not scanned: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      const blocking = policy.secrets === "block";
      for (const s of secrets) findings.push({ kind: "secret", blocking, ...s });
      log(`secrets: ${plural(files.files, "file")}${input.git?.commit !== undefined ? ` and ${plural(commits, "commit")}` : ""} scanned: ${plural(secrets.length, "finding")}${allowed > 0 ? `, ${allowed} allowed by ${policy.allowlist}` : ""}${secrets.length > 0 ? (blocking ? " (blocks the release)" : " (warnings: security.scan.secrets is warn)") : ""}`);
      for (const s of secrets) log(`  ${s.file}:${s.line} ${s.rule}${s.commit ? ` commit ${s.commit.slice(0, 12)}` : ""} (fingerprint ${s.fingerprint})`);
    }

    // Dependencies: the lockfile against the advisories, npm audit, the license deny list.
    const lock = await readLockfile(input.serviceDir);
    const components: Component[] = lock?.components ?? [];
    const advisories = await loadAdvisories(policy.vulnerabilities.advisories.map((p) => resolve(options.projectDir, p)));
    const block = policy.vulnerabilities.block;
    if (!lock) {
      log("vulnerabilities: not audited (no package-lock.json in the service folder)");
      log("licenses: not checked (no package-lock.json in the service folder)");
    } else {
      const vulns = auditDependencies({ components, advisories });
      let sources = `${advisories.length} ${advisories.length === 1 ? "advisory" : "advisories"}`;
      if (policy.vulnerabilities.npmAudit) {
        const npm = await runNpmAudit({ dir: input.serviceDir, timeoutMs: options.npmAuditTimeoutMs ?? 60_000, components, ...(options.npmCommand ? { command: options.npmCommand } : {}) });
        if ("skipped" in npm) note(`npm audit skipped: ${npm.skipped}`);
        else {
          sources += " and npm audit";
          const have = new Set(vulns.map((v) => `${v.id} ${v.package}@${v.version}`));
          for (const v of npm.findings) if (!have.has(`${v.id} ${v.package}@${v.version}`)) vulns.push(v);
          vulns.sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || a.package.localeCompare(b.package));
        }
      }
      const counts = (["critical", "high", "moderate", "low", "unknown"] as const).map((s) => [s, vulns.filter((v) => v.severity === s).length] as const).filter(([, n]) => n > 0);
      const blockingVulns = vulns.filter((v) => severityBlocks(v.severity, block)).length;
      log(
        `vulnerabilities: ${plural(components.length, "package")} against ${sources}: ${vulns.length === 0 ? "none found" : counts.map(([s, n]) => `${n} ${s}`).join(", ")}${vulns.length > 0 ? `; ${blockingVulns} at or above the block level (${block})` : ""}`,
      );
      for (const v of vulns) {
        findings.push({ kind: "vulnerability", blocking: severityBlocks(v.severity, block), ...v });
        log(`  ${v.package}@${v.version} ${v.id} ${v.severity}${v.dev ? " (dev)" : ""}${v.fixed ? ` fixed in ${v.fixed}` : ""}${v.summary ? `: ${v.summary}` : ""}`);
      }
      const licenses = checkLicenses({ components, deny: policy.licenses.deny });
      const unlicensed = components.filter((c) => c.license === undefined).length;
      log(`licenses: ${plural(components.length, "package")}${policy.licenses.deny.length > 0 ? `, denied: ${policy.licenses.deny.join(", ")}` : ", nothing denied"}: ${plural(licenses.length, "finding")}${unlicensed > 0 ? ` (${unlicensed} without a license in the lockfile)` : ""}`);
      for (const l of licenses) {
        findings.push({ kind: "license", blocking: true, ...l });
        log(`  ${l.package}@${l.version} ${l.license}${l.dev ? " (dev)" : ""}`);
      }
    }

    const sbom = buildSbom({ service, release: input.release ?? input.run, components, now: now() });
    log(`sbom: CycloneDX ${sbom.specVersion} with ${plural(sbom.components.length, "component")}`);

    const blocking = findings.filter((f) => f.blocking).sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || (a.kind === "vulnerability" && b.kind === "vulnerability" ? severityRank(b.severity) - severityRank(a.severity) : 0));
    const first = blocking[0];
    if (first) {
      const message = `${service}: release blocked: ${describeFinding(first)}${blocking.length > 1 ? ` (+${blocking.length - 1} more)` : ""}`;
      log(`security gate: ${message}`);
      throw new KeelsonError("KEELSON_ERR_SECURITY_GATE", message, { details: { service, findings: [...blocking, ...findings.filter((f) => !f.blocking)], notes } });
    }
    if (scannedCommit !== undefined && options.store && options.project) await options.store.setSetting(scannedCommitKey(options.project, service), scannedCommit);
    log(`security gate: passed${findings.length > 0 ? ` with ${plural(findings.length, "warning")}` : ""}`);
    return { sbom, findings, notes };
  };
}
