// The license check of the pipeline's security stage: SPDX license expressions read from the
// lockfile, judged against the manifest's deny list (an OR leaves a choice, an AND does not).
import type { Component } from "./vuln-audit.js";

/** A parsed SPDX license expression. */
export type LicenseExpression = { id: string; exception?: string } | { op: "AND" | "OR"; left: LicenseExpression; right: LicenseExpression };

/** A dependency whose license the policy denies. */
export interface LicenseFinding {
  package: string;
  version: string;
  /** The license as the lockfile gives it. */
  license: string;
  /** The denied ids that decided it. */
  denied: string[];
  dev: boolean;
}

function tokenize(text: string): string[] {
  return text.replace(/\(/g, " ( ").replace(/\)/g, " ) ").trim().split(/\s+/).filter(Boolean);
}

/**
 * Parses an SPDX license expression ("MIT", "(MIT OR Apache-2.0)", "GPL-2.0-only WITH
 * Classpath-exception-2.0 AND BSD-3-Clause"); undefined when it is not one ("SEE LICENSE IN …").
 */
export function parseLicenseExpression(text: string): LicenseExpression | undefined {
  const tokens = tokenize(text);
  let i = 0;
  const isId = (t: string | undefined) => t !== undefined && /^[A-Za-z0-9][A-Za-z0-9.+:-]*$/.test(t) && !/^(AND|OR|WITH)$/i.test(t);
  function atom(): LicenseExpression | undefined {
    const t = tokens[i];
    if (t === "(") {
      i++;
      const inner = or();
      if (tokens[i] !== ")") return undefined;
      i++;
      return inner;
    }
    if (!isId(t)) return undefined;
    i++;
    if (tokens[i]?.toUpperCase() === "WITH") {
      i++;
      const exception = tokens[i];
      if (!isId(exception)) return undefined;
      i++;
      return { id: t as string, exception: exception as string };
    }
    return { id: t as string };
  }
  function and(): LicenseExpression | undefined {
    let left = atom();
    while (left && tokens[i]?.toUpperCase() === "AND") {
      i++;
      const right = atom();
      if (!right) return undefined;
      left = { op: "AND", left, right };
    }
    return left;
  }
  function or(): LicenseExpression | undefined {
    let left = and();
    while (left && tokens[i]?.toUpperCase() === "OR") {
      i++;
      const right = and();
      if (!right) return undefined;
      left = { op: "OR", left, right };
    }
    return left;
  }
  const expr = or();
  return expr && i === tokens.length ? expr : undefined;
}

/** Whether a license string is a compound SPDX expression (holds AND or OR). */
export function isCompoundLicense(text: string): boolean {
  const e = parseLicenseExpression(text);
  return e !== undefined && "op" in e;
}

const DEPRECATED_GNU = /^(a?gpl|lgpl)-\d\.\d$/;

/** One spelling per license: lower case, "+" and the deprecated bare GNU ids made explicit. */
export function normalizeLicenseId(id: string): string {
  let s = id.trim().toLowerCase();
  if (s.endsWith("+")) s = `${s.slice(0, -1)}-or-later`;
  else if (DEPRECATED_GNU.test(s)) s = `${s}-only`;
  return s;
}

/** The denied ids an expression cannot avoid, or [] when some choice (or no license) is allowed. */
function deniedBy(expr: LicenseExpression, deny: ReadonlySet<string>, names: ReadonlyMap<string, string>): string[] {
  if ("id" in expr) {
    const n = normalizeLicenseId(expr.id);
    return deny.has(n) ? [names.get(n) ?? expr.id] : [];
  }
  const l = deniedBy(expr.left, deny, names);
  const r = deniedBy(expr.right, deny, names);
  if (expr.op === "AND") return [...new Set([...l, ...r])];
  return l.length > 0 && r.length > 0 ? [...new Set([...l, ...r])] : [];
}

/**
 * The components whose license the deny list (SPDX ids) rules out: an id on the list, an AND
 * with one, or an OR whose every choice is on it. Components without a license pass (the
 * SBOM shows them); a license that is not an SPDX expression is denied only when it equals an
 * entry.
 *
 * @example
 * checkLicenses({ components, deny: ["AGPL-3.0-only"] })
 * // "MIT OR AGPL-3.0-only" passes; "MIT AND AGPL-3.0-only" and "AGPL-3.0" are findings
 */
export function checkLicenses(input: { components: readonly Component[]; deny: readonly string[] }): LicenseFinding[] {
  if (input.deny.length === 0) return [];
  const names = new Map(input.deny.map((d) => [normalizeLicenseId(d), d]));
  const deny = new Set(names.keys());
  const findings: LicenseFinding[] = [];
  for (const c of input.components) {
    if (c.license === undefined) continue;
    const expr = parseLicenseExpression(c.license);
    const denied = expr ? deniedBy(expr, deny, names) : deny.has(normalizeLicenseId(c.license)) ? [names.get(normalizeLicenseId(c.license)) as string] : [];
    if (denied.length > 0) findings.push({ package: c.name, version: c.version, license: c.license, denied, dev: c.dev });
  }
  return findings;
}
