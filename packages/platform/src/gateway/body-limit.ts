// Counts the bytes of a request body sent without Content-Length (chunked) on its way to the
// replica and fails the stream once it passes the route's limit, so an endless upload is cut
// with a 413 instead of being forwarded or buffered. Bodies with a Content-Length are checked
// before anything is sent (node enforces the length itself).
import { Transform } from "node:stream";
import type { TransformCallback } from "node:stream";

/** The body passed `limit` bytes. */
export class BodyTooLargeError extends Error {
  readonly code = "KEELSON_BODY_TOO_LARGE";
  constructor(readonly limit: number) {
    super(`the request body is larger than ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

export class BodyLimit extends Transform {
  private seen = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) callback(new BodyTooLargeError(this.limit));
    else callback(null, chunk);
  }
}
