// `keelson notifications`: the webhook deliveries (deploys, canary rollbacks, incidents, security
// blocks) with their state and tries, the dead-letter list, re-queueing a dead delivery, and a test
// notification to every configured webhook.
import { resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import type { NotificationDelivery } from "../catalog/index.js";
import { color, table } from "./output.js";
import { connect, print } from "./progress.js";

const dirOption = () => new Option("-C, --dir <dir>", "project folder").default(".");
const when = (iso: string | undefined) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : "-");

function limit(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError(`expected a whole number 1-1000, got "${text}"`);
  return n;
}

function seconds(text: string): number {
  const n = Number(text.replace(/s$/, ""));
  if (!Number.isFinite(n) || n < 0 || n > 300) throw new InvalidArgumentError(`expected seconds 0-300 like "10s", got "${text}"`);
  return n;
}

function stateText(d: NotificationDelivery): string {
  if (d.state === "delivered") return color.green("delivered");
  if (d.state === "dead") return color.red("dead");
  return color.yellow(d.nextAttemptAt ? `pending, next ${d.nextAttemptAt.slice(11, 19)}` : "pending");
}

/** One line per delivery: when, kind, service, whose webhook, state, tries and the last error. */
export function deliveriesTable(deliveries: NotificationDelivery[]): string {
  return table(
    ["ID", "WHEN (UTC)", "KIND", "SERVICE", "TARGET", "STATE", "TRIES", "LAST ERROR"],
    deliveries.map((d) => [
      d.id,
      when(d.createdAt),
      d.kind,
      d.service ?? "-",
      `${d.to} ${d.target}`,
      stateText(d),
      `${d.attempts}/${d.maxAttempts}`,
      d.state === "delivered" ? "" : (d.lastError ?? ""),
    ]),
  );
}

export function addNotificationCommands(program: Command): void {
  const notifications = program.command("notifications").description("webhook notifications: deliveries and their tries, the dead-letter list, retry, test");

  notifications
    .command("list", { isDefault: true })
    .description("deliveries, newest first (the default)")
    .addOption(dirOption())
    .option("--dead", "only the dead-letter list: deliveries that failed every try")
    .addOption(new Option("--state <state>", "only deliveries in this state").choices(["pending", "delivered", "dead"]).conflicts("dead"))
    .addOption(new Option("-n, --limit <n>", "how many").default(50).argParser(limit))
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; dead?: boolean; state?: string; limit: number; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const state = opts.dead ? "dead" : opts.state;
      const { deliveries } = await api.get<{ deliveries: NotificationDelivery[] }>(`/v1/notifications?limit=${opts.limit}${state ? `&state=${state}` : ""}`);
      if (opts.json) return print(JSON.stringify(deliveries, null, 2));
      if (deliveries.length === 0) {
        return print(
          state === "dead"
            ? "no dead deliveries: every notification got through"
            : "no notifications sent yet; webhooks are set in keelson.yaml (`notifications.webhooks`, `teams.<name>.notifications`); `keelson notifications test` tries them",
        );
      }
      print(deliveriesTable(deliveries));
      const dead = deliveries.filter((d) => d.state === "dead");
      if (dead.length > 0) print(color.dim(`${dead.length} dead; \`keelson notifications retry <id>\` sends one again`));
    });

  notifications
    .command("retry")
    .description("send a dead delivery again, with a fresh set of tries")
    .argument("<id>", "delivery id (from `keelson notifications --dead`)")
    .addOption(dirOption())
    .option("--json", "print JSON")
    .action(async (id: string, opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const d = await api.post<NotificationDelivery>(`/v1/notifications/${encodeURIComponent(id)}/retry`);
      if (opts.json) return print(JSON.stringify(d, null, 2));
      print(`${color.cyan("↻")} ${d.id} queued again: ${d.kind}${d.service ? ` of ${d.service}` : ""} to ${d.to} ${d.target}, up to ${d.maxAttempts} tries`);
    });

  notifications
    .command("test")
    .description("send a test notification to every configured webhook (project and teams) and show how each answered")
    .addOption(dirOption())
    .addOption(new Option("--wait <seconds>", "how long to wait for the first answers").default(10).argParser(seconds))
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; wait: number; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { deliveries } = await api.post<{ deliveries: NotificationDelivery[] }>("/v1/notifications/test");
      if (deliveries.length === 0) {
        if (opts.json) return print("[]");
        return print("no webhooks configured: add `notifications.webhooks` or `teams.<name>.notifications` to keelson.yaml and run `keelson up`");
      }
      // Wait until each has been tried once (or the time is up), then say how it went.
      const deadline = Date.now() + opts.wait * 1000;
      let current = deliveries;
      while (Date.now() < deadline && current.some((d) => d.state === "pending" && d.attempts === 0)) {
        await new Promise((r) => setTimeout(r, 200));
        current = await Promise.all(current.map((d) => api.get<NotificationDelivery>(`/v1/notifications/${encodeURIComponent(d.id)}`)));
      }
      if (opts.json) return print(JSON.stringify(current, null, 2));
      for (const d of current) {
        const mark = d.state === "delivered" ? color.green("✓") : d.attempts === 0 ? color.yellow("…") : color.red("✗");
        const how = d.state === "delivered" ? `delivered (${d.lastStatus ?? "ok"})` : d.attempts === 0 ? "not tried yet" : `${d.lastError ?? "failed"}${d.state === "pending" ? ", will try again" : ""}`;
        print(`${mark} ${d.to} ${d.target} (${d.format}): ${how}`);
      }
      if (current.some((d) => d.state !== "delivered")) process.exitCode = 1;
    });
}
