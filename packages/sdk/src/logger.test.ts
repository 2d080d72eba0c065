// Tests for the JSON-lines logger: line shape, request id from the context, levels, and
// that a broken sink or odd field never throws into the service.
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "./logger.js";
import { runWithRequestContext } from "./request-context.js";

function capture(level?: "debug" | "info" | "warn" | "error" | "silent") {
  const lines: string[] = [];
  const log = createLogger({
    service: "orders",
    replica: "orders-1",
    now: () => new Date("2025-01-02T03:04:05.000Z"),
    write: (line) => lines.push(line),
    ...(level ? { level } : {}),
  });
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, lines, parsed };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("createLogger", () => {
  it("writes one JSON object per line with the fixed fields first", () => {
    const { log, lines } = capture();
    log.info("order placed", { orderId: "ord_1", total: 1200 });
    expect(lines).toEqual([
      '{"time":"2025-01-02T03:04:05.000Z","level":"info","service":"orders","replica":"orders-1","msg":"order placed","orderId":"ord_1","total":1200}\n',
    ]);
  });

  it("takes the request id from the current request context", () => {
    const { log, parsed } = capture();
    runWithRequestContext({ requestId: "req-42", caller: "storefront" }, () => log.info("inside"));
    log.info("outside");
    expect(parsed().map((l) => l.requestId)).toEqual(["req-42", undefined]);
  });

  it("defaults service and replica to the replica environment", () => {
    vi.stubEnv("KEELSON_SERVICE", "payments");
    vi.stubEnv("KEELSON_REPLICA", "payments-0");
    const lines: string[] = [];
    createLogger({ write: (l) => lines.push(l) }).warn("x");
    vi.unstubAllEnvs();
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({ service: "payments", replica: "payments-0", level: "warn" });
  });

  it("drops lines below the level and everything when silent", () => {
    const info = capture("warn");
    info.log.debug("a");
    info.log.info("b");
    info.log.warn("c");
    info.log.error("d");
    expect(info.parsed().map((l) => l.msg)).toEqual(["c", "d"]);
    const silent = capture("silent");
    silent.log.error("e");
    expect(silent.lines).toHaveLength(0);
  });

  it("adds a child's fields to every line and keeps reserved keys from being overwritten", () => {
    const { log, parsed } = capture();
    log.child({ component: "checkout" }).info("hello", { msg: "shadow", level: "fake" });
    expect(parsed()[0]).toMatchObject({ level: "info", msg: "hello", component: "checkout", "field.msg": "shadow", "field.level": "fake" });
  });

  it("serializes errors with name, message, stack and cause", () => {
    const { log, parsed } = capture();
    const err = Object.assign(new Error("boom", { cause: new Error("root") }), { code: "E_X" });
    log.error("failed", { err });
    const out = parsed()[0]?.err as Record<string, unknown>;
    expect(out).toMatchObject({ name: "Error", message: "boom", code: "E_X", cause: { message: "root" } });
    expect(String(out.stack)).toContain("logger.test.ts");
  });

  it("prints BigInts and cycles instead of throwing", () => {
    const { log, parsed } = capture();
    const cyclic: Record<string, unknown> = { name: "a" };
    cyclic.self = cyclic;
    expect(() => log.info("odd", { big: 10n, cyclic })).not.toThrow();
    expect(parsed()[0]).toMatchObject({ big: "10", cyclic: { name: "a", self: "[Circular]" } });
  });

  it("keeps the line when a field cannot be serialized at all", () => {
    const { log, parsed } = capture();
    const hostile = {
      toJSON() {
        throw new Error("no");
      },
    };
    log.info("still here", { hostile });
    expect(parsed()[0]).toMatchObject({ msg: "still here", logError: "fields could not be serialized" });
  });

  it("never throws when the sink fails, and reports the failure once on stderr", () => {
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const log = createLogger({
      write: () => {
        throw new Error("EPIPE");
      },
    });
    expect(() => {
      log.info("a");
      log.error("b");
    }).not.toThrow();
    expect(stderr).toHaveBeenCalledTimes(1);
    expect(String(stderr.mock.calls[0]?.[0])).toContain("EPIPE");
  });
});
