// Tests for the token bucket: the burst, the refill rate and the wait it reports.
import { describe, expect, it } from "vitest";
import { TokenBucket } from "./token-bucket.js";

describe("TokenBucket", () => {
  it("lets a burst through, then one request per 1/rps seconds", () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.retryAfterMs(0)).toBe(100);
    expect(b.take(50)).toBe(false);
    expect(b.retryAfterMs(50)).toBeCloseTo(50);
    expect(b.take(100)).toBe(true);
    expect(b.take(100)).toBe(false);
  });

  it("saves up no more than the burst while idle", () => {
    const b = new TokenBucket(100, 5, 0);
    for (let i = 0; i < 5; i++) b.take(0);
    let granted = 0;
    while (b.take(60_000)) granted++;
    expect(granted).toBe(5);
  });

  it("admits rps × seconds plus the burst over a long run", () => {
    const b = new TokenBucket(50, 10, 0);
    let granted = 0;
    for (let t = 0; t <= 2_010; t++) if (b.take(t)) granted++;
    expect(granted).toBe(10 + 100);
  });
});
