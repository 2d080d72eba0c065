// Benchmark: DORA metrics over one year of generated delivery history for 200 services (issue
// #10: under 500 ms), beside a reference measured in the same run: one pass over the same events
// that only parses their times and groups them by rollout, the least any computation must do.
// The history (seeded): every service deploys 0.3-3 times a working day, by rolling (60%), canary
// (25%: steps, an analysis) or blue-green (15%); 7% of rollouts fail (canaries after their first
// weight; rolling and blue-green ones before taking traffic, blocked, in 3 of those 7), 2% are rolled
// back by hand; incidents after 3% of deployments, a chaos experiment a week; releases with
// commits, and imported change sets (1-12 commits) for half the deployments.
// Timed: foldDoraHistory + computeDora for the whole project over 365 days, and for one team.
// With --store, also doraReport() end to end over a SQLite store holding the same events.
// Usage: node bench/dora.mjs [--services 200] [--runs 7] [--seed 10] [--store]   (after `npx tsc -b`)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { computeDora, createDoraReporter, doraReport, foldDoraHistory, importDoraChanges } from "../packages/platform/dist/catalog/index.js";
import { createSqliteStore } from "../packages/platform/dist/store/index.js";
import { rng } from "./seeded-random.mjs";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]?.startsWith("--") || all[i + 1] === undefined ? "true" : all[i + 1]]] : acc), []));
const SERVICES = Number(args.services ?? 200);
const RUNS = Number(args.runs ?? 7);
const SEED = Number(args.seed ?? 10);
const WITH_STORE = args.store === "true";
const TEAMS = 20;
const TARGET_MS = 500;
const DAY = 86_400_000;
const H = 3_600_000;
const END = Date.parse("2026-03-01T00:00:00Z");
const START = END - 365 * DAY;

const random = rng(SEED);
const pick = (xs) => xs[Math.floor(random() * xs.length)];
const hex = (n) => Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join("");
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const svc = (i) => `svc-${String(i).padStart(3, "0")}`;

/** One year of events: [{ at (ms), kind, subject, actor, details }], in time order. */
function generate() {
  const raw = [];
  const changes = [];
  const push = (at, kind, service, details, actor = "reconciler") => raw.push({ at, kind, subject: service === undefined ? "services/*" : `service/${service}`, actor, details });
  for (let s = 0; s < SERVICES; s++) {
    const service = svc(s);
    const perDay = 0.3 + random() * 2.7;
    let release;
    let t = START + random() * DAY;
    let n = 0;
    let free = 0;
    while (t < END - H) {
      // Working days only; the gap to the next deployment is exponential, and a deploy waits for the one before (the deploy lock).
      t = Math.max(t + (-Math.log(1 - random()) / perDay) * DAY * (7 / 5), free);
      const day = new Date(t).getUTCDay();
      if (day === 0 || day === 6 || t >= END - H) continue;
      const id = `ro-${hex(8)}`;
      const to = `r-${hex(12)}`;
      const commit = hex(40);
      const commitTime = t - (0.2 + random() * 72) * H;
      push(t - 10 * 60_000, "release.created", service, { release: to, run: `run-${n}`, source: "commit", commit, commitTime: new Date(commitTime).toISOString() }, "user:ci");
      const strategy = release === undefined ? "rolling" : random() < 0.6 ? "rolling" : random() < 0.625 ? "canary" : "blueGreen";
      const base = { rollout: id, strategy, from: release, to, commit, commitTime: new Date(commitTime).toISOString() };
      push(t, "rollout.started", service, base, "user:ci");
      const fate = random();
      let end = t + 60_000;
      let served;
      if (strategy === "canary") {
        served = t + 30_000;
        for (const [i, w] of [20, 50].entries()) push(t + 30_000 + i * 120_000, "rollout.step", service, { ...base, action: "setWeight", weight: w });
        push(t + 40_000, "rollout.step", service, { ...base, action: "analysis started", step: 1 });
        end = t + 300_000;
        if (fate >= 0.07) push(end - 5_000, "rollout.step", service, { ...base, action: "promoted to all traffic", weight: 100 });
      } else if (strategy === "blueGreen") {
        served = fate < 0.04 || fate >= 0.07 ? t + 45_000 : undefined;
        if (served !== undefined) push(served, "rollout.step", service, { ...base, action: "switch", weight: 100 });
        end = t + 600_000;
      } else {
        served = fate >= 0.04 && fate < 0.07 ? undefined : t + 20_000;
      }
      free = end + 60_000;
      if (fate < 0.07) {
        // Failed: after taking traffic (4%) or before (3%, blocked).
        push(end, "rollout.failed", service, { ...base, ...(served !== undefined && strategy === "rolling" ? { servedAt: new Date(served).toISOString() } : {}), why: "generated failure", ...(release ? { rolledBackTo: release } : {}) });
      } else {
        push(end, "rollout.succeeded", service, { ...base, ...(strategy === "rolling" ? { servedAt: new Date(served).toISOString() } : {}), durationMs: end - t });
        const previous = release;
        release = to;
        if (random() < 0.5) {
          const k = 1 + Math.floor(random() * 12);
          changes.push({ service, id, commits: Array.from({ length: k }, () => ({ sha: hex(40), authorTime: new Date(end - random() * 96 * H).toISOString() })) });
        }
        if (random() < 0.03) {
          const opened = end + random() * 4 * H;
          push(opened, "incident.opened", service, { key: `${service}/a/availability`, service, slo: "a", objective: "availability", severity: "page" }, "telemetry");
          push(opened + (5 + random() * 240) * 60_000, "incident.resolved", service, { key: `${service}/a/availability`, incident: `pending:${service}:${opened}`, service }, "telemetry");
        } else if (random() < 0.02 && previous !== undefined) {
          const rb = `rb-${hex(8)}`;
          push(end + H, "rollback.started", service, { rollout: rb, strategy: "rollback", from: to, to: previous, warm: false }, "user:ana");
          push(end + H + 90_000, "rollback.succeeded", service, { rollout: rb, strategy: "rollback", from: to, to: previous });
          release = previous;
        }
      }
      n++;
    }
  }
  for (let w = 0; w < 52; w++) {
    const at = START + w * 7 * DAY + random() * 5 * DAY;
    const service = random() < 0.2 ? undefined : svc(Math.floor(random() * SERVICES));
    const experiment = `chaos-${w}`;
    push(at, "chaos.started", service, { experiment, kind: pick(["kill", "error", "latency"]), ...(service ? { service } : {}), durationMs: 600_000 }, "user:ana");
    push(at + 600_000, "chaos.stopped", service, { experiment, state: "finished" }, "user:ana");
  }
  raw.sort((a, b) => a.at - b.at);
  // Sequence numbers in time order; a resolution names its incident's sequence number.
  const seqOf = new Map();
  const events = raw.map((e, i) => {
    const seq = i + 1;
    if (e.kind === "incident.opened") seqOf.set(`pending:${e.details.service}:${e.at}`, seq);
    const details = e.kind === "incident.resolved" ? { ...e.details, incident: seqOf.get(e.details.incident) } : e.details;
    return { seq, at: new Date(e.at).toISOString(), project: "big", kind: e.kind, actor: e.actor, subject: e.subject, details };
  });
  // As the store hands them over: parsed from JSON (flat strings, fresh objects).
  return { events: JSON.parse(JSON.stringify(events)), changes: JSON.parse(JSON.stringify(changes)) };
}

const services = Array.from({ length: SERVICES }, (_, i) => ({ name: svc(i), team: `team-${i % TEAMS}` }));
const { events, changes } = generate();
const changeSets = changes.map((c) => ({ deployment: c.id, service: c.service, commits: c.commits }));

const teams = new Map(services.map((s) => [s.name, s.team]));

function compute(options) {
  const history = foldDoraHistory({ events, changes: changeSets, teams });
  return computeDora(history, { project: "big", services, now: END, windowMs: 365 * DAY, ...options });
}

/** The reference: parse every event's time and group the events by rollout, nothing else. */
function reference() {
  const groups = new Map();
  let last = 0;
  for (const e of events) {
    last = Date.parse(e.at);
    const key = e.details.rollout ?? e.details.experiment ?? e.seq;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [e]);
    else list.push(e);
  }
  return groups.size + (last > 0 ? 0 : 1);
}

function time(fn) {
  fn();
  const samples = [];
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
  }
  return median(samples);
}

const report = compute({});
const project = time(() => compute({}));
const team = time(() => compute({ team: "team-3" }));
const ref = time(reference);
const round = (x) => Math.round(x * 10) / 10;
console.log(`DORA over one year: ${SERVICES} services, ${events.length} events (${report.counts.deployments} deployments, ${report.counts.blocked} blocked, ${report.counts.incidents} incidents), ${changeSets.length} imported change sets`);
console.log(`  project four keys: ${report.summary.deploymentFrequency.perDay}/day ${report.summary.deploymentFrequency.bucket}, lead time ${round(report.summary.leadTime.medianMs / H)} h ${report.summary.leadTime.bucket}, CFR ${report.summary.changeFailureRate.value} ${report.summary.changeFailureRate.bucket}, recovery ${round(report.summary.recoveryTime.medianMs / 60_000)} min ${report.summary.recoveryTime.bucket}`);
console.log(`  computation, whole project (365 d): ${round(project)} ms (median of ${RUNS})  target < ${TARGET_MS} ms: ${project < TARGET_MS ? "met" : "MISSED"}`);
console.log(`  computation, one team (10 services): ${round(team)} ms`);
console.log(`  reference (parse times, group by rollout): ${round(ref)} ms  ratio ${round(project / ref)}x`);

if (WITH_STORE) {
  const dir = await mkdtemp(join(tmpdir(), "keelson-bench-dora-"));
  try {
    let clock = 0;
    const store = await createSqliteStore({ path: join(dir, "state.db"), now: () => clock });
    await store.applyDesiredState({
      project: { name: "big", manifestPath: join(dir, "keelson.yaml"), manifestHash: "h", appliedAt: new Date(START).toISOString() },
      upsert: services.map((s) => ({ project: "big", name: s.name, spec: { owner: s.team, path: s.name, start: "node main.js", replicas: 1 }, release: undefined })),
      remove: [],
      events: [],
    });
    const t0 = performance.now();
    for (const e of events) {
      clock = Date.parse(e.at);
      await store.appendEvent({ project: "big", kind: e.kind, actor: e.actor, subject: e.subject, details: e.details });
    }
    for (const service of services) {
      const mine = changes.filter((c) => c.service === service.name);
      for (let i = 0; i < mine.length; i += 500) {
        await importDoraChanges({ store, project: "big", service: service.name, request: { deployments: mine.slice(i, i + 500).map((c) => ({ id: c.id, commits: c.commits })) }, actor: "bench", now: new Date(END) });
      }
    }
    console.log(`  SQLite store filled in ${round((performance.now() - t0) / 1000)} s`);
    await doraReport({ store, project: "big", now: new Date(END), windowMs: 365 * DAY });
    const e2e = await (async () => {
      const samples = [];
      for (let r = 0; r < RUNS; r++) {
        const t = performance.now();
        await doraReport({ store, project: "big", now: new Date(END), windowMs: 365 * DAY });
        samples.push(performance.now() - t);
      }
      return median(samples);
    })();
    console.log(`  doraReport end to end (SQLite read + computation): ${round(e2e)} ms (median of ${RUNS})`);
    // What GET /v1/dora does: one reporter per control plane, which keeps the events it read.
    const reporter = createDoraReporter({ store, project: "big" });
    const t1 = performance.now();
    await reporter.report({ now: new Date(END), windowMs: 365 * DAY });
    const coldReporter = performance.now() - t1;
    const warm = [];
    const warmTeam = [];
    for (let r = 0; r < RUNS; r++) {
      let t = performance.now();
      await reporter.report({ now: new Date(END), windowMs: 365 * DAY });
      warm.push(performance.now() - t);
      t = performance.now();
      await reporter.report({ now: new Date(END), windowMs: 365 * DAY, team: services[0].team });
      warmTeam.push(performance.now() - t);
    }
    // One more event: the next report reads it and folds again.
    clock = END;
    await store.appendEvent({ project: "big", kind: "incident.opened", actor: "telemetry", subject: `service/${services[0].name}`, details: { service: services[0].name, slo: "avail", objective: "availability" } });
    const t2 = performance.now();
    await reporter.report({ now: new Date(END), windowMs: 365 * DAY });
    const afterEvent = performance.now() - t2;
    console.log(`  GET /v1/dora's reporter: first report ${round(coldReporter)} ms, later reports ${round(median(warm))} ms (project) / ${round(median(warmTeam))} ms (one team), after a new event ${round(afterEvent)} ms`);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
