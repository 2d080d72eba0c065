// Who is calling, and may they: the control plane resolves every request's bearer credential
// (a user token, or a service's or the gateway's identity token) to a principal, then checks the
// endpoint's declared Access against the security domain's rules. Composition only: the rules
// live in security/tokens.ts.
import type { IncomingMessage } from "node:http";
import { KeelsonError } from "@keelson/protocol";
import { authorize, type AuthorizeAction, type Principal } from "../security/index.js";
import type { Access } from "./http.js";

/** What resolves a bearer credential; the control plane passes its token service and identity verifier. */
export interface Credentials {
  tokens: { authenticate(header: string | undefined): Promise<{ ok: true; principal: Principal } | { ok: false; reason: string }> };
  /** Identity tokens (JWT-SVIDs) of services and of the gateway. */
  identities?: { verify(token: string): Promise<{ ok: true; service: string } | { ok: false; reason: string }> };
}

/** The name the gateway's identity carries (spiffe://<project>/keelson-gateway). */
export const GATEWAY_IDENTITY = "keelson-gateway";

const principals = new WeakMap<IncomingMessage, Principal>();
const changes = new WeakMap<IncomingMessage, AuditChange>();

/** What a call changed, for its audit record (values already free of secrets). */
export interface AuditChange {
  before?: unknown;
  after?: unknown;
}

/** Notes what the request changed; the audit record written when it finishes carries it. */
export function noteChange(req: IncomingMessage, change: AuditChange): void {
  changes.set(req, change);
}

/** What the request noted with noteChange. */
export function changeOf(req: IncomingMessage): AuditChange | undefined {
  return changes.get(req);
}

/** The principal a request was authenticated as (set before its handler runs). */
export function principalOf(req: IncomingMessage): Principal | undefined {
  return principals.get(req);
}

/** How a principal appears in events and the audit log: `user:<token name>`, `service:<name>`, `gateway`. */
export function actorName(principal: Principal | undefined): string {
  if (principal === undefined) return "anonymous";
  if (principal.kind === "user") return `user:${principal.name}`;
  if (principal.kind === "service") return `service:${principal.service}`;
  return "gateway";
}

const REASONS: Record<string, string> = {
  missing: "this endpoint needs a bearer token (authorization: Bearer <token>); `keelson up` stored one in .keelson/token, or create one with `keelson tokens create`",
  malformed: "the authorization header is not `Bearer <token>`",
  unknown: "the token is not known to this control plane",
  expired: "the token has expired",
  revoked: "the token was revoked",
};

/** Resolves the request's credential; 401 without a valid one. */
export async function authenticate(req: IncomingMessage, credentials: Credentials): Promise<Principal> {
  const header = req.headers.authorization;
  const bearer = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
  // Identity tokens are JWTs (three base64url parts); user tokens start with ks_.
  if (bearer !== undefined && credentials.identities !== undefined && /^eyJ[\w-]*\.[\w-]+\.[\w-]+$/.test(bearer)) {
    const verified = await credentials.identities.verify(bearer);
    if (!verified.ok) throw new KeelsonError("KEELSON_ERR_UNAUTHENTICATED", `identity token rejected: ${verified.reason}`);
    const principal: Principal = verified.service === GATEWAY_IDENTITY ? { kind: "gateway" } : { kind: "service", service: verified.service };
    principals.set(req, principal);
    return principal;
  }
  const result = await credentials.tokens.authenticate(typeof header === "string" ? header : undefined);
  if (!result.ok) throw new KeelsonError("KEELSON_ERR_UNAUTHENTICATED", REASONS[result.reason] ?? `token rejected: ${result.reason}`);
  principals.set(req, result.principal);
  return result.principal;
}

/** What a check of Access needs to know about the resource: the owner of the named service or flag. */
export interface AccessResources {
  serviceOwner(name: string): Promise<string | undefined>;
  flagOwner(key: string): Promise<string | undefined>;
}

/** Throws 403 when the principal may not call an endpoint with this Access. */
export async function checkAccess(principal: Principal, access: Access, params: Record<string, string>, resources: AccessResources): Promise<void> {
  let action: AuthorizeAction;
  let resource: Parameters<typeof authorize>[2];
  if (access === "public") return;
  if (typeof access === "string") {
    action = ({ read: "read", admin: "admin", telemetry: "telemetry.write", evaluate: "flags.evaluate", watch: "routing.watch" } as const)[access];
  } else if ("deploy" in access) {
    const service = params[access.deploy] ?? "";
    action = "deploy";
    resource = { service, owner: await resources.serviceOwner(service) };
  } else {
    const flag = params[access.flag] ?? "";
    action = "flags.write";
    resource = { flag, owner: await resources.flagOwner(flag) };
  }
  const verdict = authorize(principal, action, resource);
  if (!verdict.ok) throw new KeelsonError("KEELSON_ERR_FORBIDDEN", verdict.reason);
}
