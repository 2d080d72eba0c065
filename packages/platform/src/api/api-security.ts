// The control plane's security services, wired once: API tokens, the audit log, the secrets
// vault and the redactor of known secret values. `keelson serve` and in-process tests use it alike.
import { join } from "node:path";
import {
  createAuditLog,
  createRedactor,
  createTokenService,
  createVault,
  loadKeyRing,
  type IdentityVerifier,
  type KeyRing,
  type Redactor,
  type TokenService,
  type Vault,
} from "../security/index.js";
import type { Store } from "../store/index.js";
import type { Credentials } from "./access.js";
import type { SecurityServices } from "./security-routes.js";

export interface ApiSecurity extends SecurityServices {
  credentials: Credentials;
  tokens: TokenService;
  vault: Vault;
}

/**
 * Creates the security services of a project's control plane. The vault's master key comes from
 * `keys`, else $KEELSON_MASTER_KEY, else `<stateDir>/master.key` (created with mode 0600).
 *
 * @example
 * const security = await createApiSecurity({ store, project: "shop", stateDir });
 * const { token } = await security.tokens.create({ name: "ci", role: "deployer", teams: ["web"], actor: "admin" });
 */
export async function createApiSecurity(options: { store: Store; project: string; stateDir: string; keys?: KeyRing; identities?: IdentityVerifier }): Promise<ApiSecurity> {
  const { store, project } = options;
  const tokens = createTokenService({ store, project });
  const keys = options.keys ?? (await loadKeyRing({ env: process.env.KEELSON_MASTER_KEY, keyFile: join(options.stateDir, "master.key") }));
  const vault = createVault({ store, project, keys });
  let redactor: Redactor = createRedactor(await vault.allValues());
  return {
    credentials: { tokens, ...(options.identities ? { identities: options.identities } : {}) },
    tokens,
    audit: createAuditLog({ store, project }),
    vault,
    redactor: () => redactor,
    async secretsChanged() {
      redactor = createRedactor(await vault.allValues());
    },
  };
}
