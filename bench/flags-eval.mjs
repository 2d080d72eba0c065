// Benchmark: flag evaluation of @keelson/protocol's compiled flag sets (issue #7), in ns per call,
// beside a reference in the same run: plain JavaScript doing the same work by hand.
// Usage: node bench/flags-eval.mjs [--iterations 200000] [--runs 7]   (after `npm run build`)
import { performance } from "node:perf_hooks";
import { compileFlagSet, murmur3_32 } from "../packages/protocol/dist/index.js";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const ITERATIONS = Number(args.iterations ?? 200_000);
const RUNS = Number(args.runs ?? 7);
const BUDGET_NS = { fractional: 1000, tree: 5000 };

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median ns per call of fn(i) over RUNS runs of `iterations` calls, after a warm-up run. */
function measure(fn, iterations = ITERATIONS) {
  let sink = 0;
  for (let i = 0; i < iterations; i++) sink += fn(i);
  const samples = [];
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    for (let i = 0; i < iterations; i++) sink += fn(i);
    samples.push(((performance.now() - t) * 1e6) / iterations);
  }
  if (sink === -1) console.log("unreachable"); // keeps the work observable
  return median(samples);
}

// --- flags ------------------------------------------------------------------------------------

const suits = { clubs: "clubs", diamonds: "diamonds", hearts: "hearts", spades: "spades" };
const EU = ["de", "fr", "it", "es", "nl", "be", "at", "pl"];
const tree = {
  if: [
    { sem_ver: [{ var: "appVersion" }, "<", "1.0.0"] }, "v0",
    { starts_with: [{ var: "email" }, "admin@"] }, "admin",
    { in: [{ var: "country" }, EU] }, "eu",
    { "==": [{ var: "plan" }, "enterprise"] }, "ent",
    { ends_with: [{ var: "email" }, "@example.com"] }, "staff",
    { sem_ver: [{ var: "appVersion" }, "^", "3.0.0"] }, "v3",
    { in: ["beta", { var: "tags" }] }, "beta",
    { "==": [{ var: "region" }, "ap-south"] }, "ap",
    { and: [{ ">=": [{ var: "age" }, 18] }, { "<": [{ var: "age" }, 25] }] }, "young",
    { sem_ver: [{ var: "appVersion" }, ">=", "2.5.0"] }, "modern",
    "fallback",
  ],
};
const treeVariants = Object.fromEntries(["v0", "admin", "eu", "ent", "staff", "v3", "beta", "ap", "young", "modern", "fallback"].map((v) => [v, v]));

const flags = {
  static: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
  fractional: { state: "ENABLED", variants: suits, defaultVariant: "clubs", targeting: { fractional: [["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]] } },
  tree: { state: "ENABLED", variants: treeVariants, defaultVariant: "fallback", targeting: tree },
};
// 100 flags for evaluateAll: 40 static, 30 fractional, 30 ten-rule trees.
for (let i = 0; i < 100; i++) {
  flags[`bulk-${i}`] = i < 40 ? flags.static : i < 70 ? flags.fractional : flags.tree;
}
const compiled = compileFlagSet({ flags });

// 1024 contexts: distinct targeting keys; the tree falls through nine rules to the tenth.
const contexts = Array.from({ length: 1024 }, (_, i) => ({
  targetingKey: `user-${i}@example.org`,
  appVersion: `2.${6 + (i % 3)}.${i % 10}`,
  email: `user-${i}@example.org`,
  country: i % 2 ? "us" : "ca",
  plan: "pro",
  tags: ["alpha", "gamma"],
  region: "us-east",
  age: 40,
}));
const ctx = (i) => contexts[i & 1023];

// --- references: the same decisions written by hand ---------------------------------------------

const staticValues = new Map([["static", true]]);
function refStatic(key) {
  return staticValues.get(key);
}

const SUITS = ["clubs", "diamonds", "hearts", "spades"];
function refFractional(key, c) {
  const h = murmur3_32(key + c.targetingKey);
  const bucket = Math.floor(((h >>> 16) * 100 + Math.floor(((h & 0xffff) * 100) / 65536)) / 65536);
  return SUITS[Math.floor(bucket / 25)];
}

function parseVersion(v) {
  const m = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}
function cmp(a, b) {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}
const V1 = [1, 0, 0];
const V250 = [2, 5, 0];
function refTree(c) {
  const v = parseVersion(c.appVersion);
  if (v && cmp(v, V1) < 0) return "v0";
  if (c.email.startsWith("admin@")) return "admin";
  if (EU.includes(c.country)) return "eu";
  if (c.plan === "enterprise") return "ent";
  if (c.email.endsWith("@example.com")) return "staff";
  if (v && v[0] === 3) return "v3";
  if (c.tags.includes("beta")) return "beta";
  if (c.region === "ap-south") return "ap";
  if (c.age >= 18 && c.age < 25) return "young";
  if (v && cmp(v, V250) >= 0) return "modern";
  return "fallback";
}

// --- sanity: the evaluator and the references agree ---------------------------------------------

for (let i = 0; i < 1024; i++) {
  const c = ctx(i);
  const f = compiled.evaluate("fractional", c);
  const t = compiled.evaluate("tree", c);
  if (f.variant !== refFractional("fractional", c) || t.variant !== refTree(c) || t.variant !== "modern") {
    console.error("evaluator and reference disagree", { i, f, t, ref: [refFractional("fractional", c), refTree(c)] });
    process.exit(1);
  }
}

// --- run ----------------------------------------------------------------------------------------

const rows = [
  ["static flag", measure((i) => (compiled.evaluate("static", ctx(i)).value ? 1 : 0)), measure(() => (refStatic("static") ? 1 : 0))],
  ["fractional flag", measure((i) => compiled.evaluate("fractional", ctx(i)).variant.length), measure((i) => refFractional("fractional", ctx(i)).length)],
  ["10-rule tree (sem_ver/starts_with/in/==)", measure((i) => compiled.evaluate("tree", ctx(i)).variant.length), measure((i) => refTree(ctx(i)).length)],
  [
    "evaluateAll, 100 flags (per call)",
    measure((i) => compiled.evaluateAll(ctx(i)).length, Math.max(1, Math.floor(ITERATIONS / 100))),
    measure((i) => {
      const c = ctx(i);
      let n = 0;
      for (let k = 0; k < 40; k++) n += refStatic("static") ? 1 : 0;
      for (let k = 0; k < 30; k++) n += refFractional("fractional", c).length;
      for (let k = 0; k < 30; k++) n += refTree(c).length;
      return n;
    }, Math.max(1, Math.floor(ITERATIONS / 100))),
  ],
];

console.log(`flag evaluation, node ${process.version}, ${ITERATIONS} iterations × ${RUNS} runs (median)`);
for (const [name, ns, ref] of rows) {
  console.log(`${name.padEnd(42)} ${ns.toFixed(0).padStart(7)} ns/op   reference ${ref.toFixed(0).padStart(7)} ns/op   ratio ${(ns / ref).toFixed(2)}×`);
}
const fractionalNs = rows[1][1];
const treeNs = rows[2][1];
console.log(`budget: fractional ${fractionalNs.toFixed(0)} ns < ${BUDGET_NS.fractional} ns ${fractionalNs < BUDGET_NS.fractional ? "ok" : "OVER"}; 10-rule tree ${treeNs.toFixed(0)} ns < ${BUDGET_NS.tree} ns ${treeNs < BUDGET_NS.tree ? "ok" : "OVER"}`);
