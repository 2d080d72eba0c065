import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { git, makeTempDir, useGitTestEnv } from "#test-support";
import { EMPTY_ALLOW_LIST, SECRET_RULES, globToRegExp, loadAllowList, parseAllowList, scanCommitsForSecrets, scanForSecrets, scanText, shannonEntropy } from "./secret-scan.js";

// Planted secrets are assembled at run time so this file itself never holds a token-shaped
// string that a repository's own secret scanning (or a push protection) would flag.
const AWS_EXAMPLE = "AKIA" + "IOSFODNN7EXAMPLE";
const AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY";
const GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";
const GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789abc_" + "x".repeat(10) + "Zy9".repeat(14) + "QQ";
const SLACK = "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUv";
const STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc";
const GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY";
const JWT = "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
const KEELSON = "ks_" + "Q2xhdWRlIHdhcyBoZXJlIGJ1dCB0aGlzIGlzIGZha2Ux".slice(0, 43);
const PRIVATE_KEY = ["-----BEGIN RSA " + "PRIVATE KEY-----", "MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumJJ9G9bGz0fhPZVHc2Rj3uFn", "Yt5bcoLhB8g1Kj8cUC1Y3JuNjk2M2Q2NDk3MTUyYWMwNTUxZDE0ZDU5OWY2ZWIK", "-----END RSA " + "PRIVATE KEY-----"].join("\n");

describe("scanText", () => {
  it("finds AWS's documented example access key id, with line, column and a redacted excerpt", () => {
    const [f, ...rest] = scanText(`// config\n\nconst key = "${AWS_EXAMPLE}";\n`, "src/config.ts");
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ rule: "aws-access-key-id", file: "src/config.ts", line: 3, column: 14, excerpt: 'const key = "AKIA…";' });
    expect(f?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(f)).not.toContain(AWS_EXAMPLE);
  });

  it.each([
    ["aws-secret-access-key", `aws_secret_access_key = "${AWS_SECRET}"`],
    ["github-token", `token: ${GITHUB}`],
    ["github-fine-grained-token", `GH=${GITHUB_PAT}`],
    ["slack-token", `const slack = '${SLACK}'`],
    ["stripe-live-key", `Stripe(${JSON.stringify(STRIPE)})`],
    ["google-api-key", `key=${GOOGLE}&q=1`],
    ["jwt", `Authorization: Bearer ${JWT}`],
    ["npm-token", `//registry.npmjs.org/:_authToken=${NPM}`],
    ["keelson-api-token", `KEELSON_TOKEN=${KEELSON}`],
    ["generic-secret", `const dbPassword = "h7Tq9!xVz2#LmP4w";`],
    ["generic-secret", `{ "client_secret": "9f8e7d6c5b4a3f2e1d0c9b8a" }`],
  ])("rule %s matches %s", (rule, line) => {
    const findings = scanText(`\n${line}\n`, "f.txt");
    expect(findings.map((f) => f.rule)).toEqual([rule]);
    expect(findings[0]?.line).toBe(2);
    expect(findings[0]?.excerpt).toContain("…");
  });

  it("finds a private key block at its BEGIN line without showing the key", () => {
    const [f, ...rest] = scanText(`# deploy key\n${PRIVATE_KEY}\n`, "keys/id_rsa");
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ rule: "private-key", line: 2, column: 1, excerpt: "-----BEGIN RSA PRIVATE KEY-----" });
  });

  it("finds a private key written on one line with \\n escapes (service-account JSON)", () => {
    const oneLine = JSON.stringify({ private_key: `${PRIVATE_KEY}\n` });
    const [f] = scanText(oneLine, "sa.json");
    expect(f?.rule).toBe("private-key");
    expect(f?.excerpt).not.toContain("MIIEowIBAAKCAQEA1c7");
  });

  it("does not flag a private key header on its own (code that checks for one)", () => {
    expect(scanText('if (pem.startsWith("-----BEGIN PRIVATE' + ' KEY-----")) return;', "pem.ts")).toEqual([]);
  });

  it("reports the more specific rule once where rules overlap", () => {
    const findings = scanText(`export const apiToken = "${JWT}";`, "a.ts");
    expect(findings.map((f) => f.rule)).toEqual(["jwt"]);
  });

  it("redacts every secret on a line in each excerpt and reports each secret", () => {
    const findings = scanText(`keys = ["${AWS_EXAMPLE}", "${GITHUB}"]`, "k.py");
    expect(findings.map((f) => f.rule)).toEqual(["aws-access-key-id", "github-token"]);
    for (const f of findings) {
      expect(f.excerpt).toBe('keys = ["AKIA…", "ghp_…"]');
    }
    expect(findings[1]?.column).toBe(`keys = ["${AWS_EXAMPLE}", "`.length + 1);
  });

  it("keeps a long line's excerpt short and around the finding", () => {
    const line = `${"a".repeat(500)} "${AWS_EXAMPLE}" ${"b".repeat(500)}`;
    const [f] = scanText(line, "min.js");
    expect(f?.excerpt.length).toBeLessThanOrEqual(165);
    expect(f?.excerpt).toContain("AKIA…");
  });

  it("leaves placeholders, references, words and low-entropy values alone", () => {
    const text = [
      'password = "changeme-changeme-changeme"',
      'const token = "xxxxxxxxxxxxxxxxxxxxxxxx";',
      "api_key: '${API_KEY_FROM_ENVIRONMENT}'",
      'const secret = "process.env.SECRET_VALUE_X1"',
      'const TOKEN_HEADER = "x-keelson-identity-token";',
      'const tokenUrl = "https://auth.acme.io/oauth2/v1/token";',
      'password: "aaaaaaaaaaaaaaaaaaaaaaaa"',
      'secret = "your-secret-goes-here-123"',
      'const passwordHint = "Use at least 12 characters"',
      "if (token === 'h7Tq9!xVz2#LmP4wQ') return;",
      'const AKIA_PREFIX = "AKIA";',
    ].join("\n");
    expect(scanText(text, "src/app.ts")).toEqual([]);
  });

  it("reads unquoted NAME=value only where it is the norm (env and YAML files)", () => {
    const text = "DB_PASSWORD=h7Tq9xVz2LmP4wQ8rT\n";
    expect(scanText(text, ".env.production").map((f) => f.rule)).toEqual(["generic-secret"]);
    expect(scanText("db:\n  password: h7Tq9xVz2LmP4wQ8rT\n", "config/app.yaml").map((f) => f.line)).toEqual([2]);
    expect(scanText("const password = h7Tq9xVz2LmP4wQ8rT;\n", "src/a.ts")).toEqual([]);
  });

  it("fingerprints by rule, file and secret", () => {
    const a = scanText(`k = "${AWS_EXAMPLE}"`, "a.ts")[0]?.fingerprint;
    expect(scanText(`\n\n   k = "${AWS_EXAMPLE}"`, "a.ts")[0]?.fingerprint).toBe(a);
    expect(scanText(`k = "${AWS_EXAMPLE}"`, "b.ts")[0]?.fingerprint).not.toBe(a);
    expect(scanText(`k = "AKIAIOSFODNN7EXAMPLF"`, "a.ts")[0]?.fingerprint).not.toBe(a);
  });

  it("adds the line offset and names every rule it knows", () => {
    expect(scanText(`x ${NPM}`, "f", 41)[0]?.line).toBe(42);
    expect(SECRET_RULES).toContain("generic-secret");
    expect(new Set(SECRET_RULES).size).toBe(SECRET_RULES.length);
  });

  it("stays linear on a 1 MiB line of repeated key headers or secret-sounding names (was 11 s and 6 s)", () => {
    for (const unit of ["-----BEGIN PRIVATE" + " KEY-----", "token", "a", "eyJ", 'password = "']) {
      const text = unit.repeat(Math.ceil((1024 * 1024) / unit.length));
      const t = performance.now();
      expect(scanText(text, ".env")).toEqual([]);
      expect(performance.now() - t).toBeLessThan(3000);
    }
  });

  it("computes Shannon entropy in bits per character", () => {
    expect(shannonEntropy("")).toBe(0);
    expect(shannonEntropy("aaaa")).toBe(0);
    expect(shannonEntropy("abcd")).toBeCloseTo(2);
    expect(shannonEntropy("0123456789abcdef")).toBeCloseTo(4);
  });
});

describe("allow-lists", () => {
  it("matches globs: * within a folder, ** across folders, ? for one character, bare names anywhere", () => {
    expect(globToRegExp("src/*.ts").test("src/a.ts")).toBe(true);
    expect(globToRegExp("src/*.ts").test("src/x/a.ts")).toBe(false);
    expect(globToRegExp("src/**/*.ts").test("src/a.ts")).toBe(true);
    expect(globToRegExp("src/**/*.ts").test("src/x/y/a.ts")).toBe(true);
    expect(globToRegExp("test/fixtures/").test("test/fixtures/keys/id_rsa")).toBe(true);
    expect(globToRegExp("*.pem").test("deep/in/here/cert.pem")).toBe(true);
    expect(globToRegExp("file?.txt").test("file1.txt")).toBe(true);
    expect(globToRegExp("file?.txt").test("file12.txt")).toBe(false);
    expect(globToRegExp("a.b+c(d).txt").test("a.b+c(d).txt")).toBe(true);
    expect(globToRegExp("a.b+c(d).txt").test("aXb+c(d).txt")).toBe(false);
  });

  it("parses fingerprints, path:line entries, globs and comments", () => {
    const allow = parseAllowList(["# known test keys", "0123456789abcdef  # the docs' example", "src/config.ts:3", "./fixtures/**", "", "   "].join("\n"), "allow.txt");
    expect(allow.size).toBe(3);
    expect(allow.source).toBe("allow.txt");
    expect(allow.allows({ fingerprint: "0123456789abcdef", file: "x", line: 1 })).toBe(true);
    expect(allow.allows({ fingerprint: "ffffffffffffffff", file: "src/config.ts", line: 3 })).toBe(true);
    expect(allow.allows({ fingerprint: "ffffffffffffffff", file: "src/config.ts", line: 4 })).toBe(false);
    expect(allow.allows({ fingerprint: "ffffffffffffffff", file: "fixtures/a/b.json", line: 9 })).toBe(true);
    // Entries may name the file from another folder (the manifest's) through an alias.
    expect(allow.allows({ fingerprint: "ffffffffffffffff", file: "config.ts", line: 3 }, ["src/config.ts"])).toBe(true);
    expect(EMPTY_ALLOW_LIST.allows({ fingerprint: "0123456789abcdef", file: "a", line: 1 })).toBe(false);
  });

  describe("files", () => {
    let dir: string;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ dir, cleanup } = await makeTempDir("keelson-allow-")));
    afterEach(async () => cleanup());

    it("loads a file, gives the empty list for none, and names a missing file", async () => {
      await writeFile(join(dir, "allow"), "docs/**\n");
      expect((await loadAllowList(join(dir, "allow"))).size).toBe(1);
      expect((await loadAllowList(undefined)).size).toBe(0);
      await expect(loadAllowList(join(dir, "nope.txt"))).rejects.toMatchObject({ code: "KEELSON_ERR_INVALID_INPUT", message: expect.stringContaining(join(dir, "nope.txt")) });
    });
  });
});

describe("scanForSecrets", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir("keelson-secrets-"));
    await mkdir(join(dir, "src", "deep"), { recursive: true });
    await writeFile(join(dir, "src", "config.ts"), `// settings\n\nconst key = "${AWS_EXAMPLE}";\n`);
    await writeFile(join(dir, "src", "deep", "slack.js"), `module.exports = { hook: '${SLACK}' };\n`);
    await writeFile(join(dir, "README.md"), "nothing to see\n");
    for (const skipped of ["node_modules/pkg", ".git/objects", "dist"]) {
      await mkdir(join(dir, skipped), { recursive: true });
      await writeFile(join(dir, skipped, "leak.js"), `"${GITHUB}"`);
    }
    await writeFile(join(dir, "src", "blob.bin"), Buffer.concat([Buffer.from(`${GITHUB}`), Buffer.from([0, 1, 2])]));
    await writeFile(join(dir, "src", "huge.txt"), `${GITHUB}\n${"x".repeat(1024 * 1024)}`);
  });
  afterEach(async () => cleanup());

  it("walks the folder, skipping vendored, built, binary and oversized files", async () => {
    const result = await scanForSecrets({ dir, allow: EMPTY_ALLOW_LIST });
    expect(result.findings.map((f) => `${f.file}:${f.line} ${f.rule}`)).toEqual(["src/config.ts:3 aws-access-key-id", "src/deep/slack.js:1 slack-token"]);
    expect(result.files).toBe(3);
    expect(result.allowed).toBe(0);
  });

  it("scans only the files it is given, ignoring ones outside the folder", async () => {
    const result = await scanForSecrets({ dir, files: ["src/deep/slack.js", "missing.ts", "../outside.ts"], allow: EMPTY_ALLOW_LIST });
    expect(result.findings.map((f) => f.rule)).toEqual(["slack-token"]);
    expect(result.files).toBe(1);
  });

  it("counts what the allow-list silences, by fingerprint, location, glob or the manifest's path", async () => {
    const all = await scanForSecrets({ dir, allow: EMPTY_ALLOW_LIST });
    const fp = all.findings.find((f) => f.rule === "slack-token")?.fingerprint as string;
    for (const list of [`${fp}\nsrc/config.ts:3`, "src/**", "services/api/src/config.ts:3\nservices/api/src/deep/*.js"]) {
      const result = await scanForSecrets({ dir, allow: parseAllowList(list), allowAs: "services/api" });
      expect(result.findings).toEqual([]);
      expect(result.allowed).toBe(2);
    }
  });
});

describe("scanCommitsForSecrets", () => {
  useGitTestEnv();
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeTempDir("keelson-commits-")));
  afterEach(async () => cleanup());

  async function commit(file: string, text: string, message: string): Promise<string> {
    await mkdir(join(dir, file, ".."), { recursive: true });
    await writeFile(join(dir, file), text);
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-qm", message]);
    return git(dir, ["rev-parse", "HEAD"]);
  }

  it("scans the lines commits added, in the service's paths, naming commit, file and line", async () => {
    await git(dir, ["init", "-q"]);
    const base = await commit("services/api/src/app.ts", "export {};\n", "base");
    const leak = await commit("services/api/src/app.ts", `export {};\n// todo\nconst k = "${AWS_EXAMPLE}";\n`, "leak");
    await commit("services/web/src/other.ts", `const t = "${GITHUB}";\n`, "elsewhere");
    const removed = await commit("services/api/src/app.ts", "export {};\n", "remove it");
    await commit("services/api/keys/id_rsa", `${PRIVATE_KEY}\n`, "a key");
    const head = await git(dir, ["rev-parse", "HEAD"]);

    const result = await scanCommitsForSecrets({ repoDir: dir, fromCommit: base, toCommit: head, paths: ["services/api"], relativeTo: "services/api" });
    expect(result.commits).toBe(3);
    expect(result.note).toBeUndefined();
    expect(result.findings.map((f) => `${f.commit?.slice(0, 7)} ${f.file}:${f.line} ${f.rule}`).sort()).toEqual(
      [`${head.slice(0, 7)} keys/id_rsa:1 private-key`, `${leak.slice(0, 7)} src/app.ts:3 aws-access-key-id`].sort(),
    );
    // The fingerprint matches a working-tree scan of the same file, so one allow-list entry covers both.
    const inTree = scanText(`const k = "${AWS_EXAMPLE}";`, "src/app.ts")[0]?.fingerprint;
    expect(result.findings.find((f) => f.rule === "aws-access-key-id")?.fingerprint).toBe(inTree);
    // A removal commit adds nothing; commits outside the paths are not read.
    const onlyRemoval = await scanCommitsForSecrets({ repoDir: dir, fromCommit: leak, toCommit: removed, paths: ["services/api"] });
    expect(onlyRemoval).toMatchObject({ commits: 1, findings: [] });

    const allowed = await scanCommitsForSecrets({ repoDir: dir, fromCommit: base, toCommit: head, paths: ["services/api"], relativeTo: "services/api", allow: parseAllowList("services/api/keys/**"), allowAs: "services/api" });
    expect(allowed.findings.map((f) => f.rule)).toEqual(["aws-access-key-id"]);
    expect(allowed.allowed).toBe(1);
  });

  it("scans the whole history without a starting commit, and just the newest when history was rewritten", async () => {
    await git(dir, ["init", "-q"]);
    await commit("a.txt", `${NPM}\n`, "one");
    const two = await commit("b.txt", "fine\n", "two");
    const all = await scanCommitsForSecrets({ repoDir: dir, toCommit: two, paths: [] });
    expect(all.findings.map((f) => `${f.file}:${f.line} ${f.rule}`)).toEqual(["a.txt:1 npm-token"]);
    const limited = await scanCommitsForSecrets({ repoDir: dir, toCommit: two, paths: [], maxCommits: 1 });
    expect(limited.findings).toEqual([]);
    expect(limited.note).toMatch(/only the newest 1 commits/);
    await git(dir, ["checkout", "-q", "--orphan", "other"]);
    await git(dir, ["rm", "-rqf", "."]);
    const other = await commit("c.txt", `${NPM}\n`, "unrelated");
    const rewritten = await scanCommitsForSecrets({ repoDir: dir, fromCommit: two, toCommit: other, paths: [] });
    expect(rewritten.note).toMatch(/not an ancestor/);
    expect(rewritten.findings.map((f) => f.file)).toEqual(["c.txt"]);
  });

  it("returns no findings and a note outside a git repository", async () => {
    const result = await scanCommitsForSecrets({ repoDir: dir, toCommit: "HEAD", paths: ["."] });
    expect(result.findings).toEqual([]);
    expect(result.note).toMatch(/not a git repository/);
  });

  it("handles file names git quotes", async () => {
    await git(dir, ["init", "-q"]);
    const sha = await commit('we"ird name ü.env', `API_TOKEN=${NPM}\n`, "odd name");
    const result = await scanCommitsForSecrets({ repoDir: dir, toCommit: sha, paths: [] });
    expect(result.findings.map((f) => `${f.file}:${f.line}`)).toEqual(['we"ird name ü.env:1']);
  });
});
