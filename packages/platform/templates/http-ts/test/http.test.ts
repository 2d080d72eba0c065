// HTTP tests: the app behind serve() on a free port of 127.0.0.1, as Keelson runs it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLogger, serve, type ServiceHandle } from "@keelson/sdk";
import { createApp, LOUD_FLAG, type Flags } from "../src/app.js";
import { createMetrics } from "../src/metrics.js";

/** Flags that answer from a map (OpenFeature's client in production). */
function fakeFlags(values: Record<string, boolean>): Flags {
  return { getBooleanValue: async (key, fallback) => values[key] ?? fallback };
}

describe("{{name}} over HTTP", () => {
  let service: ServiceHandle;
  const flags: Record<string, boolean> = {};

  before(async () => {
    const app = createApp({ service: "{{name}}", greeting: "Hello", flags: fakeFlags(flags), metrics: createMetrics() });
    service = await serve({ handler: app, port: 0, signals: [], tracing: false, accessLog: false, logger: createLogger({ level: "silent" }) });
  });
  after(() => service.close());

  it("is ready and alive", async () => {
    assert.equal((await fetch(`${service.url}/ready`)).status, 200);
    assert.equal((await fetch(`${service.url}/healthz`)).status, 200);
  });

  it("greets, shouts while the flag is on, and counts both", async () => {
    const quiet = await fetch(`${service.url}/hello?name=Ada`);
    assert.equal(quiet.status, 200);
    assert.deepEqual(await quiet.json(), { message: "Hello, Ada!", loud: false });
    flags[LOUD_FLAG] = true;
    assert.deepEqual(await (await fetch(`${service.url}/hello?name=Ada`)).json(), { message: "HELLO, ADA!", loud: true });
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(metrics, /greetings_total\{loud="false"\} 1/);
    assert.match(metrics, /greetings_total\{loud="true"\} 1/);
  });

  it("answers a bad name with a JSON error naming the field", async () => {
    const res = await fetch(`${service.url}/hello?name=`);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; details: { field: string } } };
    assert.equal(body.error.code, "VALIDATION");
    assert.equal(body.error.details.field, "name");
  });
});
