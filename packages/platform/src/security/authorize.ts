// Authorization: who (a Principal) may do what. A pure function of the caller and the
// target, so the API, the gateway and the CLI all apply exactly the same rules.

/** What a token may do: read everything; also change its teams' services; or anything. */
export type Role = "viewer" | "deployer" | "admin";

/** Every role, weakest first. */
export const ROLES: readonly Role[] = ["viewer", "deployer", "admin"];

/**
 * Who is calling. "user" comes from an API token; "service" and "gateway" come from
 * workload identity tokens (issued to replicas and to the gateway).
 */
export type Principal =
  | { kind: "user"; tokenId: string; name: string; role: Role; teams: string[] }
  | { kind: "service"; service: string }
  | { kind: "gateway" };

/**
 * What the caller wants to do:
 * - `read`: any read of the API (user tokens of every role).
 * - `deploy`: change ONE service (deploy, rollback, promote, abort, scale, restart,
 *   traffic, its secrets); needs a {@link ServiceResource}.
 * - `flags.write`: change a feature flag; needs a {@link FlagResource}.
 * - `admin`: tokens, apply, down, audit verification, vault key rotation.
 * - `telemetry.write`: OTLP ingest (services, the gateway, admins).
 * - `flags.evaluate`: flag evaluation (services and every user).
 * - `routing.watch`: the routing-table stream (the gateway and every user).
 */
export type AuthorizeAction = "read" | "deploy" | "flags.write" | "admin" | "telemetry.write" | "flags.evaluate" | "routing.watch";

/** The service a `deploy` acts on, with its owning team from the manifest. */
export interface ServiceResource {
  service: string;
  owner?: string | undefined;
}

/** The flag a `flags.write` acts on, with its owner from the manifest. */
export interface FlagResource {
  flag: string;
  owner?: string | undefined;
}

/** The outcome of {@link authorize}; `reason` is a sentence fit for a 403 message. */
export type Decision = { ok: true } | { ok: false; reason: string };

const ALLOWED: Decision = { ok: true };

function deny(reason: string): Decision {
  return { ok: false, reason };
}

/**
 * How a principal is named in messages, e.g. `token "ci-web" (deployer for teams web)`.
 */
export function describePrincipal(principal: Principal): string {
  switch (principal.kind) {
    case "user": {
      const what = principal.role === "deployer" ? `deployer for teams ${principal.teams.join(", ")}` : principal.role;
      return `token "${principal.name}" (${what})`;
    }
    case "service":
      return `service "${principal.service}"`;
    case "gateway":
      return "the gateway";
  }
}

/**
 * Decides whether `principal` may perform `action` on `resource`.
 *
 * @example
 * authorize(ciWeb, "deploy", { service: "payments", owner: "pay" })
 * // { ok: false, reason: 'token "ci-web" (deployer for teams web) may not change service "payments", owned by team "pay"' }
 */
export function authorize(principal: Principal, action: "deploy", resource: ServiceResource): Decision;
export function authorize(principal: Principal, action: "flags.write", resource: FlagResource): Decision;
export function authorize(principal: Principal, action: Exclude<AuthorizeAction, "deploy" | "flags.write">): Decision;
export function authorize(principal: Principal, action: AuthorizeAction, resource?: ServiceResource | FlagResource): Decision;
export function authorize(principal: Principal, action: AuthorizeAction, resource?: ServiceResource | FlagResource): Decision {
  const who = describePrincipal(principal);
  switch (action) {
    case "read":
      return principal.kind === "user" ? ALLOWED : deny(`${who} may not read the control plane API; only API tokens may`);
    case "deploy": {
      const target = resource !== undefined && "service" in resource ? resource : undefined;
      if (target === undefined) return deny(`${who} may not change a service without naming it`);
      return changeOwned(principal, who, `service "${target.service}"`, target.owner);
    }
    case "flags.write": {
      const target = resource !== undefined && "flag" in resource ? resource : undefined;
      if (target === undefined) return deny(`${who} may not change a flag without naming it`);
      return changeOwned(principal, who, `flag "${target.flag}"`, target.owner);
    }
    case "admin":
      if (principal.kind === "user" && principal.role === "admin") return ALLOWED;
      return deny(`${who} may not do this: it needs an admin token`);
    case "telemetry.write":
      if (principal.kind === "service" || principal.kind === "gateway") return ALLOWED;
      if (principal.role === "admin") return ALLOWED;
      return deny(`${who} may not send telemetry: only services, the gateway and admin tokens may`);
    case "flags.evaluate":
      return principal.kind === "gateway" ? deny(`${who} may not evaluate flags: only services and API tokens may`) : ALLOWED;
    case "routing.watch":
      return principal.kind === "service" ? deny(`${who} may not watch the routing table: only the gateway and API tokens may`) : ALLOWED;
  }
}

function changeOwned(principal: Principal, who: string, target: string, owner: string | undefined): Decision {
  if (principal.kind !== "user") return deny(`${who} may not change ${target}`);
  switch (principal.role) {
    case "admin":
      return ALLOWED;
    case "viewer":
      return deny(`${who} may not change ${target}: a viewer token may only read`);
    case "deployer":
      if (owner === undefined) return deny(`${who} may not change ${target}, which has no owner team; only an admin token may`);
      if (principal.teams.includes(owner)) return ALLOWED;
      return deny(`${who} may not change ${target}, owned by team "${owner}"`);
  }
}
