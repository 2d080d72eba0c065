import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ERRORS, KeelsonError, type ErrorCode } from "./errors.js";

describe("KeelsonError", () => {
  it("answers with the status of its code and the one error shape", () => {
    const e = new KeelsonError("KEELSON_ERR_NOT_FOUND", 'service "x" does not exist', { details: { service: "x" } });
    expect(e.status).toBe(404);
    expect(e.toBody()).toEqual({ error: { code: "KEELSON_ERR_NOT_FOUND", message: 'service "x" does not exist', details: { service: "x" } } });
  });

  it("round-trips through an API body and rejects bodies that are not errors", () => {
    const e = KeelsonError.fromBody({ error: { code: "KEELSON_ERR_CONFLICT", message: "busy" } });
    expect(e?.code).toBe("KEELSON_ERR_CONFLICT");
    expect(e?.status).toBe(409);
    expect(KeelsonError.fromBody({ error: { code: "NOPE", message: "x" } })).toBeUndefined();
    expect(KeelsonError.fromBody("text")).toBeUndefined();
  });
});

describe("docs/errors.md", () => {
  const doc = readFileSync(join(import.meta.dirname, "../../../docs/errors.md"), "utf8");
  it("lists every error code with its HTTP status, and no code that does not exist", () => {
    for (const [code, { status }] of Object.entries(ERRORS)) {
      expect(doc, `docs/errors.md lacks a row for ${code}`).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\|`));
    }
    const documented = [...doc.matchAll(/`(KEELSON_ERR_[A-Z_]+)`/g)].map((m) => m[1] as ErrorCode);
    for (const code of documented) expect(Object.keys(ERRORS)).toContain(code);
  });
});
