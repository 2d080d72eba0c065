// `keelson flags …`: list, show, change, kill, evaluate, import/export (flagd files), history and
// rollback, stale flags and scheduled changes of the project's feature flags, through the
// control plane.
import { readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { KeelsonError, type EvaluationResult, type FlagDefinition } from "@keelson/protocol";
import type { FlagChange, FlagUsageView, ScheduledChange, ScheduleRequest, StaleReport } from "../flags/index.js";
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

/** A value in a line of output; `(none)` for a field that is absent on one side of a diff. */
export function short(value: unknown): string {
  if (value === undefined) return "(none)";
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** "2026-11-27 09:00" (UTC) of an ISO time. */
const when = (iso: string | undefined | null) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : "-");

const daysOption = (flag: string, what: string) =>
  new Option(flag, what).argParser((v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 3650) throw new InvalidArgumentError(`expected a whole number of days from 1 to 3650, got "${v}"`);
    return n;
  });

function usage(message: string): KeelsonError {
  return new KeelsonError("KEELSON_ERR_INVALID_INPUT", message);
}

/** The lines `keelson flags stale` prints. */
export function formatStaleFlags(r: StaleReport): string {
  const rule = `no evaluation for ${r.days} days or no change for ${r.unchangedDays} days; evaluations counted since ${when(r.countingSince)}`;
  if (r.flags.length === 0) return `no stale flags (${rule})`;
  return [
    table(
      ["FLAG", "TYPE", "OWNER", "LAST EVALUATED", "LAST CHANGED", "WHY"],
      r.flags.map((f) => [f.flag, f.type ?? "-", f.owner ?? "-", f.lastEvaluatedAt ? when(f.lastEvaluatedAt) : "never", when(f.lastChangedAt), f.why.join("; ")]),
    ),
    color.dim(`${r.flags.length} stale ${r.flags.length === 1 ? "flag" : "flags"} (${rule}); kill switches and permissions are exempt from the "no change" rule`),
  ].join("\n");
}

/** The lines `keelson flags schedule --list` prints. */
export function formatSchedule(changes: readonly ScheduledChange[]): string {
  if (changes.length === 0) return "no scheduled flag changes; `keelson flags schedule <flag> --at <time> --enable` adds one";
  return table(
    ["ID", "AT (UTC)", "FLAG", "CHANGE", "BY"],
    changes.map((c) => [c.id, when(c.at), c.flag, c.action === "set" ? `set (default ${c.definition?.defaultVariant ?? "?"}, ${c.definition?.state.toLowerCase() ?? "?"})` : c.action, c.by]),
  );
}

export function addFlagsCommands(program: Command): void {
  const flags = program.command("flags").description("feature flags: list, change, kill switch, evaluate, history, stale flags, scheduled changes, flagd import/export");

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
      // A control plane without evaluation counts still gets its list.
      const used = await api.get<FlagUsageView>("/v1/flags/usage").catch(() => undefined);
      print(
        table(
          ["FLAG", "STATE", "TYPE", "OWNER", "DEFAULT", "VARIANTS", "TARGETING", "LAST EVALUATED"],
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
              used === undefined ? "-" : used.flags[k] ? when(used.flags[k].lastEvaluatedAt) : color.dim("never"),
            ];
          }),
        ),
      );
      print(color.dim(`revision ${set.revision}${set.updatedAt ? `, changed ${set.updatedAt}` : ""}${used ? `; evaluations counted since ${when(used.since)}` : ""}`));
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
    .command("stale")
    .description("flags with no evaluation for --days or no change for --unchanged-days (kill switches and permissions: evaluations only)")
    .addOption(dirOption())
    .addOption(daysOption("--days <n>", "days without an evaluation (default 30)"))
    .addOption(daysOption("--unchanged-days <n>", "days without a change (default 90)"))
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; days?: number; unchangedDays?: number; json?: boolean }) => {
      const query = new URLSearchParams();
      if (opts.days !== undefined) query.set("days", String(opts.days));
      if (opts.unchangedDays !== undefined) query.set("unchangedDays", String(opts.unchangedDays));
      const qs = query.toString();
      const api = await connect(resolve(opts.dir));
      const report = await api.get<StaleReport>(`/v1/flags/stale${qs ? `?${qs}` : ""}`);
      print(opts.json ? JSON.stringify(report, null, 2) : formatStaleFlags(report));
    });

  flags
    .command("schedule")
    .description("change a flag at a later time (-f definition, --kill, --enable or --disable); --list and --cancel the pending ones")
    .argument("[flag]", "flag key")
    .addOption(dirOption())
    .option("--at <time>", "when, as an ISO time with a zone, e.g. 2026-11-27T09:00:00Z")
    .option("-f, --file <file>", "JSON file with the definition to set (- reads stdin)")
    .option("--kill", "kill switch: the safe variant for everyone")
    .option("--enable", "set the flag's state to ENABLED")
    .option("--disable", "set the flag's state to DISABLED")
    .option("--list", "list the pending changes")
    .option("--cancel <id>", "cancel a pending change (its id from --list)")
    .option("--json", "print JSON")
    .action(async (key: string | undefined, opts: { dir: string; at?: string; file?: string; kill?: boolean; enable?: boolean; disable?: boolean; list?: boolean; cancel?: string; json?: boolean }) => {
      const changes = [opts.file !== undefined, opts.kill === true, opts.enable === true, opts.disable === true].filter(Boolean).length;
      if (opts.list || opts.cancel !== undefined) {
        if (opts.list && opts.cancel !== undefined) throw usage("--list and --cancel: give one of them");
        if (key !== undefined || opts.at !== undefined || changes > 0) throw usage(`${opts.list ? "--list" : "--cancel"} takes no flag, --at or change`);
        const api = await connect(resolve(opts.dir));
        if (opts.cancel !== undefined) {
          const c = await api.request<ScheduledChange>("DELETE", `/v1/flags/schedule/${encodeURIComponent(opts.cancel)}`);
          return print(opts.json ? JSON.stringify(c, null, 2) : `${color.green("✓")} cancelled ${c.id}: ${c.action} ${c.flag} at ${c.at}`);
        }
        const { changes: pending } = await api.get<{ changes: ScheduledChange[] }>("/v1/flags/schedule");
        return print(opts.json ? JSON.stringify(pending, null, 2) : formatSchedule(pending));
      }
      if (key === undefined) throw usage("flags schedule: give the flag, e.g. `keelson flags schedule new-checkout --at 2026-11-27T09:00:00Z --enable`, or --list");
      if (opts.at === undefined) throw usage("--at: give the time of the change, e.g. --at 2026-11-27T09:00:00Z");
      if (changes !== 1) throw usage("give exactly one change: -f <definition.json>, --kill, --enable or --disable");
      const request: ScheduleRequest =
        opts.file !== undefined
          ? { flag: key, at: opts.at, action: "set", definition: parseJson(await readInput(opts.file), opts.file) }
          : { flag: key, at: opts.at, action: opts.kill ? "kill" : opts.enable ? "enable" : "disable" };
      const api = await connect(resolve(opts.dir));
      const c = await api.post<ScheduledChange>("/v1/flags/schedule", request);
      if (opts.json) return print(JSON.stringify(c, null, 2));
      print(`${color.green("✓")} scheduled ${c.id}: ${c.action} ${c.flag} at ${c.at}; \`keelson flags schedule --cancel ${c.id}\` cancels it`);
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
