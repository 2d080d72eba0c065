// A refused flag change mapped to the editor's fields by the paths of the API's issues, and the
// flag-write rule the dashboard mirrors from the API (security/authorize.ts).
import { describe, expect, it } from "vitest";
import { ApiError, type Principal } from "./api.js";
import { fieldIssues } from "./flags-api.js";
import { mayChangeFlag } from "./permissions.js";

const refused = (issues: unknown) => new ApiError("invalid flag set:\n  …", 400, "KEELSON_ERR_INVALID_INPUT", { issues });

describe("fieldIssues", () => {
  it("puts each issue at its field, with its path inside the flag", () => {
    const err = refused([
      { path: ["flags", "new.checkout", "targeting", "if", 0, "bogus"], message: 'unknown operator "bogus"' },
      { path: ["flags", "new.checkout", "defaultVariant"], message: '"maybe" is not a variant (variants: on, off)' },
      { path: ["flags", "new.checkout", "colour"], message: "unknown field; a flag has: state, variants" },
      { path: ["flags", "other", "prerequisites", 0, "variant"], message: 'flag "new.checkout" has no variant "x"' },
    ]);
    expect(fieldIssues(err, "new.checkout")).toEqual([
      { field: "targeting", path: "targeting.if.0.bogus", message: 'unknown operator "bogus"' },
      { field: "defaultVariant", path: "defaultVariant", message: '"maybe" is not a variant (variants: on, off)' },
      { field: "general", path: "colour", message: "unknown field; a flag has: state, variants" },
      { field: "general", path: "flags.other.prerequisites.0.variant", message: 'flag "new.checkout" has no variant "x"' },
    ]);
  });

  it("makes an error without issues one general issue, and is undefined for anything but a 400", () => {
    expect(fieldIssues(new ApiError('flag key "stream" is reserved', 400, "KEELSON_ERR_INVALID_INPUT"), "stream")).toEqual([{ field: "general", path: "", message: 'flag key "stream" is reserved' }]);
    expect(fieldIssues(new ApiError("forbidden", 403, "KEELSON_ERR_FORBIDDEN"), "x")).toBeUndefined();
    expect(fieldIssues(new Error("offline"), "x")).toBeUndefined();
  });
});

describe("mayChangeFlag", () => {
  const user = (role: "viewer" | "deployer" | "admin", teams: string[] = []): Principal => ({ kind: "user", name: "t", role, teams });
  it("lets admins change any flag and deployers only their teams' flags", () => {
    expect(mayChangeFlag(user("admin"), undefined)).toBe(true);
    expect(mayChangeFlag(user("deployer", ["web"]), "web")).toBe(true);
    expect(mayChangeFlag(user("deployer", ["web"]), "payments")).toBe(false);
    // A flag without an owner: only admins (authorize.ts's changeOwned).
    expect(mayChangeFlag(user("deployer", ["web"]), undefined)).toBe(false);
    expect(mayChangeFlag(user("viewer", ["web"]), "web")).toBe(false);
    expect(mayChangeFlag({ kind: "service" }, "web")).toBe(false);
    expect(mayChangeFlag(undefined, "web")).toBe(false);
  });
});
