import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { collectProcessMetrics } from "./process-metrics.js";

describe("collectProcessMetrics", () => {
  it("exposes process metrics under the prefix but no gauge named like a counter", async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, "keelson_test_");
    const text = await registry.metrics();
    expect(text).toMatch(/^keelson_test_process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^keelson_test_nodejs_heap_size_used_bytes \d/m);
    const gaugesEndingTotal = [...text.matchAll(/^# TYPE (\S+_total) gauge$/gm)].map((m) => m[1]);
    expect(gaugesEndingTotal).toEqual([]);
  });
});
