// The API's security endpoints: tokens, the audit log, a service's secrets (names and versions
// only, never values), vault key rotation, and the SBOM stored with each release.
import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { KeelsonError } from "@keelson/protocol";
import type { AuditLog, Redactor, TokenService, Vault, Role } from "../security/index.js";
import type { Store } from "../store/index.js";
import { noteChange, principalOf } from "./access.js";
import { readJson, sendJson, type Route } from "./http.js";

/** What the control plane's security endpoints work with. */
export interface SecurityServices {
  tokens: TokenService;
  audit: AuditLog;
  vault: Vault;
  /** The redactor for the project's current secret values (cheap to call per request). */
  redactor(): Redactor;
  /** Called after a secret changed, so the redactor learns the new value. */
  secretsChanged?(service: string): Promise<void>;
}

const RELEASE_ID = /^[a-z0-9][a-z0-9-]{0,80}$/;

export function addSecurityRoutes(
  route: Route,
  deps: SecurityServices & {
    store: Store;
    project: string;
    stateDir: string;
    actorOf(req: IncomingMessage): string;
    serviceParam(name: string | undefined): Promise<string>;
  },
): void {
  const { tokens, audit, vault, actorOf, serviceParam } = deps;

  route("GET", "/v1/whoami", "read", async (req, res) => sendJson(res, 200, { principal: principalOf(req) }));
  route("GET", "/v1/tokens", "admin", async (_req, res) => sendJson(res, 200, { tokens: await tokens.list() }));
  route("POST", "/v1/tokens", "admin", async (req, res) => {
    const body = await readJson(req);
    // The token service checks every field (name, role, teams, expiry) and names the bad one.
    const created = await tokens.create({
      name: body.name as string,
      role: body.role as Role,
      ...(body.teams === undefined ? {} : { teams: body.teams as string[] }),
      ...(body.expiresInMs === undefined ? {} : { expiresInMs: body.expiresInMs as number }),
      actor: actorOf(req),
    });
    noteChange(req, { after: created.record });
    sendJson(res, 201, created);
  });
  route("DELETE", "/v1/tokens/:id", "admin", async (req, res, params) => {
    const record = await tokens.revoke(params.id ?? "", actorOf(req));
    noteChange(req, { after: record });
    sendJson(res, 200, { token: record });
  });

  route("GET", "/v1/audit", "admin", async (_req, res, _p, u) => {
    const limit = Number(u.searchParams.get("limit") ?? "100");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `limit: expected a whole number 1-1000, got ${JSON.stringify(u.searchParams.get("limit"))}`);
    const filter: { limit: number; actor?: string; target?: string; action?: string; since?: string } = { limit };
    for (const key of ["actor", "target", "action", "since"] as const) {
      const v = u.searchParams.get(key);
      if (v) filter[key] = v;
    }
    sendJson(res, 200, { records: await audit.list(filter) });
  });
  route("GET", "/v1/audit/verify", "admin", async (_req, res) => sendJson(res, 200, await audit.verify()));

  route("GET", "/v1/services/:name/secrets", "read", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    sendJson(res, 200, { service: name, secrets: await vault.list(name) });
  });
  route("PUT", "/v1/services/:name/secrets/:secret", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    const body = await readJson(req);
    if (typeof body.value !== "string") throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", "value: expected the secret's value as a string");
    const entry = await vault.set(name, params.secret ?? "", body.value, actorOf(req));
    await deps.secretsChanged?.(name);
    noteChange(req, { after: { secret: params.secret, version: entry.version } });
    sendJson(res, 200, { service: name, secret: entry });
  });
  route("DELETE", "/v1/services/:name/secrets/:secret", { deploy: "name" }, async (req, res, params) => {
    const name = await serviceParam(params.name);
    await vault.delete(name, params.secret ?? "", actorOf(req));
    await deps.secretsChanged?.(name);
    noteChange(req, { before: { secret: params.secret } });
    sendJson(res, 200, { service: name, deleted: params.secret });
  });
  route("POST", "/v1/vault/rotate", "admin", async (req, res) => {
    const result = await vault.rotate(actorOf(req));
    noteChange(req, { after: result });
    sendJson(res, 200, result);
  });

  route("GET", "/v1/services/:name/releases/:release/sbom", "read", async (_req, res, params) => {
    const name = await serviceParam(params.name);
    const release = params.release ?? "";
    if (!RELEASE_ID.test(release)) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `release: expected a release id like r-3f9a1c2b7d4e, got ${JSON.stringify(release.slice(0, 100))}`);
    const text = await readFile(join(deps.stateDir, "sboms", name, `${release}.cdx.json`), "utf8").catch(() => undefined);
    if (text === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no SBOM is stored for release "${release}" of "${name}" (releases built before the security stage have none)`);
    res.writeHead(200, { "content-type": "application/vnd.cyclonedx+json; charset=utf-8" });
    res.end(text);
  });
}
