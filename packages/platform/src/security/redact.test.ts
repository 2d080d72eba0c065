import { describe, expect, it } from "vitest";
import { createRedactor, MIN_REDACTED_LENGTH, REDACTED } from "./redact.js";

describe("createRedactor", () => {
  it("replaces every occurrence of a value", () => {
    const { redact } = createRedactor(["s3cr3t-value"]);
    expect(redact("a=s3cr3t-value b=s3cr3t-value")).toBe(`a=${REDACTED} b=${REDACTED}`);
  });

  it("returns the same string when nothing matches, and when there are no values", () => {
    const text = "nothing secret here";
    expect(createRedactor(["s3cr3t-value"]).redact(text)).toBe(text);
    const empty = createRedactor([]);
    expect(empty.size).toBe(0);
    expect(empty.redact(text)).toBe(text);
    const object = { a: "x" };
    expect(empty.redactDeep(object)).toBe(object);
  });

  it(`ignores values shorter than ${MIN_REDACTED_LENGTH} characters`, () => {
    const r = createRedactor(["dev", "12345", "123456"]);
    expect(r.size).toBe(1);
    expect(r.redact("dev 12345 123456")).toBe(`dev 12345 ${REDACTED}`);
  });

  it("counts distinct values in size", () => {
    expect(createRedactor(["abcdefg", "abcdefg", "hijklmn"]).size).toBe(2);
  });

  it("treats regex metacharacters in values literally", () => {
    const value = "a.b*c+(d)[e]{f}|g^h$i\\j?k/l-m";
    const { redact } = createRedactor([value]);
    expect(redact(`x ${value} y`)).toBe(`x ${REDACTED} y`);
    // "." must not match any character.
    expect(redact("a_b*c+(d)[e]{f}|g^h$i\\j?k/l-m")).toBe("a_b*c+(d)[e]{f}|g^h$i\\j?k/l-m");
  });

  it("redacts the JSON-escaped form of a value", () => {
    const value = 'pa"ss\\word\n1';
    const { redact } = createRedactor([value]);
    const json = JSON.stringify({ password: value });
    expect(redact(json)).toBe(`{"password":"${REDACTED}"}`);
  });

  it("redacts the base64 and base64url forms of a value", () => {
    const value = "user:pa??word>>";
    const { redact } = createRedactor([value]);
    const b64 = Buffer.from(value).toString("base64");
    const b64url = Buffer.from(value).toString("base64url");
    expect(b64).not.toBe(b64url);
    expect(redact(`Authorization: Basic ${b64}`)).toBe(`Authorization: Basic ${REDACTED}`);
    expect(redact(`token=${b64url}`)).toBe(`token=${REDACTED}`);
  });

  it("redacts the whole of a padded base64 form, padding included", () => {
    const value = "abcdefg"; // 7 bytes: base64 ends in "="
    const b64 = Buffer.from(value).toString("base64");
    expect(b64.endsWith("=")).toBe(true);
    expect(createRedactor([value]).redact(`[${b64}]`)).toBe(`[${REDACTED}]`);
  });

  it("prefers the longest value where one contains another", () => {
    const { redact } = createRedactor(["secret", "secret-extended"]);
    expect(redact("secret-extended!")).toBe(`${REDACTED}!`);
    expect(redact("secret-ext")).toBe(`${REDACTED}-ext`);
  });

  it("redacts overlapping values together, leaving no part of either", () => {
    const { redact } = createRedactor(["abcdef123", "123ghijkl"]);
    expect(redact("x abcdef123ghijkl y")).toBe(`x ${REDACTED} y`);
    // Adjacent occurrences merge into one marker too.
    expect(redact("abcdef123123ghijkl")).toBe(REDACTED);
  });

  it("handles occurrences at the start and end of the text", () => {
    const { redact } = createRedactor(["topsecret"]);
    expect(redact("topsecret middle topsecret")).toBe(`${REDACTED} middle ${REDACTED}`);
  });

  it("redacts non-ASCII values", () => {
    const { redact } = createRedactor(["pässwörd-ü"]);
    expect(redact("p=pässwörd-ü;")).toBe(`p=${REDACTED};`);
  });

  describe("redactDeep", () => {
    const r = createRedactor(["hunter2-long"]);

    it("walks objects and arrays and leaves the input unchanged", () => {
      const input = { a: "x hunter2-long", b: ["hunter2-long", 3, true, null], c: { d: { e: "ok" } }, f: undefined };
      const out = r.redactDeep(input);
      expect(out).toEqual({ a: `x ${REDACTED}`, b: [REDACTED, 3, true, null], c: { d: { e: "ok" } }, f: undefined });
      expect(input.a).toBe("x hunter2-long");
      expect(out).not.toBe(input);
    });

    it("redacts a bare string and passes other primitives through", () => {
      expect(r.redactDeep("hunter2-long")).toBe(REDACTED);
      expect(r.redactDeep(42)).toBe(42);
      expect(r.redactDeep(undefined)).toBeUndefined();
    });

    it("keeps a __proto__ key as data", () => {
      const input = JSON.parse('{"__proto__":"hunter2-long"}') as Record<string, unknown>;
      const out = r.redactDeep(input) as Record<string, unknown>;
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(out, "__proto__")?.value).toBe(REDACTED);
    });

    it("copes with cycles", () => {
      const input: Record<string, unknown> = { s: "hunter2-long" };
      input["self"] = input;
      const out = r.redactDeep(input) as Record<string, unknown>;
      expect(out["s"]).toBe(REDACTED);
      expect(out["self"]).toBe(out);
    });

    it("passes class instances through", () => {
      const date = new Date(0);
      expect(r.redactDeep({ d: date })).toEqual({ d: date });
      expect((r.redactDeep({ d: date }) as { d: Date }).d).toBe(date);
    });
  });
});
