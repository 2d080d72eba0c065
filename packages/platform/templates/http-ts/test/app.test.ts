// Unit tests: the greeting and the metrics exposition, no server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { greet } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createMetrics } from "../src/metrics.js";

describe("greet", () => {
  it("greets by name, and shouts when loud", () => {
    assert.equal(greet("Hello", "Ada", false), "Hello, Ada!");
    assert.equal(greet("Hello", "Ada", true), "HELLO, ADA!");
  });
});

describe("loadConfig", () => {
  it("defaults the greeting and refuses an empty one, naming the variable", () => {
    assert.equal(loadConfig({}).greeting, "Hello");
    assert.throws(() => loadConfig({ GREETING: " " }), /GREETING/);
  });
});

describe("metrics", () => {
  it("renders counters in the Prometheus text format", () => {
    const metrics = createMetrics();
    const c = metrics.counter("greetings_total", "Greetings.");
    c.inc({ loud: "false" });
    c.inc({ loud: "false" });
    c.inc({ loud: "true" });
    assert.equal(metrics.render(), '# HELP greetings_total Greetings.\n# TYPE greetings_total counter\ngreetings_total{loud="false"} 2\ngreetings_total{loud="true"} 1\n');
  });
});
