// `keelson tokens …`, `keelson whoami`, `keelson audit` and `keelson secrets …`: API tokens, the
// hash-chained audit log and services' secrets, through the control plane. Secret values are read
// from stdin or a prompt that does not echo, never from the command line, and are never printed.
import { resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { Writable } from "node:stream";
import { CommanderError, InvalidArgumentError, Option, type Command } from "commander";
import { KeelsonError } from "@keelson/protocol";
import { describePrincipal, type AuditRecord, type AuditVerification, type Principal, type Role, type SecretInfo, type TokenRecord } from "../security/index.js";
import type { ApiClient } from "./api-client.js";
import { reportResult, streamDeploy } from "./delivery-commands.js";
import { color, table } from "./output.js";
import { connect, print } from "./progress.js";

const ROLES: readonly Role[] = ["viewer", "deployer", "admin"];
const UNITS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 } as const;

const dirOption = () => new Option("-C, --dir <dir>", "project folder").default(".");
const secretsPath = (service: string, secret?: string) => `/v1/services/${encodeURIComponent(service)}/secrets${secret === undefined ? "" : `/${encodeURIComponent(secret)}`}`;

/** "2026-11-27 09:00" (UTC) of an ISO time. */
const when = (iso: string | undefined) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : "-");
/** "2026-11-27 09:00:05" (UTC): audit records a second apart must stay apart. */
const whenExact = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;

/** A duration like 30d, 12h, 90m or 2w, in milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)(s|m|h|d|w)$/.exec(value);
  const n = m ? Number(m[1]) * UNITS[m[2] as keyof typeof UNITS] : 0;
  if (!m || n <= 0 || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`expected a duration like 30d, 12h, 90m or 2w, got "${value}"`);
  return n;
}

/** `--since`: an ISO time, or a duration ago (1h, 7d); as an ISO time. */
export function parseSinceTime(value: string, now = Date.now()): string {
  if (/^\d+[smhdw]$/.test(value)) return new Date(now - parseDuration(value)).toISOString();
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`expected an ISO time or a duration like 1h or 7d, got "${value}"`);
  return new Date(t).toISOString();
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError(`expected a whole number from 1 to 1000, got "${value}"`);
  return n;
}

function collectTeams(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(",").map((t) => t.trim()).filter((t) => t !== "")];
}

/** The lines `keelson tokens list` prints. */
export function formatTokens(tokens: readonly TokenRecord[], now = Date.now()): string {
  if (tokens.length === 0) return "no tokens; `keelson tokens create <name> --role viewer` adds one";
  return table(
    ["ID", "NAME", "ROLE", "TEAMS", "CREATED", "LAST USED", "EXPIRES", "REVOKED"],
    tokens.map((t) => [
      t.id,
      t.revokedAt === undefined ? t.name : color.dim(t.name),
      t.role,
      t.teams.join(",") || "-",
      `${when(t.createdAt)} ${color.dim(t.createdBy)}`,
      t.lastUsedAt ? when(t.lastUsedAt) : color.dim("never"),
      t.expiresAt === undefined ? "never" : Date.parse(t.expiresAt) <= now ? color.red(`expired ${when(t.expiresAt)}`) : when(t.expiresAt),
      t.revokedAt === undefined ? "-" : color.red(`${when(t.revokedAt)}${t.revokedBy ? ` by ${t.revokedBy}` : ""}`),
    ]),
  );
}

/** The lines `keelson audit` prints: oldest first, like `keelson events`. */
export function formatAudit(records: readonly AuditRecord[]): string {
  if (records.length === 0) return "no audit records match";
  const result = (r: AuditRecord) => {
    const text = `${r.result}${r.status === undefined ? "" : ` ${r.status}`}`;
    return r.result === "ok" ? color.green(text) : r.result === "denied" ? color.yellow(text) : color.red(text);
  };
  return table(
    ["SEQ", "TIME (UTC)", "ACTOR", "ACTION", "TARGET", "RESULT", "FROM"],
    [...records].reverse().map((r) => [String(r.seq), whenExact(r.at), r.actor, r.action, r.target, result(r), r.from]),
  );
}

/** The line `keelson audit --verify` prints. */
export function formatVerification(v: AuditVerification): string {
  if (v.ok) return `${color.green("✓")} audit chain intact: ${v.checked} ${v.checked === 1 ? "record" : "records"}`;
  const bad = v.firstBad;
  return `${color.red("✗")} audit chain broken at record ${bad?.seq ?? "?"}: ${bad?.reason ?? "unknown reason"} (${v.checked} checked; records before it are intact)`;
}

/** The lines `keelson secrets list` prints: names and versions, never values. */
export function formatSecrets(service: string, secrets: readonly SecretInfo[]): string {
  if (secrets.length === 0) return `${service} has no secrets; \`printf %s "$VALUE" | keelson secrets set ${service} KEY\` adds one`;
  return table(
    ["NAME", "VERSION", "UPDATED", "BY", "KEY"],
    secrets.map((s) => [s.name, String(s.version), when(s.updatedAt), s.updatedBy, s.keyId]),
  );
}

/** A usage error found in an action: printed here, exit 2 (main prints nothing for a CommanderError). */
function usage(message: string): CommanderError {
  process.stderr.write(`${color.red("error:")} ${message}\n`);
  return new CommanderError(2, "keelson.usage", message);
}

/**
 * Refuses a secret value given on the command line (exit 2), before anything else happens:
 * it would stay in the shell's history and show in every user's process list.
 */
function refuseValueInArgv(cmd: Command, service: string, key: string): void {
  if (cmd.args.length <= 2) return;
  throw usage(
    [
      "keelson secrets set takes no value on the command line: it would be kept in your shell history and be visible to every user of this machine in the process list (ps).",
      "Pipe it on stdin instead:",
      `  printf %s "$VALUE" | keelson secrets set ${service} ${key}`,
      `or run \`keelson secrets set ${service} ${key}\` in a terminal to be asked for it (what you type is not shown).`,
    ].join("\n"),
  );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer | string>) chunks.push(typeof c === "string" ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString("utf8");
}

/** Asks on the terminal without echoing what is typed (the prompt goes to stderr). */
async function promptHidden(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  const cancelled = new Promise<never>((_resolve, reject) => rl.once("SIGINT", () => reject(new KeelsonError("KEELSON_ERR_INVALID_INPUT", "cancelled; the secret was not set"))));
  try {
    const answer = rl.question(question);
    // question() has written the prompt; from here on, nothing typed is echoed.
    muted = true;
    answer.catch(() => undefined);
    return await Promise.race([answer, cancelled]);
  } finally {
    muted = false;
    rl.close();
    process.stderr.write("\n");
  }
}

/** The secret's value: stdin when it is piped (one trailing newline dropped), else a hidden prompt. */
async function readSecretValue(service: string, key: string): Promise<string> {
  const piped = process.stdin.isTTY !== true;
  const value = piped ? (await readStdin()).replace(/\r?\n$/, "") : await promptHidden(`value of ${key} for ${service} (not shown): `);
  if (value === "") {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", piped ? `no value on stdin for ${key}; pipe it in, e.g. printf %s "$VALUE" | keelson secrets set ${service} ${key}` : `no value given for ${key}; the secret was not set`);
  }
  return value;
}

/** Deploys `service` the way `keelson deploy` does, so a changed secret rolls out like code. */
async function deployAfterSecretChange(api: ApiClient, service: string): Promise<void> {
  const started = Date.now();
  print(`${color.bold("keelson deploy")} ${service} ${color.dim("(rolls the secret change out)")}`);
  const result = await streamDeploy(api, `/v1/services/${encodeURIComponent(service)}/deploy`, { wait: true }, {});
  if (result.outcome !== "failed" && result.outcome !== "rolled-back" && result.message) print(result.message);
  reportResult(result, "release", started);
}

const notDeployed = (service: string) => color.dim(`running replicas keep the old value until the next deploy: \`keelson deploy ${service}\``);

export function addSecurityCommands(program: Command): void {
  const tokens = program.command("tokens").description("API tokens: create (shown once), list, revoke");

  tokens
    .command("create")
    .description("create an API token; it is printed once and cannot be shown again")
    .argument("<name>", "a name for the token, e.g. ci-web")
    .addOption(dirOption())
    .addOption(new Option("--role <role>", "what it may do").choices(ROLES).makeOptionMandatory())
    .option("--team <team>", "a team whose services a deployer token may change (repeat or comma-separate)", collectTeams)
    .addOption(new Option("--expires <duration>", "expire after this long, e.g. 30d, 12h, 2w (default: never)").argParser(parseDuration))
    .option("--json", "print JSON ({ token, record })")
    .action(async (name: string, opts: { dir: string; role: Role; team?: string[]; expires?: number; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const body = { name, role: opts.role, ...(opts.team ? { teams: opts.team } : {}), ...(opts.expires === undefined ? {} : { expiresInMs: opts.expires }) };
      const created = await api.post<{ token: string; record: TokenRecord }>("/v1/tokens", body);
      if (opts.json) return print(JSON.stringify(created, null, 2));
      const r = created.record;
      const what = r.role === "deployer" ? `deployer for teams ${r.teams.join(", ")}` : r.role;
      print(`${color.green("✓")} token ${r.name} (${r.id}) created: ${what}, ${r.expiresAt ? `expires ${r.expiresAt}` : "does not expire"}`);
      print("");
      print(`  ${created.token}`);
      print("");
      print(color.yellow("This is the only time the token is shown: it is stored only as a hash and cannot be shown again. Keep it in a secret store (e.g. as KEELSON_TOKEN in your CI's secrets)."));
    });

  tokens
    .command("list")
    .description("every token, revoked ones too (never the secret)")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { tokens: list } = await api.get<{ tokens: TokenRecord[] }>("/v1/tokens");
      print(opts.json ? JSON.stringify(list, null, 2) : formatTokens(list));
    });

  tokens
    .command("revoke")
    .description("revoke a token: every request with it is refused from now on")
    .argument("<token>", "the token's id (tok_…) or name")
    .addOption(dirOption())
    .action(async (idOrName: string, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      const { token } = await api.request<{ token: TokenRecord }>("DELETE", `/v1/tokens/${encodeURIComponent(idOrName)}`);
      print(`${color.green("✓")} token ${token.name} (${token.id}) revoked${token.revokedAt ? ` at ${token.revokedAt}` : ""}`);
    });

  program
    .command("whoami")
    .description("who the control plane takes you for: the token in use and its role")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { principal } = await api.get<{ principal: Principal }>("/v1/whoami");
      if (opts.json) return print(JSON.stringify(principal, null, 2));
      print(`${describePrincipal(principal)}${principal.kind === "user" ? ` ${color.dim(principal.tokenId)}` : ""} at ${api.url}`);
    });

  program
    .command("audit")
    .description("the audit log (who changed what, from where, with what result), or --verify its hash chain")
    .addOption(dirOption())
    .option("--actor <actor>", "only this actor, e.g. user:ci-web")
    .option("--target <target>", "only this target, e.g. service/orders")
    .option("--action <action>", 'only this action, e.g. "POST /v1/services/:name/deploy"')
    .addOption(new Option("--since <time>", "only records since an ISO time or a duration ago (1h, 7d)").argParser((v: string) => parseSinceTime(v)))
    .addOption(new Option("-n, --limit <n>", "at most this many, the newest (1-1000)").argParser(parseLimit))
    .option("--verify", "check the hash chain of every record; exit 1 naming the first bad one")
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; actor?: string; target?: string; action?: string; since?: string; limit?: number; verify?: boolean; json?: boolean }) => {
      const filters = { actor: opts.actor, target: opts.target, action: opts.action, since: opts.since, limit: opts.limit === undefined ? undefined : String(opts.limit) };
      if (opts.verify && Object.values(filters).some((v) => v !== undefined)) {
        throw usage("--verify checks the whole chain; it takes no --actor, --target, --action, --since or --limit");
      }
      const api = await connect(resolve(opts.dir));
      if (opts.verify) {
        const v = await api.get<AuditVerification>("/v1/audit/verify");
        print(opts.json ? JSON.stringify(v, null, 2) : formatVerification(v));
        if (!v.ok) process.exitCode = 1;
        return;
      }
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(filters)) if (v !== undefined) query.set(k, v);
      const qs = query.toString();
      const { records } = await api.get<{ records: AuditRecord[] }>(`/v1/audit${qs ? `?${qs}` : ""}`);
      print(opts.json ? JSON.stringify(records, null, 2) : formatAudit(records));
    });

  const secrets = program.command("secrets").description("a service's secrets: set (from stdin or a hidden prompt), list (names only), delete, rotate the vault key");

  secrets
    .command("set")
    .description("set a secret from stdin (piped) or a prompt that does not echo, then deploy the service; never takes the value as an argument")
    .argument("<service>", "service name")
    .argument("<KEY>", "secret name, e.g. DB_PASSWORD")
    .allowExcessArguments()
    .addOption(dirOption())
    .option("--no-deploy", "only store the new value; running replicas keep the old one until the next deploy")
    .action(async (service: string, key: string, opts: { dir: string; deploy: boolean }, cmd: Command) => {
      refuseValueInArgv(cmd, service, key);
      // Find the control plane first: no one should type a secret for nothing.
      const api = await connect(resolve(opts.dir));
      const value = await readSecretValue(service, key);
      const { secret } = await api.request<{ secret: SecretInfo }>("PUT", secretsPath(service, key), { value });
      print(`${color.green("✓")} secret ${key} of ${service} set (version ${secret.version})`);
      if (opts.deploy) await deployAfterSecretChange(api, service);
      else print(notDeployed(service));
    });

  secrets
    .command("list")
    .description("a service's secrets: names, versions, when and by whom they were set (never values)")
    .argument("<service>", "service name")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (service: string, opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const view = await api.get<{ service: string; secrets: SecretInfo[] }>(secretsPath(service));
      print(opts.json ? JSON.stringify(view, null, 2) : formatSecrets(service, view.secrets));
    });

  secrets
    .command("delete")
    .description("delete a secret, then deploy the service")
    .argument("<service>", "service name")
    .argument("<KEY>", "secret name")
    .addOption(dirOption())
    .option("--no-deploy", "only delete it; running replicas keep the value until the next deploy")
    .action(async (service: string, key: string, opts: { dir: string; deploy: boolean }) => {
      const api = await connect(resolve(opts.dir));
      await api.request<{ deleted: string }>("DELETE", secretsPath(service, key));
      print(`${color.green("✓")} secret ${key} of ${service} deleted`);
      if (opts.deploy) await deployAfterSecretChange(api, service);
      else print(notDeployed(service));
    });

  secrets
    .command("rotate-key")
    .description("re-encrypt every secret of the project under a new vault master key")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const r = await api.post<{ from: string; to: string; reencrypted: number }>("/v1/vault/rotate");
      if (opts.json) return print(JSON.stringify(r, null, 2));
      print(`${color.green("✓")} vault key rotated: ${r.from} → ${r.to}, ${r.reencrypted} ${r.reencrypted === 1 ? "secret" : "secrets"} re-encrypted (their values are unchanged)`);
    });
}
