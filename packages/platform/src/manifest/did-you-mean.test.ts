import { describe, expect, it } from "vitest";
import { didYouMean, editDistance } from "./did-you-mean.js";

describe("editDistance", () => {
  it("counts insertions, deletions and substitutions", () => {
    expect(editDistance("readines", "readiness")).toBe(1);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("same", "same")).toBe(0);
  });

  it("counts a swap of neighbouring letters as one edit", () => {
    expect(editDistance("prot", "port")).toBe(1);
    expect(editDistance("ab", "ba")).toBe(1);
  });
});

describe("didYouMean", () => {
  const serviceKeys = ["owner", "path", "start", "port", "replicas", "readiness", "liveness", "routes", "calls"];

  it("suggests the closest candidate within the limit", () => {
    expect(didYouMean("readines", serviceKeys)).toBe("readiness");
    expect(didYouMean("replica", serviceKeys)).toBe("replicas");
    expect(didYouMean("prot", serviceKeys)).toBe("port");
    expect(didYouMean("Owner", serviceKeys)).toBe("owner");
  });

  it("suggests nothing when no candidate is close", () => {
    expect(didYouMean("image", serviceKeys)).toBeUndefined();
    expect(didYouMean("xy", ["ab"])).toBeUndefined();
    expect(didYouMean("anything", [])).toBeUndefined();
  });

  it("prefers the earlier candidate on a tie", () => {
    expect(didYouMean("pat", ["path", "part"])).toBe("path");
  });
});
