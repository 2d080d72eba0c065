import { describe, expect, it } from "vitest";
import { authorize, describePrincipal } from "./authorize.js";
import type { AuthorizeAction, Principal, Role } from "./authorize.js";

function user(role: Role, teams: string[] = [], name = `t-${role}`): Principal {
  return { kind: "user", tokenId: "tok_00000000", name, role, teams };
}

const viewer = user("viewer");
const deployer = user("deployer", ["web"], "ci-web");
const admin = user("admin");
const service: Principal = { kind: "service", service: "orders" };
const gateway: Principal = { kind: "gateway" };

function allowed(principal: Principal, action: Exclude<AuthorizeAction, "deploy" | "flags.write">): boolean {
  return authorize(principal, action).ok;
}

describe("describePrincipal", () => {
  it("names tokens with their role and a deployer's teams", () => {
    expect(describePrincipal(deployer)).toBe('token "ci-web" (deployer for teams web)');
    expect(describePrincipal(user("deployer", ["web", "api"], "ci"))).toBe('token "ci" (deployer for teams web, api)');
    expect(describePrincipal(viewer)).toBe('token "t-viewer" (viewer)');
    expect(describePrincipal(service)).toBe('service "orders"');
    expect(describePrincipal(gateway)).toBe("the gateway");
  });
});

describe("authorize", () => {
  it("lets every user token read, and no workload", () => {
    expect([viewer, deployer, admin].map((p) => allowed(p, "read"))).toEqual([true, true, true]);
    expect(allowed(service, "read")).toBe(false);
    expect(allowed(gateway, "read")).toBe(false);
  });

  describe("deploy", () => {
    it("lets an admin change any service, even one without an owner", () => {
      expect(authorize(admin, "deploy", { service: "payments", owner: "pay" }).ok).toBe(true);
      expect(authorize(admin, "deploy", { service: "legacy" }).ok).toBe(true);
    });

    it("lets a deployer change only its teams' services, saying why not", () => {
      expect(authorize(deployer, "deploy", { service: "web", owner: "web" }).ok).toBe(true);
      expect(authorize(deployer, "deploy", { service: "payments", owner: "pay" })).toEqual({
        ok: false,
        reason: 'token "ci-web" (deployer for teams web) may not change service "payments", owned by team "pay"',
      });
    });

    it("refuses a deployer a service without an owner", () => {
      const decision = authorize(deployer, "deploy", { service: "legacy" });
      expect(decision.ok).toBe(false);
      expect(!decision.ok && decision.reason).toContain("no owner team");
    });

    it("refuses viewers and workloads", () => {
      const decision = authorize(viewer, "deploy", { service: "web", owner: "web" });
      expect(!decision.ok && decision.reason).toContain("viewer token may only read");
      expect(authorize(service, "deploy", { service: "orders", owner: "web" }).ok).toBe(false);
      expect(authorize(gateway, "deploy", { service: "orders", owner: "web" }).ok).toBe(false);
    });

    it("refuses a deploy that names no service", () => {
      expect(authorize(admin, "deploy", undefined).ok).toBe(false);
      expect(authorize(admin, "deploy", { flag: "x" }).ok).toBe(false);
    });
  });

  describe("flags.write", () => {
    it("lets an admin change any flag and a deployer its teams' flags", () => {
      expect(authorize(admin, "flags.write", { flag: "new-checkout" }).ok).toBe(true);
      expect(authorize(deployer, "flags.write", { flag: "new-checkout", owner: "web" }).ok).toBe(true);
      const decision = authorize(deployer, "flags.write", { flag: "fast-pay", owner: "pay" });
      expect(!decision.ok && decision.reason).toBe('token "ci-web" (deployer for teams web) may not change flag "fast-pay", owned by team "pay"');
      expect(authorize(deployer, "flags.write", { flag: "orphan" }).ok).toBe(false);
      expect(authorize(viewer, "flags.write", { flag: "new-checkout", owner: "web" }).ok).toBe(false);
      expect(authorize(service, "flags.write", { flag: "new-checkout", owner: "web" }).ok).toBe(false);
    });
  });

  it("keeps admin actions to admin tokens", () => {
    expect([viewer, deployer, admin, service, gateway].map((p) => allowed(p, "admin"))).toEqual([false, false, true, false, false]);
    const decision = authorize(deployer, "admin");
    expect(!decision.ok && decision.reason).toContain("needs an admin token");
  });

  it("lets services, the gateway and admins write telemetry", () => {
    expect([viewer, deployer, admin, service, gateway].map((p) => allowed(p, "telemetry.write"))).toEqual([false, false, true, true, true]);
  });

  it("lets services and users evaluate flags, not the gateway", () => {
    expect([viewer, deployer, admin, service, gateway].map((p) => allowed(p, "flags.evaluate"))).toEqual([true, true, true, true, false]);
  });

  it("lets the gateway and users watch routing, not services", () => {
    expect([viewer, deployer, admin, service, gateway].map((p) => allowed(p, "routing.watch"))).toEqual([true, true, true, false, true]);
  });
});
