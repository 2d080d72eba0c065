// From a route's declared auth to what the gateway checks: API keys read from the service's
// secrets and reduced to SHA-256 hashes (the keys never leave the control plane), JWKS files
// read and stripped to public members. A route whose credential cannot be resolved admits no one.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { RouteAuth } from "@keelson/protocol";
import type { RouteAuthOut } from "../manifest/index.js";
import type { Vault } from "../security/index.js";

/** JWK members that belong to private or symmetric keys: never published to gateways. */
const PRIVATE_MEMBERS = new Set(["d", "p", "q", "dp", "dq", "qi", "k", "oth"]);

export function createRouteAuthResolver(options: { dir: string; vault: Pick<Vault, "values"> }) {
  return async (service: string, auth: Exclude<RouteAuthOut, "public">): Promise<RouteAuth> => {
    if ("apiKey" in auth) {
      const value = (await options.vault.values(service))[auth.apiKey.secret];
      const keys = (value ?? "")
        .split(/[\n,]/)
        .map((k) => k.trim())
        .filter((k) => k.length > 0);
      return { apiKey: { header: auth.apiKey.header, sha256: keys.map((k) => createHash("sha256").update(k).digest("hex")) } };
    }
    const { issuer, audience, jwksUrl, jwksFile, algorithms } = auth.jwt;
    const base = { issuer, ...(audience === undefined ? {} : { audience }), ...(algorithms === undefined ? {} : { algorithms }) };
    if (jwksUrl !== undefined) return { jwt: { ...base, jwksUrl } };
    let keys: Array<Record<string, unknown>> = [];
    try {
      const parsed = JSON.parse(await readFile(resolve(options.dir, jwksFile as string), "utf8")) as { keys?: unknown };
      if (Array.isArray(parsed.keys)) {
        keys = parsed.keys
          .filter((k): k is Record<string, unknown> => typeof k === "object" && k !== null && typeof (k as { kty?: unknown }).kty === "string" && (k as { kty: string }).kty !== "oct")
          .map((k) => Object.fromEntries(Object.entries(k).filter(([member]) => !PRIVATE_MEMBERS.has(member))));
      }
    } catch {
      // An unreadable key set verifies nothing: the route refuses every token.
    }
    return { jwt: { ...base, jwks: { keys: keys as Array<{ kty: string }> } } };
  };
}
