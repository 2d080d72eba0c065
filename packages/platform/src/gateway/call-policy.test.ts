import { describe, expect, it } from "vitest";
import { CallPolicy } from "./call-policy.js";

describe("CallPolicy", () => {
  it("denies everyone when no caller is listed", () => {
    expect(CallPolicy.compile(undefined).allows("orders", "GET", "/")).toBe(false);
    expect(CallPolicy.compile([]).allows("orders", "GET", "/")).toBe(false);
  });

  it("lets a caller listed by name do anything, and nobody else", () => {
    const p = CallPolicy.compile([{ service: "orders" }]);
    expect(p.allows("orders", "DELETE", "/anything/at/all?x=1")).toBe(true);
    expect(p.allows("storefront", "GET", "/")).toBe(false);
  });

  it("limits a caller to path prefixes at segment boundaries and to methods", () => {
    const p = CallPolicy.compile([{ service: "orders", paths: ["/charges"], methods: ["post"] }, { service: "orders", paths: ["/health/"] }]);
    expect(p.allows("orders", "POST", "/charges")).toBe(true);
    expect(p.allows("orders", "POST", "/charges/42")).toBe(true);
    expect(p.allows("orders", "POST", "/charges?id=1")).toBe(true);
    expect(p.allows("orders", "POST", "/chargesX")).toBe(false);
    expect(p.allows("orders", "GET", "/charges")).toBe(false);
    expect(p.allows("orders", "GET", "/health/ready")).toBe(true);
    expect(p.allows("orders", "GET", "/refunds")).toBe(false);
  });

  it("a name-only rule wins over narrower rules for the same caller", () => {
    const p = CallPolicy.compile([{ service: "a", paths: ["/x"] }, { service: "a" }]);
    expect(p.allows("a", "GET", "/y")).toBe(true);
    expect(p.callers()).toEqual(["a"]);
  });
});
