// `keelson flags …`: list, show, change, kill, evaluate, import/export (flagd files), history and
// rollback of the project's feature flags, through the control plane.
import { readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import type { EvaluationResult, FlagDefinition } from "@keelson/protocol";
import type { FlagChange } from "../flags/index.js";
import { color, table } from "./output.js";
import { connect, print } from "./progress.js";

interface SetView {
  revision: number;
  etag: string;
  updatedAt: string | null;
  flags: Record<string, FlagDefinition>;
}

const dirOption = () => new Option("-C, --dir <dir>", "project folder").default(".");
const path = (key: string, rest = "") => `/v1/flags/${encodeURIComponent(key)}${rest}`;

async function readInput(file: string | undefined): Promise<string> {
  if (file !== undefined && file !== "-") return readFile(resolve(file), "utf8");
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not valid JSON (${(err as Error).message})`);
  }
}

function short(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

export function addFlagsCommands(program: Command): void {
  const flags = program.command("flags").description("feature flags: list, change, kill switch, evaluate, history, flagd import/export");

  flags
    .command("list")
    .description("the project's flags")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const set = await api.get<SetView>("/v1/flags");
      if (opts.json) return print(JSON.stringify(set, null, 2));
      const keys = Object.keys(set.flags).sort();
      if (keys.length === 0) return print(`no flags yet (revision ${set.revision}); \`keelson flags set <key> --file flag.json\` adds one`);
      print(
        table(
          ["FLAG", "STATE", "TYPE", "OWNER", "DEFAULT", "VARIANTS", "TARGETING"],
          keys.map((k) => {
            const f = set.flags[k] as FlagDefinition;
            const killed = f.metadata?.killedAt !== undefined;
            return [
              k,
              f.state === "ENABLED" ? (killed ? color.red("killed") : color.green("enabled")) : color.dim("disabled"),
              f.type ?? "-",
              f.owner ?? "-",
              `${f.defaultVariant}=${short(f.variants[f.defaultVariant])}`,
              Object.keys(f.variants).join(", "),
              f.targeting !== undefined && JSON.stringify(f.targeting) !== "{}" ? "yes" : "-",
            ];
          }),
        ),
      );
      print(color.dim(`revision ${set.revision}${set.updatedAt ? `, changed ${set.updatedAt}` : ""}`));
    });

  flags
    .command("get")
    .description("one flag's definition (JSON)")
    .argument("<flag>", "flag key")
    .addOption(dirOption())
    .action(async (key: string, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      const { flag } = await api.get<{ flag: FlagDefinition }>(path(key));
      print(JSON.stringify(flag, null, 2));
    });

  flags
    .command("set")
    .description("create or replace a flag from a JSON definition (flagd's format; - or no --file reads stdin)")
    .argument("<flag>", "flag key")
    .addOption(dirOption())
    .option("-f, --file <file>", "JSON file with the definition")
    .action(async (key: string, opts: { dir: string; file?: string }) => {
      const definition = parseJson(await readInput(opts.file), opts.file ?? "stdin");
      const api = await connect(resolve(opts.dir));
      const { revision } = await api.request<{ revision: number }>("PUT", path(key), definition);
      print(`${color.green("✓")} flag ${key} saved (revision ${revision})`);
    });

  flags
    .command("delete")
    .description("remove a flag")
    .argument("<flag>", "flag key")
    .addOption(dirOption())
    .action(async (key: string, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      const { revision } = await api.request<{ revision: number }>("DELETE", path(key));
      print(`${color.green("✓")} flag ${key} removed (revision ${revision})`);
    });

  flags
    .command("kill")
    .description("kill switch: turn a flag to its safe variant for everyone, now")
    .argument("<flag>", "flag key")
    .addOption(dirOption())
    .action(async (key: string, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      const { flag, revision } = await api.post<{ flag: FlagDefinition; revision: number }>(path(key, "/kill"));
      print(`${color.yellow("⏻")} flag ${key} killed: everyone gets ${flag.defaultVariant} (${short(flag.variants[flag.defaultVariant])}) from revision ${revision}; \`keelson flags history ${key}\` shows how to undo it`);
    });

  flags
    .command("eval")
    .description("evaluate a flag for a context, with the reason")
    .argument("<flag>", "flag key")
    .addOption(dirOption())
    .option("-k, --targeting-key <key>", "the context's targetingKey (a user id)")
    .option("-c, --context <json>", "the rest of the context as JSON, e.g. '{\"plan\":\"pro\"}'")
    .action(async (key: string, opts: { dir: string; targetingKey?: string; context?: string }) => {
      const context = { ...((opts.context ? parseJson(opts.context, "--context") : {}) as Record<string, unknown>), ...(opts.targetingKey ? { targetingKey: opts.targetingKey } : {}) };
      const api = await connect(resolve(opts.dir));
      const r = await api.post<EvaluationResult>(path(key, "/evaluate"), { context });
      if (r.errorCode) {
        print(`${color.red("✗")} ${key}: ${r.errorCode}${r.errorMessage ? ` (${r.errorMessage})` : ""}; the caller gets its default`);
        process.exitCode = 1;
        return;
      }
      print(`${key} = ${JSON.stringify(r.value)}  ${color.dim(`variant ${r.variant ?? "-"}, reason ${r.reason}`)}`);
    });

  flags
    .command("history")
    .description("who changed a flag, when, and what (newest first)")
    .argument("<flag>", "flag key")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (key: string, opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { changes } = await api.get<{ changes: FlagChange[] }>(path(key, "/history"));
      if (opts.json) return print(JSON.stringify(changes, null, 2));
      if (changes.length === 0) return print(`flag ${key} has no recorded changes`);
      print(
        table(
          ["CHANGE", "AT", "BY", "WHAT", "DIFF"],
          changes.map((c) => [String(c.seq), c.at, c.actor, c.kind.replace("flag.", ""), c.diff.map((d) => `${d.path}: ${short(d.before)} → ${short(d.after)}`).join("; ") || "-"]),
        ),
      );
      print(color.dim(`\`keelson flags rollback ${key} --to <change>\` puts back the definition as it was right after that change`));
    });

  flags
    .command("rollback")
    .description("put back a flag's definition as it was right after an earlier change")
    .argument("<flag>", "flag key")
    .addOption(dirOption())
    .requiredOption("--to <change>", "the change number from `keelson flags history`", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a change number, got "${v}"`);
      return n;
    })
    .action(async (key: string, opts: { dir: string; to: number }) => {
      const api = await connect(resolve(opts.dir));
      const { revision } = await api.post<{ revision: number }>(path(key, "/rollback"), { to: opts.to });
      print(`${color.green("✓")} flag ${key} is back to its definition after change ${opts.to} (revision ${revision})`);
    });

  flags
    .command("import")
    .description("replace the project's flags with a flagd flag file")
    .argument("<file>", "flagd JSON file")
    .addOption(dirOption())
    .action(async (file: string, opts: { dir: string }) => {
      const set = parseJson(await readFile(resolve(file), "utf8"), file);
      const api = await connect(resolve(opts.dir));
      const view = await api.request<SetView>("PUT", "/v1/flags", set);
      print(`${color.green("✓")} imported ${Object.keys(view.flags).length} flags from ${file} (revision ${view.revision})`);
    });

  flags
    .command("export")
    .description("write the project's flags as a flagd flag file")
    .addOption(dirOption())
    .option("-o, --out <file>", "write here instead of stdout")
    .action(async (opts: { dir: string; out?: string }) => {
      const api = await connect(resolve(opts.dir));
      const text = await api.text("/v1/flags/export");
      if (opts.out) {
        await writeFile(resolve(opts.out), text);
        print(`${color.green("✓")} wrote ${opts.out}`);
      } else print(text);
    });
}
