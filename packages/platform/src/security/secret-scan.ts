// Secret scanning for the pipeline's security stage: gitleaks-like rules run over a service's
// files and over the lines new commits added, an allow-list for false positives, and findings
// that never carry the secret itself (a fingerprint and a redacted excerpt instead).
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join, posix, relative, resolve, sep } from "node:path";
import { promisify } from "node:util";
import { KeelsonError } from "@keelson/protocol";

const run = promisify(execFile);

/** One secret found in a file or a commit. Holds no secret: only a fingerprint and a redacted excerpt. */
export interface SecretFinding {
  /** The rule that matched, e.g. "aws-access-key-id". */
  rule: string;
  /** "/"-separated, relative to the scanned folder. */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based, where the secret starts on the line. */
  column: number;
  /** 16 hex chars of sha256(rule, file, secret): stable across runs, usable in the allow-list. */
  fingerprint: string;
  /** The line with every secret on it shown as its first 4 characters and "…". */
  excerpt: string;
  /** The commit that added the line (commit scans only). */
  commit?: string;
}

/** The result of scanning a folder. */
export interface SecretScanResult {
  findings: SecretFinding[];
  /** Files read (binary, oversized and vendored ones are not). */
  files: number;
  /** Findings the allow-list silenced. */
  allowed: number;
}

/** The result of scanning commits. */
export interface CommitScanResult {
  findings: SecretFinding[];
  /** Commits whose diffs were read. */
  commits: number;
  allowed: number;
  /** Why fewer commits than asked were scanned (not a repository, history rewritten, the limit hit). */
  note?: string;
}

/** What silences findings: fingerprints, "path:line" entries and path globs. */
export interface AllowList {
  /**
   * Whether the allow-list names the finding. `aliases` are other spellings of its file (for
   * example the path from the manifest's folder) that entries may use instead.
   */
  allows(finding: Pick<SecretFinding, "fingerprint" | "file" | "line">, aliases?: readonly string[]): boolean;
  /** Number of entries. */
  readonly size: number;
  /** The file it came from, when it came from one. */
  readonly source: string | undefined;
}

/** A rule's candidate: where the finding is reported and where the secret is. */
interface Candidate {
  at: number;
  start: number;
  end: number;
}

interface Rule {
  id: string;
  /** Global, with the `d` flag and a named group `s` holding the secret. */
  pattern?: RegExp;
  /** Instead of a pattern: finds the candidates itself. */
  find?: (text: string) => Candidate[];
  /** Extra check on a candidate; false drops it. */
  accept?: (secret: string, file: string) => boolean;
}

// Repeats are bounded and the name is matched from its keyword on ("dbPassword" from
// "Password"): a run of name characters before the keyword would make long lines quadratic.
const GENERIC_NAME = String.raw`(?:secret|password|passwd|token|api[_\-]?key)[A-Za-z0-9_.\-]{0,40}`;
const ASSIGN = String.raw`["']?\s*(?::=|=>|=|:)\s*`;
const QUOTED_VALUE = String.raw`(?<q>["'\`])(?<s>(?:(?!\k<q>)[^\r\n\\]|\\.){16,1024})\k<q>`;
const UNQUOTED_VALUE = String.raw`(?<s>[^\s"'\`#;,]{16,1024})(?=\s|$|#)`;

const KEY_BEGIN = /-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----/g;
const KEY_END = /-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----/g;

/**
 * Private key blocks: a BEGIN line, at least 64 characters, then the END line with no other
 * BEGIN in between. Reported at the BEGIN line; the secret is the body. Found with one pass
 * over each marker kind so that a file of unmatched headers stays linear.
 */
function privateKeyBlocks(text: string): Candidate[] {
  if (!text.includes("PRIVATE KEY")) return [];
  const begins = [...text.matchAll(KEY_BEGIN)].map((m) => ({ at: m.index, bodyStart: m.index + m[0].length }));
  const ends = [...text.matchAll(KEY_END)].map((m) => m.index);
  const out: Candidate[] = [];
  let e = 0;
  for (const [i, b] of begins.entries()) {
    while (e < ends.length && (ends[e] as number) < b.bodyStart) e++;
    const end = ends[e];
    if (end === undefined) break;
    const nextBegin = begins[i + 1]?.at ?? Infinity;
    if (end < nextBegin && end - b.bodyStart >= 64) out.push({ at: b.at, start: b.bodyStart, end });
  }
  return out;
}

/** Files where `NAME=value` without quotes is the norm (env files, YAML, properties). */
function unquotedValuesUsual(file: string): boolean {
  const name = basename(file).toLowerCase();
  return name.startsWith(".env") || name.endsWith(".env") || /\.(ya?ml|properties|ini|conf|cfg)$/.test(name);
}

/** Ordered: where two rules match the same text, the earlier (more specific) one wins. */
const RULES: readonly Rule[] = [
  { id: "private-key", find: privateKeyBlocks },
  { id: "aws-access-key-id", pattern: /\b(?<s>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b/dg },
  {
    id: "aws-secret-access-key",
    pattern: /(?:[Aa][Ww][Ss]|[Ss][Ee][Cc][Rr][Ee][Tt])[A-Za-z0-9_.-]{0,30}["']?\s*(?::=|=>|=|:)\s*["'`]?(?<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/dg,
    accept: (s) => /[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9/+]/.test(s),
  },
  { id: "github-token", pattern: /\b(?<s>gh[pousr]_[A-Za-z0-9]{36,255})\b/dg },
  { id: "github-fine-grained-token", pattern: /\b(?<s>github_pat_[A-Za-z0-9_]{50,255})\b/dg },
  { id: "slack-token", pattern: /\b(?<s>xox[baprs]-[0-9A-Za-z][0-9A-Za-z-]{9,250})/dg },
  { id: "stripe-live-key", pattern: /\b(?<s>(?:sk|rk)_live_[0-9A-Za-z]{10,247})\b/dg },
  { id: "google-api-key", pattern: /\b(?<s>AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])/dg },
  { id: "jwt", pattern: /\b(?<s>eyJ[A-Za-z0-9_-]{10,2048}\.eyJ[A-Za-z0-9_-]{10,16384}\.[A-Za-z0-9_-]{0,2048})/dg },
  { id: "npm-token", pattern: /\b(?<s>npm_[A-Za-z0-9]{36})\b/dg },
  { id: "keelson-api-token", pattern: /\b(?<s>ks_[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])/dg },
  {
    id: "generic-secret",
    pattern: new RegExp(`${GENERIC_NAME}${ASSIGN}${QUOTED_VALUE}`, "dgi"),
    accept: (s) => genericSecretValue(s),
  },
  {
    id: "generic-secret",
    pattern: new RegExp(`${GENERIC_NAME}${ASSIGN}${UNQUOTED_VALUE}`, "dgim"),
    accept: (s, file) => unquotedValuesUsual(file) && genericSecretValue(s),
  },
];

/** The rule ids the scanner knows. */
export const SECRET_RULES: readonly string[] = [...new Set(RULES.map((r) => r.id))];

const PLACEHOLDER = /\$\{|\{\{|process\.env|import\.meta\.env|^\$|^%.*%$|^<.*>$|changeme|change[_-]me|placeholder|example|dummy|redacted|your[_-]|xxxx|\*\*\*\*|\.\.\.|todo/i;

/** Shannon entropy of a string, in bits per character. */
export function shannonEntropy(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  const n = [...text].length;
  for (const c of counts.values()) {
    const p = c / n;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/**
 * Whether a value assigned to a secret-sounding name looks like a real secret: long enough,
 * random enough (≥ 3.5 bits/char), and not a placeholder, reference, URL, path or plain words.
 */
function genericSecretValue(value: string): boolean {
  if (value.length < 16) return false;
  if (PLACEHOLDER.test(value)) return false;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /^\.{0,2}\//.test(value)) return false;
  // Words and identifiers ("x-keelson-identity-token", "password reset link") are not secrets.
  if (/^[a-z_\-. :/]+$/.test(value) || /^[A-Z_\-. :/]+$/.test(value) || /\s\S+\s/.test(value)) return false;
  return shannonEntropy(value) >= 3.5;
}

function fingerprintOf(rule: string, file: string, secret: string): string {
  return createHash("sha256").update(`${rule}\0${file}\0${secret}`).digest("hex").slice(0, 16);
}

/** A secret as findings show it: its first 4 characters and "…". */
export function redactSecret(secret: string): string {
  return `${secret.slice(0, 4)}…`;
}

const MAX_EXCERPT = 160;

interface RawMatch {
  rule: string;
  /** Offsets of the secret in the text. */
  start: number;
  end: number;
  /** Where the finding is reported. */
  at: number;
  secret: string;
}

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

function lineIndexOf(starts: readonly number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] as number) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Every rule's matches in `text`, overlaps resolved in favour of the more specific rule. */
function matchText(text: string, file: string): RawMatch[] {
  const accepted: RawMatch[] = [];
  for (const rule of RULES) {
    const candidates: Candidate[] = rule.find ? rule.find(text) : [];
    if (rule.pattern) {
      rule.pattern.lastIndex = 0;
      for (const m of text.matchAll(rule.pattern)) {
        const span = m.indices?.groups?.s;
        if (span) candidates.push({ at: span[0], start: span[0], end: span[1] });
      }
    }
    for (const { at, start, end } of candidates) {
      const secret = text.slice(start, end);
      if (rule.accept && !rule.accept(secret, file)) continue;
      if (accepted.some((a) => start < a.end && a.start < end)) continue;
      accepted.push({ rule: rule.id, start, end, at, secret });
    }
  }
  return accepted.sort((a, b) => a.at - b.at || a.rule.localeCompare(b.rule));
}

/** The line holding `at`, every secret on it redacted, trimmed around the finding. */
function excerptOf(text: string, starts: readonly number[], lineIndex: number, at: number, matches: readonly RawMatch[]): string {
  const lineStart = starts[lineIndex] as number;
  const next = starts[lineIndex + 1];
  const lineEnd = next === undefined ? text.length : next - 1;
  let out = "";
  let cursor = lineStart;
  let focus = 0;
  for (const m of matches) {
    if (m.end <= lineStart || m.start >= lineEnd) continue;
    const s = Math.max(m.start, lineStart);
    if (s < cursor) continue;
    out += text.slice(cursor, s);
    if (m.at === at) focus = out.length;
    out += redactSecret(m.secret);
    cursor = Math.min(m.end, lineEnd);
  }
  out += text.slice(cursor, lineEnd);
  out = out.replace(/\r$/, "");
  if (out.length <= MAX_EXCERPT) return out.trim();
  const from = Math.max(0, Math.min(focus - 40, out.length - MAX_EXCERPT));
  return `${from > 0 ? "…" : ""}${out.slice(from, from + MAX_EXCERPT).trim()}${from + MAX_EXCERPT < out.length ? "…" : ""}`;
}

/**
 * Finds secrets in one text. `file` names it in the findings (and decides whether unquoted
 * `NAME=value` assignments count); `lineOffset` is added to reported line numbers.
 *
 * @example
 * scanText('const key = "AKIAIOSFODNN7EXAMPLE";', "src/config.ts")
 * // → [{ rule: "aws-access-key-id", file: "src/config.ts", line: 1, column: 14, excerpt: 'const key = "AKIA…";', … }]
 */
export function scanText(text: string, file: string, lineOffset = 0): SecretFinding[] {
  const matches = matchText(text, file);
  if (matches.length === 0) return [];
  const starts = lineStarts(text);
  return matches.map((m) => {
    const li = lineIndexOf(starts, m.at);
    return {
      rule: m.rule,
      file,
      line: li + 1 + lineOffset,
      column: m.at - (starts[li] as number) + 1,
      fingerprint: fingerprintOf(m.rule, file, m.secret),
      excerpt: excerptOf(text, starts, li, m.at, matches),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The allow-list

/**
 * A glob as a regular expression: `*` (within a folder), `**` (any folders), `?` (one
 * character). A pattern without "/" matches a file name in any folder; one ending in "/"
 * matches everything under that folder.
 */
export function globToRegExp(glob: string): RegExp {
  let g = glob.replace(/^\.\//, "");
  if (g.endsWith("/")) g += "**";
  if (!g.includes("/")) g = `**/${g}`;
  let re = "";
  for (let i = 0; i < g.length; i++) {
    const ch = g[i] as string;
    if (ch === "*" && g[i + 1] === "*") {
      const slash = g[i + 2] === "/";
      re += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

const FINGERPRINT = /^[0-9a-f]{16}$/;

/** An allow-list from its text: one entry a line (fingerprint, `path:line`, or path glob), `#` comments. */
export function parseAllowList(text: string, source?: string): AllowList {
  const fingerprints = new Set<string>();
  const locations = new Set<string>();
  const globs: RegExp[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const entry = raw.replace(/(^|\s)#.*$/, "").trim();
    if (entry === "") continue;
    if (FINGERPRINT.test(entry)) fingerprints.add(entry);
    else if (/^.+:\d+$/.test(entry)) locations.add(entry.replace(/^\.\//, ""));
    else globs.push(globToRegExp(entry));
  }
  const size = fingerprints.size + locations.size + globs.length;
  return {
    size,
    source,
    allows(finding, aliases = []) {
      if (fingerprints.has(finding.fingerprint)) return true;
      for (const file of [finding.file, ...aliases]) {
        if (locations.has(`${file}:${finding.line}`)) return true;
        if (globs.some((g) => g.test(file))) return true;
      }
      return false;
    },
  };
}

/** Allows nothing. */
export const EMPTY_ALLOW_LIST: AllowList = parseAllowList("");

/**
 * Reads an allow-list file; `undefined` gives the empty list. A file that was named but
 * cannot be read is an error naming it.
 */
export async function loadAllowList(file: string | undefined): Promise<AllowList> {
  if (file === undefined) return EMPTY_ALLOW_LIST;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(err as Error).message})`;
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `security.scan.allowlist: ${file} ${why}`, { cause: err });
  }
  return parseAllowList(text, file);
}

// ---------------------------------------------------------------------------------------------
// Scanning a folder

const SKIP_DIRS = new Set(["node_modules", ".git", "dist"]);
const MAX_FILE_BYTES = 1024 * 1024;
const SNIFF_BYTES = 8000;

async function walk(root: string, rel = ""): Promise<string[]> {
  const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const path = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) out.push(...(await walk(root, path)));
    } else if (e.isFile()) out.push(path);
  }
  return out;
}

/** The file's text, or undefined when it is too big, binary, or gone. */
async function readTextFile(path: string): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile() || info.size > MAX_FILE_BYTES) return undefined;
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes || bytes.subarray(0, SNIFF_BYTES).includes(0)) return undefined;
  return bytes.toString("utf8");
}

/**
 * Scans a folder's files for secrets: every file under `dir` (skipping node_modules, .git,
 * dist, binary files and files over 1 MiB) or just `files` (relative to `dir`). Findings the
 * allow-list names are counted, not returned; `allowAs` is the folder's path as allow-list
 * entries may write it (e.g. "services/api" when entries are relative to the manifest).
 *
 * @example
 * const { findings } = await scanForSecrets({ dir: serviceDir, allow: await loadAllowList(undefined) });
 */
export async function scanForSecrets(input: { dir: string; files?: string[]; allow: AllowList; allowAs?: string }): Promise<SecretScanResult> {
  const root = resolve(input.dir);
  const files =
    input.files === undefined
      ? await walk(root)
      : input.files.map((f) => f.split(sep).join("/").replace(/^\.\//, "")).filter((f) => {
          const abs = resolve(root, f);
          return abs === root ? false : !relative(root, abs).startsWith("..");
        });
  const findings: SecretFinding[] = [];
  let scanned = 0;
  let allowed = 0;
  for (const file of files) {
    const text = await readTextFile(join(root, file));
    if (text === undefined) continue;
    scanned++;
    for (const f of scanText(text, file)) {
      if (input.allow.allows(f, aliasesOf(f.file, input.allowAs))) allowed++;
      else findings.push(f);
    }
  }
  return { findings, files: scanned, allowed };
}

function aliasesOf(file: string, prefix: string | undefined): string[] {
  if (prefix === undefined || prefix === "" || prefix === ".") return [];
  return [posix.join(prefix, file)];
}

// ---------------------------------------------------------------------------------------------
// Scanning commits

const LOCATION_ENV = ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_PREFIX", "GIT_IMPLICIT_WORK_TREE"];
const MAX_BUFFER = 256 * 1024 * 1024;
const COMMIT_MARK = "\0\0commit ";

function gitEnv(): NodeJS.ProcessEnv {
  // Git started from a hook exports these; they would point git at another repository.
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C" };
  for (const name of LOCATION_ENV) delete env[name];
  return env;
}

async function git(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await run("git", args, { cwd, env: gitEnv(), maxBuffer: MAX_BUFFER });
  return stdout;
}

/** Un-quotes a path git printed in C-style quotes (names with unusual characters). */
function unquoteGitPath(p: string): string {
  if (!p.startsWith('"') || !p.endsWith('"')) return p;
  const bytes: number[] = [];
  const body = p.slice(1, -1);
  const simple: Record<string, number> = { n: 10, t: 9, r: 13, '"': 34, "\\": 92, a: 7, b: 8, f: 12, v: 11 };
  for (let i = 0; i < body.length; i++) {
    const ch = body[i] as string;
    if (ch !== "\\") {
      bytes.push(...Buffer.from(ch, "utf8"));
      continue;
    }
    const next = body[i + 1] ?? "";
    if (/[0-7]/.test(next)) {
      bytes.push(parseInt(body.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(simple[next] ?? next.charCodeAt(0));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

interface AddedChunk {
  commit: string;
  file: string;
  firstLine: number;
  lines: string[];
}

/** The runs of consecutive added lines in `git log -p --unified=0` output. */
function addedChunks(log: string): AddedChunk[] {
  const chunks: AddedChunk[] = [];
  for (const part of log.split(COMMIT_MARK)) {
    const nl = part.indexOf("\n");
    const commit = (nl === -1 ? part : part.slice(0, nl)).trim();
    if (!/^[0-9a-f]{7,64}$/.test(commit)) continue;
    let file: string | undefined;
    let inHunk = false;
    let lineNo = 0;
    let chunk: AddedChunk | undefined;
    const flush = () => {
      if (chunk && chunk.lines.length > 0) chunks.push(chunk);
      chunk = undefined;
    };
    for (const line of part.slice(nl + 1).split("\n")) {
      if (line.startsWith("diff --git ")) {
        flush();
        inHunk = false;
        file = undefined;
      } else if (!inHunk && line.startsWith("+++ ")) {
        // Git ends the name with a tab when it holds a space.
        const target = line.slice(4).replace(/\t$/, "");
        file = target === "/dev/null" ? undefined : unquoteGitPath(target).replace(/^b\//, "");
      } else if (line.startsWith("@@")) {
        flush();
        const m = /^@@+ (?:-\d+(?:,\d+)? )+\+(\d+)(?:,\d+)? @@/.exec(line);
        inHunk = m !== null;
        lineNo = m ? Number(m[1]) : 0;
      } else if (inHunk && file !== undefined) {
        if (line.startsWith("+")) {
          chunk ??= { commit, file, firstLine: lineNo, lines: [] };
          chunk.lines.push(line.slice(1));
          lineNo++;
        } else if (line.startsWith(" ")) {
          flush();
          lineNo++;
        } else if (line.startsWith("-")) flush();
      }
    }
    flush();
  }
  return chunks;
}

/**
 * Scans the lines that commits added, limited to `paths` (relative to `repoDir`): the commits
 * after `fromCommit` up to `toCommit`, or, without `fromCommit`, `toCommit`'s history (at most
 * `maxCommits`, default 1000). When `fromCommit` is not an ancestor of `toCommit` (rewritten
 * history) only `toCommit` is scanned. Findings name the commit, the file relative to
 * `relativeTo` (a folder relative to `repoDir`; default `repoDir`) and the line in that commit.
 * Outside a git repository it returns no findings and a note.
 *
 * @example
 * await scanCommitsForSecrets({ repoDir: "/src/shop", fromCommit: last, toCommit: head, paths: ["services/orders"], relativeTo: "services/orders", allow })
 */
export async function scanCommitsForSecrets(input: {
  repoDir: string;
  fromCommit?: string;
  toCommit: string;
  paths: string[];
  allow?: AllowList;
  relativeTo?: string;
  /** How `relativeTo` is written in allow-list entries (e.g. relative to the manifest). */
  allowAs?: string;
  maxCommits?: number;
}): Promise<CommitScanResult> {
  const allow = input.allow ?? EMPTY_ALLOW_LIST;
  let top: string;
  try {
    top = (await git(input.repoDir, ["rev-parse", "--show-toplevel"])).trim();
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "git is not installed or the folder does not exist" : "it is not a git repository";
    return { findings: [], commits: 0, allowed: 0, note: `commits were not scanned: ${input.repoDir}: ${why}` };
  }
  const max = input.maxCommits ?? 1000;
  let note: string | undefined;
  let range: string[];
  if (input.fromCommit === undefined) range = [`--max-count=${max}`, input.toCommit];
  else {
    const ancestor = await git(input.repoDir, ["merge-base", "--is-ancestor", input.fromCommit, input.toCommit]).then(
      () => true,
      () => false,
    );
    if (ancestor) range = [`--max-count=${max}`, `${input.fromCommit}..${input.toCommit}`];
    else {
      range = ["--max-count=1", input.toCommit];
      note = `${input.fromCommit.slice(0, 12)} is not an ancestor of ${input.toCommit.slice(0, 12)} (history rewritten?); only ${input.toCommit.slice(0, 12)} was scanned`;
    }
  }
  const pathspecs = input.paths.length === 0 ? ["."] : input.paths.map((p) => resolve(input.repoDir, p));
  const args = [
    "-c",
    "core.quotepath=false",
    "log",
    "-p",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-show-signature",
    "--no-renames",
    "--unified=0",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--format=%x00%x00commit %H",
    ...range,
    "--",
    ...pathspecs,
  ];
  let out: string;
  try {
    out = await git(input.repoDir, args);
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim().split("\n")[0] ?? "";
    throw new KeelsonError("KEELSON_ERR_INTERNAL", `scanning commits in ${input.repoDir} failed: git log: ${stderr || (err as Error).message}`, { cause: err });
  }
  const commits = out.split(COMMIT_MARK).length - 1;
  if (input.fromCommit === undefined && commits >= max) note = `only the newest ${max} commits were scanned`;
  const base = resolve(input.repoDir, input.relativeTo ?? ".");
  const prefix = relative(top, base).split(sep).join("/");
  const findings: SecretFinding[] = [];
  let allowed = 0;
  for (const chunk of addedChunks(out)) {
    const file = prefix === "" ? chunk.file : chunk.file.startsWith(`${prefix}/`) ? chunk.file.slice(prefix.length + 1) : chunk.file;
    for (const f of scanText(chunk.lines.join("\n"), file, chunk.firstLine - 1)) {
      const finding = { ...f, commit: chunk.commit };
      if (allow.allows(finding, aliasesOf(file, input.allowAs))) allowed++;
      else findings.push(finding);
    }
  }
  return { findings, commits, allowed, ...(note ? { note } : {}) };
}
