// Scorecards: facts about each service checked by rules that are data (id, title, why, check),
// as Backstage's Tech Insights does. A score per service and per team; what counts is stated in
// docs/concepts.md#scorecards.

/** What a rule concluded: "unknown" when Keelson lacks the evidence, "n/a" when the rule does not apply. */
export type RuleStatus = "pass" | "fail" | "unknown" | "n/a";

/** The facts of one service the rules look at, gathered by the catalog. */
export interface ServiceFacts {
  service: string;
  owner: string;
  /** Whether `owner` is a team declared under `teams`. */
  ownerIsTeam: boolean;
  lifecycle: "experimental" | "production" | "deprecated" | undefined;
  /** Names of the service's SLOs. */
  slos: string[];
  /** The readiness probe's path, if any. */
  readiness: string | undefined;
  /** Test stages declared in the manifest (`test`, or `pipeline.stages` named like "test"); undefined when the stages come from package.json. */
  declaredTests: string[] | undefined;
  /** The latest successful pipeline run: its stage names. */
  lastPipeline: { at: string; run: string | undefined; stages: string[] } | undefined;
  /** The current release's scan: findings by severity; undefined without a release or a recorded scan. */
  vulnerabilities: { release: string; bySeverity: Record<string, number> } | undefined;
  /** Stale flags that belong to the service (see staleFlagsOf); undefined when flags were not looked at. */
  staleFlags: Array<{ flag: string; why: string[] }> | undefined;
  /** The latest successful rollout. */
  lastDeploy: { at: string; release: string | undefined } | undefined;
  /** The time "recent" is measured from. */
  now: Date;
}

export interface RuleResult {
  status: RuleStatus;
  /** One sentence: what was found. */
  reason: string;
}

/** A scorecard rule: data, so the docs and the API can list what is checked and why. */
export interface ScorecardRule {
  id: string;
  title: string;
  /** Why it matters, for the person fixing it. */
  why: string;
  check(facts: ServiceFacts): RuleResult;
}

export interface RuleOutcome extends RuleResult {
  rule: string;
  title: string;
}

export interface Scorecard {
  service: string;
  owner: string;
  /** passed / (passed + failed) × 100, rounded; undefined when no rule had a known outcome. */
  score: number | undefined;
  passed: number;
  failed: number;
  unknown: number;
  results: RuleOutcome[];
}

/** A service is "deployed recently" when its last successful rollout is at most this old. */
export const RECENT_DEPLOY_DAYS = 30;
const DAY_MS = 86_400_000;

/** A stage counts as tests when its name says so: test, tests, unit-test, e2e-tests, test-int, ... */
export const TEST_STAGE = /(^|-)tests?($|-)|^e2e$/;

const pass = (reason: string): RuleResult => ({ status: "pass", reason });
const fail = (reason: string): RuleResult => ({ status: "fail", reason });
const unknown = (reason: string): RuleResult => ({ status: "unknown", reason });

/** The seven rules, in the order they are shown. */
export const SCORECARD_RULES: readonly ScorecardRule[] = Object.freeze([
  {
    id: "owner-team",
    title: "Has an owner team",
    why: "Someone must answer when the service breaks: a declared team has members, a contact and its own notifications.",
    check: (f) => (f.ownerIsTeam ? pass(`owned by team ${f.owner}`) : fail(`owner "${f.owner}" is not a team declared under teams:`)),
  },
  {
    id: "slo",
    title: "Has an SLO",
    why: "Without an objective nobody can tell good service from bad: no burn-rate alerts, no incidents, no default thresholds for canary analysis.",
    check: (f) => (f.slos.length > 0 ? pass(`SLOs: ${f.slos.join(", ")}`) : fail("no SLO declared under slos:")),
  },
  {
    id: "readiness",
    title: "Has a readiness check",
    why: "Without one a replica gets traffic as soon as its process starts, and a rollout cannot tell a broken release from a good one.",
    check: (f) => (f.readiness !== undefined ? pass(`readiness: ${f.readiness}`) : fail("no readiness probe declared")),
  },
  {
    id: "tests",
    title: "Pipeline runs tests",
    why: "A release that no test has run against is found broken by its users, or by canary analysis at best.",
    check: (f) => {
      if (f.lastPipeline !== undefined) {
        const tests = f.lastPipeline.stages.filter((s) => TEST_STAGE.test(s));
        const run = f.lastPipeline.run === undefined ? "the last pipeline run" : `the last pipeline run (${f.lastPipeline.run})`;
        return tests.length > 0 ? pass(`${run} ran ${tests.join(", ")}`) : fail(`${run} had no test stage (stages: ${f.lastPipeline.stages.join(", ") || "none"})`);
      }
      if (f.declaredTests === undefined) return unknown("no pipeline run recorded yet, and the stages come from package.json");
      return f.declaredTests.length > 0 ? pass(`declared (${f.declaredTests.join(", ")}); no pipeline run recorded yet`) : fail("the declared pipeline stages include no test stage");
    },
  },
  {
    id: "vulnerabilities",
    title: "No critical vulnerabilities",
    why: "A known critical vulnerability in a running release is the cheapest way in for an attacker.",
    check: (f) => {
      if (f.vulnerabilities === undefined) return unknown("the running release has no recorded security scan");
      const critical = f.vulnerabilities.bySeverity.critical ?? 0;
      return critical === 0 ? pass(`no critical vulnerability in ${f.vulnerabilities.release}`) : fail(`${critical} critical ${critical === 1 ? "vulnerability" : "vulnerabilities"} in ${f.vulnerabilities.release}`);
    },
  },
  {
    id: "flags",
    title: "No stale flags",
    why: "A flag nobody evaluates or changes any more is a finished rollout whose dead code path still ships and can still be switched.",
    check: (f) => {
      if (f.staleFlags === undefined) return unknown("flags were not looked at");
      if (f.staleFlags.length === 0) return pass("no stale flag owned by the team or used by the service's routes");
      return fail(`stale: ${f.staleFlags.map((s) => (s.why.length > 0 ? `${s.flag} (${s.why.join("; ")})` : s.flag)).join(", ")}`);
    },
  },
  {
    id: "deployed-recently",
    title: `Deployed in the last ${RECENT_DEPLOY_DAYS} days`,
    why: "A service nobody deploys rots: its dependencies age, its pipeline breaks unnoticed, and the first deploy in months is the risky one.",
    check: (f) => {
      if (f.lifecycle === "deprecated") return { status: "n/a", reason: "deprecated services are not expected to be deployed" };
      if (f.lastDeploy === undefined) return fail("no successful rollout recorded");
      const ageMs = f.now.getTime() - Date.parse(f.lastDeploy.at);
      const days = Math.floor(ageMs / DAY_MS);
      const when = `last deployed ${f.lastDeploy.at.slice(0, 10)}${f.lastDeploy.release === undefined ? "" : ` (${f.lastDeploy.release})`}`;
      return ageMs <= RECENT_DEPLOY_DAYS * DAY_MS ? pass(`${when}, ${days === 0 ? "today" : days === 1 ? "yesterday" : `${days} days ago`}`) : fail(`${when}, ${days} days ago`);
    },
  },
]);

/**
 * Checks every rule against one service's facts.
 *
 * @example
 * const card = scoreService(facts);
 * card.results.filter((r) => r.status === "fail").map((r) => `${r.title}: ${r.reason}`);
 */
export function scoreService(facts: ServiceFacts, rules: readonly ScorecardRule[] = SCORECARD_RULES): Scorecard {
  const results = rules.map((r) => ({ rule: r.id, title: r.title, ...r.check(facts) }));
  const passed = results.filter((r) => r.status === "pass").length;
  const failed = results.filter((r) => r.status === "fail").length;
  const unknownCount = results.filter((r) => r.status === "unknown").length;
  return { service: facts.service, owner: facts.owner, score: passed + failed === 0 ? undefined : Math.round((100 * passed) / (passed + failed)), passed, failed, unknown: unknownCount, results };
}

/** A team's score: the mean of its services' scores (services without one left out), rounded. */
export function teamScore(cards: readonly Pick<Scorecard, "score">[]): number | undefined {
  const scores = cards.map((c) => c.score).filter((s): s is number => s !== undefined);
  return scores.length === 0 ? undefined : Math.round(scores.reduce((a, b) => a + b, 0) / scores.length);
}

/**
 * The stale flags that count against a service: owned by its owner team, by one of the team's
 * members or by the service itself, or named by one of its routes.
 */
export function staleFlagsOf(
  service: { name: string; owner: string; routeFlags: readonly string[] },
  members: readonly string[],
  stale: ReadonlyArray<{ flag: string; owner?: string | undefined; why: string[] }>,
): Array<{ flag: string; why: string[] }> {
  return stale
    .filter((s) => service.routeFlags.includes(s.flag) || (s.owner !== undefined && (s.owner === service.owner || s.owner === service.name || members.includes(s.owner))))
    .map((s) => ({ flag: s.flag, why: [...s.why] }));
}
