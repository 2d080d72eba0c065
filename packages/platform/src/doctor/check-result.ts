// What one doctor check found: a line with pass, warn, fail or skip, and what to do about it.

/** The checks `keelson doctor` runs, in the order it prints them. */
export const CHECK_NAMES = ["node", "state-dir", "manifest", "store", "ports", "runtime", "pipeline-commands", "readiness"] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** pass: fine; warn: works, but likely not as meant; fail: needs fixing; skip: could not be checked now (says why). */
export type CheckStatus = "pass" | "warn" | "fail" | "skip";

/** One line of the doctor's report. */
export interface CheckResult {
  check: CheckName;
  status: CheckStatus;
  /** What was found, in one line. */
  message: string;
  /** More lines, e.g. every problem of an invalid manifest. */
  details?: string[];
  /** What to do about a warn or fail. */
  fix?: string;
}

export function pass(check: CheckName, message: string, details?: string[]): CheckResult {
  return { check, status: "pass", message, ...(details === undefined || details.length === 0 ? {} : { details }) };
}

export function warn(check: CheckName, message: string, fix: string, details?: string[]): CheckResult {
  return { check, status: "warn", message, fix, ...(details === undefined || details.length === 0 ? {} : { details }) };
}

export function fail(check: CheckName, message: string, fix: string, details?: string[]): CheckResult {
  return { check, status: "fail", message, fix, ...(details === undefined || details.length === 0 ? {} : { details }) };
}

export function skip(check: CheckName, message: string): CheckResult {
  return { check, status: "skip", message };
}
