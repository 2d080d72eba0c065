// `keelson new <template> <name>` and `keelson templates list|show|add|remove`: parse input,
// ask for variables in a terminal, print what was made and what to do next. The templates
// domain does the work.
import { resolve } from "node:path";
import { createInterface, type Interface } from "node:readline/promises";
import { InvalidArgumentError, Option, type Command } from "commander";
import { addTemplate, BUILTIN_VARIABLES, createService, findTemplate, listTemplates, removeTemplate, userTemplatesDir, type Asker, type CreatedService, type ServiceTemplate } from "../templates/index.js";
import { color, table } from "./output.js";
import { print } from "./progress.js";

/** `--set name=value`, repeatable, into one record. */
function collectSet(text: string, previous: Record<string, string>): Record<string, string> {
  const eq = text.indexOf("=");
  if (eq < 1) throw new InvalidArgumentError(`expected name=value, got "${text}"`);
  return { ...previous, [text.slice(0, eq)]: text.slice(eq + 1) };
}

/** Asks for a variable until the answer fits (Enter takes the suggestion). */
function terminalAsker(rl: Interface): Asker {
  return async (q) => {
    const v = q.variable;
    const choices = v.enum ? ` ${color.dim(`(${v.enum.join(", ")})`)}` : "";
    const suggestion = q.suggestion !== undefined ? ` ${color.dim(`[${q.suggestion}]`)}` : "";
    for (;;) {
      const answer = (await rl.question(`${color.bold(v.name)}: ${v.description}${choices}${suggestion} `)).trim();
      const problem = q.check(answer);
      if (problem === undefined) return answer;
      print(color.red(`  ${problem}`));
    }
  };
}

function ownerChooser(rl: Interface): (teams: string[]) => Promise<string> {
  return async (teams) => {
    print(`which team owns the service? ${teams.map((t, i) => `${i + 1}) ${t}`).join("  ")}`);
    for (;;) {
      const answer = (await rl.question(`${color.bold("owner")}: `)).trim();
      const byNumber = /^\d+$/.test(answer) ? teams[Number(answer) - 1] : undefined;
      const chosen = byNumber ?? (teams.includes(answer) ? answer : undefined);
      if (chosen !== undefined) return chosen;
      print(color.red(`  one of ${teams.join(", ")} (or its number)`));
    }
  };
}

export function formatCreated(c: CreatedService): string {
  const lines = [
    `${color.green("✓")} ${color.bold(c.service)} from template ${c.template.name} (${c.template.origin}): ${c.files.length} files in ${c.path}`,
  ];
  if (c.links.length > 0) lines.push(color.dim(`  linked from Keelson into ${c.path}/node_modules (not committed): ${c.links.map((l) => l.name).join(", ")}`));
  lines.push(`${color.green("✓")} keelson.yaml: services.${c.service} added, owner ${c.owner}; the rest of the file is as it was`);
  const catalog = [`owner ${c.catalog.owner}`, c.catalog.lifecycle ? `lifecycle ${c.catalog.lifecycle}` : "", c.catalog.description ? JSON.stringify(c.catalog.description) : ""].filter(Boolean).join(", ");
  lines.push(color.dim(`  catalog: ${catalog}; \`keelson catalog\` lists it once \`keelson up\` has applied it`));
  const next = c.next.length > 0 ? c.next : ["keelson up", ...c.urls.map((u) => `curl ${u}`)];
  lines.push("", color.bold("next:"), ...next.map((l) => `  ${l}`));
  return lines.join("\n");
}

export function formatTemplate(t: ServiceTemplate): string {
  const d = t.definition;
  const lines = [`${color.bold(t.name)} (${t.origin}) ${color.dim(t.dir)}`, `  ${d.description}`, ""];
  const rows = [
    ...Object.entries(BUILTIN_VARIABLES).map(([name, what]) => [name, "built-in", color.dim("(set by keelson new)"), what]),
    ...d.variables.map((v) => [
      v.name,
      v.type,
      v.default !== undefined ? String(v.default) : v.required ? color.yellow("required") : '""',
      `${v.description}${v.pattern ? color.dim(` /${v.pattern}/`) : ""}${v.enum ? color.dim(` one of ${v.enum.join(", ")}`) : ""}`,
    ]),
  ];
  lines.push(table(["VARIABLE", "TYPE", "DEFAULT", "WHAT"], rows));
  if (d.requires.length > 0) lines.push("", `needs: ${d.requires.join(", ")} ${color.dim("(linked from Keelson when the project has none)")}`);
  lines.push("", `files: ${t.files.map((f) => f.path).join(", ")}`);
  return lines.join("\n");
}

export function addTemplateCommands(program: Command): void {
  program
    .command("new")
    .description("create a service from a template: its folder, its entry in keelson.yaml (comments kept) and its catalog fields; all or nothing")
    .argument("<template>", "a template's name (`keelson templates list`) or a template folder")
    .argument("<name>", "the new service's name")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--owner <team>", "the team that owns it, one of keelson.yaml's teams (default: the only one)")
    .option("--path <folder>", "the service's folder, relative to keelson.yaml (default: services/<name>)")
    .option("--pipeline <template>", "use this pipeline template of keelson.yaml instead of the template's own build and test")
    .addOption(new Option("--set <name=value>", "a template variable; repeat for several").argParser(collectSet).default({}, "none"))
    .option("-y, --yes", "ask nothing: defaults for what is not set, an error for what is missing")
    .option("--json", "print what was made as JSON")
    .action(async (template: string, name: string, opts: { dir: string; owner?: string; path?: string; pipeline?: string; set: Record<string, string>; yes?: boolean; json?: boolean }) => {
      const interactive = !opts.yes && !opts.json && Boolean(process.stdin.isTTY) && Boolean(process.stdout.isTTY);
      const rl = interactive ? createInterface({ input: process.stdin, output: process.stdout }) : undefined;
      try {
        const created = await createService({
          project: resolve(opts.dir),
          template,
          service: name,
          set: opts.set,
          ...(opts.owner !== undefined ? { owner: opts.owner } : {}),
          ...(opts.path !== undefined ? { path: opts.path } : {}),
          ...(opts.pipeline !== undefined ? { pipeline: opts.pipeline } : {}),
          ...(rl ? { ask: terminalAsker(rl), chooseOwner: ownerChooser(rl) } : {}),
        });
        print(opts.json ? JSON.stringify(created, null, 2) : formatCreated(created));
      } finally {
        rl?.close();
      }
    });

  const templates = program.command("templates").description("service templates for `keelson new`: list, show, add your own, remove");

  templates
    .command("list")
    .description(`list the built-in templates and those added with \`keelson templates add\` (kept in ${userTemplatesDir().replace(process.env.HOME ?? "\0", "~")})`)
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const all = await listTemplates();
      if (opts.json) return print(JSON.stringify(all, null, 2));
      print(
        table(
          ["TEMPLATE", "ORIGIN", "DESCRIPTION"],
          all.map((t) => [color.bold(t.name), t.origin === "user" ? `added from ${t.source?.source ?? "?"}` : t.origin, t.problem ? color.red(`invalid: ${t.problem}`) : (t.description ?? "")]),
        ),
      );
    });

  templates
    .command("show")
    .description("a template's variables (with defaults and rules), needed packages and files")
    .argument("<template>", "a template's name or folder")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { json?: boolean }) => {
      const t = await findTemplate(name);
      if (opts.json) return print(JSON.stringify({ name: t.name, origin: t.origin, dir: t.dir, ...t.definition, text: undefined, files: t.files.map((f) => f.path) }, null, 2));
      print(formatTemplate(t));
    });

  templates
    .command("add")
    .description("add a template from a folder or a git repository (checked first; nothing is kept when it is not valid)")
    .argument("<source>", "a folder, or a git repository (https://, ssh://, file://, user@host:path)")
    .option("--name <name>", "its name (default: template.yaml's name, else the folder's or repository's)")
    .option("--ref <ref>", "a branch or tag to clone")
    .option("--subdir <folder>", "the template's folder inside the source")
    .option("--force", "replace an added template of the same name")
    .action(async (source: string, opts: { name?: string; ref?: string; subdir?: string; force?: boolean }) => {
      const added = await addTemplate(source, {
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        ...(opts.ref !== undefined ? { ref: opts.ref } : {}),
        ...(opts.subdir !== undefined ? { subdir: opts.subdir } : {}),
        force: opts.force ?? false,
        onProgress: (m) => print(color.dim(m)),
      });
      print(
        `${color.green("✓")} template ${color.bold(added.name)} ${added.replaced ? "replaced" : "added"} from ${added.note.source}${added.note.commit ? ` at ${added.note.commit.slice(0, 12)}` : ""}: ${added.template.files.length} files, ${added.template.definition.variables.length} variables\n  ${added.dir}\nnext: keelson new ${added.name} <service>`,
      );
    });

  templates
    .command("remove")
    .description("remove a template added with `keelson templates add`")
    .argument("<name>", "the template's name")
    .action(async (name: string) => {
      const dir = await removeTemplate(name);
      print(`${color.green("✓")} template ${name} removed (${dir})`);
    });
}
