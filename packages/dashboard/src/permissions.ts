// What the logged-in principal may do, mirroring the API's rules (security/authorize.ts) so the
// dashboard hides what the role cannot use. The API enforces them anyway: hiding is for clarity.
import type { Principal } from "./api.js";

/** Deploy, roll back, promote, abort, scale: admins, and deployers of the owning team. */
export function mayDeploy(principal: Principal | undefined, owner: string): boolean {
  if (principal?.kind !== "user") return false;
  return principal.role === "admin" || (principal.role === "deployer" && principal.teams.includes(owner));
}

/** GET /v1/audit is for admins only (security-routes.ts). */
export function mayReadAudit(principal: Principal | undefined): boolean {
  return principal?.kind === "user" && principal.role === "admin";
}

/** Change, kill or roll back a flag (flags.write): admins, and deployers of the flag's owner team; a flag without an owner only admins. */
export function mayChangeFlag(principal: Principal | undefined, owner: string | undefined): boolean {
  if (principal?.kind !== "user") return false;
  return principal.role === "admin" || (principal.role === "deployer" && owner !== undefined && principal.teams.includes(owner));
}
