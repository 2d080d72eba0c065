// murmur3_32 against published values and against a byte-wise reference over Buffer's UTF-8.
import { describe, expect, it } from "vitest";
import { murmur3_32 } from "./murmur3.js";

/** Textbook MurmurHash3 x86_32 over a byte array: the reference the streaming encoder must match. */
function reference(bytes: Uint8Array, seed = 0): number {
  let h = seed | 0;
  const n = bytes.length;
  let i = 0;
  const mix = (k: number): number => Math.imul(((Math.imul(k, 0xcc9e2d51) << 15) | (Math.imul(k, 0xcc9e2d51) >>> 17)), 0x1b873593);
  for (; i + 4 <= n; i += 4) {
    h ^= mix((bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24));
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  for (let j = n - 1; j >= i; j--) k = (k << 8) | (bytes[j] as number);
  if (n > i) h ^= mix(k);
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

describe("murmur3_32", () => {
  it("matches published MurmurHash3 x86_32 values", () => {
    expect(murmur3_32("")).toBe(0);
    expect(murmur3_32("", 1)).toBe(0x514e28b7);
    expect(murmur3_32("", 0xffffffff)).toBe(0x81f16f39);
    expect(murmur3_32("hello")).toBe(0x248bfa47);
    expect(murmur3_32("The quick brown fox jumps over the lazy dog")).toBe(0x2e4ff723);
    expect(murmur3_32("The quick brown fox jumps over the lazy dog", 0x9747b28c)).toBe(0x2fa826cd);
    expect(murmur3_32("aaaa", 0x9747b28c)).toBe(0x5a97808a);
    expect(murmur3_32("abc", 0x9747b28c)).toBe(0xc84a62dd);
  });

  it("hashes the UTF-8 bytes: 2-, 3- and 4-byte characters match the reference over Buffer", () => {
    for (const text of ["é", "ü@faas.com", "日本語テキスト", "emoji 🚀 and 𝄞", "a\u0000b", "x".repeat(1000) + "ß"]) {
      expect(murmur3_32(text), text).toBe(reference(Buffer.from(text, "utf8")));
      expect(murmur3_32(text, 42), text).toBe(reference(Buffer.from(text, "utf8"), 42));
    }
  });

  it("encodes a lone surrogate as U+FFFD, as TextEncoder and Go do", () => {
    expect(murmur3_32("a\ud800b")).toBe(murmur3_32("a\ufffdb"));
    expect(murmur3_32("\udc00")).toBe(reference(new TextEncoder().encode("\udc00")));
  });

  it("matches the reference on 500 pseudo-random strings of every length 0-40", () => {
    let x = 12345;
    const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 500; i++) {
      const len = i % 41;
      let text = "";
      for (let j = 0; j < len; j++) {
        const r = rnd() % 10;
        text += r < 6 ? String.fromCharCode(32 + (rnd() % 95)) : r < 8 ? String.fromCharCode(0x80 + (rnd() % 0x700)) : r < 9 ? String.fromCharCode(0x800 + (rnd() % 0xd000)) : String.fromCodePoint(0x10000 + (rnd() % 0xfffff));
      }
      const seed = rnd();
      expect(murmur3_32(text, seed)).toBe(reference(Buffer.from(text, "utf8"), seed));
    }
  });
});
