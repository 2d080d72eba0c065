// Content hashing for releases; canonical JSON itself is the store's (one definition of "same spec").
import { createHash } from "node:crypto";

export { canonicalJson } from "../store/index.js";

export function sha256(text: string | Buffer): string {
  return createHash("sha256").update(text).digest("hex");
}
