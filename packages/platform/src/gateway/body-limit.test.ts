// Tests for the streaming body limit: passes bodies up to the limit, fails the stream past it.
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { BodyLimit, BodyTooLargeError } from "./body-limit.js";

async function collect(chunks: string[], limit: number): Promise<string> {
  const out: Buffer[] = [];
  for await (const c of Readable.from(chunks.map((s) => Buffer.from(s))).pipe(new BodyLimit(limit))) out.push(c as Buffer);
  return Buffer.concat(out).toString();
}

describe("BodyLimit", () => {
  it("passes a body of exactly the limit unchanged", async () => {
    expect(await collect(["abc", "de"], 5)).toBe("abcde");
  });

  it("fails with BodyTooLargeError naming the limit once a chunk goes past it", async () => {
    const err = await collect(["abc", "def"], 5).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect((err as BodyTooLargeError).limit).toBe(5);
    expect((err as Error).message).toBe("the request body is larger than 5 bytes");
  });
});
