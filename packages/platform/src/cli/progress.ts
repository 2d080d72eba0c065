// How the CLI shows progress of long work streamed by the control plane (apply, deploy,
// rollback): one line per step; stage output only when asked for (or on failure).
import { KeelsonError } from "@keelson/protocol";
import { planCounts, type ApplyProgress } from "../delivery/index.js";
import { stateDirOf } from "../api/index.js";
import { createApiClient, type ApiClient } from "./api-client.js";
import { findControlPlane } from "./daemons.js";
import { color, ms } from "./output.js";

export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** The API of the control plane running for `dir`, or a clear error when none runs. */
export async function connect(dir: string): Promise<ApiClient> {
  const cp = await findControlPlane(stateDirOf(dir));
  if (!cp) throw new KeelsonError("KEELSON_ERR_CONTROL_PLANE_UNREACHABLE", `no control plane is running for ${dir}; start it with \`keelson up ${dir === process.cwd() ? "" : dir}\``.replace(/ `$/, "`"));
  return createApiClient(cp.url, { stateDir: stateDirOf(dir) });
}

const short = (sha: string | undefined) => (sha ? sha.slice(0, 8) : "-");

export function describeProgress(p: ApplyProgress, options: { logs?: boolean; prefix?: string } = {}): string | undefined {
  const pre = options.prefix ?? "";
  switch (p.type) {
    case "plan": {
      const n = planCounts(p.plan);
      return p.plan.changes.length === 0 ? color.dim(`${pre}  no changes to the desired state`) : color.dim(`${pre}  plan: ${n.create} to create, ${n.change} to change, ${n.remove} to remove`);
    }
    case "pipeline":
      switch (p.status) {
        case "started":
          return `${pre}  ${color.cyan("▸")} pipeline of ${p.service} (${p.run}) for ${p.release}…`;
        case "succeeded":
          return `${pre}  ${color.green("✓")} ${p.service}: release ${p.release} built and tested in ${ms(p.durationMs ?? 0)}`;
        case "skipped":
          return `${pre}  ${color.green("✓")} ${p.service}: ${p.release} already built`;
        case "reused":
          return `${pre}  ${color.green("✓")} ${p.service}: new release ${p.release} (${p.message ?? "config change"})`;
        case "failed":
          return `${pre}  ${color.red("✗")} pipeline of ${p.service} failed\n${indent(p.message ?? "", pre)}`;
      }
      return undefined;
    case "stage":
      switch (p.status) {
        case "started":
          return color.dim(`${pre}    · ${p.service} ${p.stage}: ${p.message ?? ""}`);
        case "succeeded":
          return `${pre}    ${color.green("✓")} ${p.service} ${p.stage} ${color.dim(ms(p.durationMs ?? 0))}`;
        case "cached":
          return `${pre}    ${color.green("✓")} ${p.service} ${p.stage} ${color.dim(`cached, ${ms(p.durationMs ?? 0)}`)}`;
        case "failed":
          return `${pre}    ${color.red("✗")} ${p.service} ${p.stage}: ${p.message ?? "failed"}`;
      }
      return undefined;
    case "log":
      return options.logs ? color.dim(`${pre}      ${p.service} ${p.stage} | ${p.line}`) : undefined;
    case "replica":
      return p.status === "ready" ? `${pre}  ${color.green("✓")} ${p.replica} ready` : `${pre}  · ${p.replica} ${p.status}${p.message ? `: ${p.message}` : ""}`;
    case "rollout": {
      if (p.from === undefined) return `${pre}  ${color.cyan("▸")} ${p.service}: starting ${p.to}, ${p.ready}/${p.replicas} replicas ready`;
      const what = p.strategy === "rollback" ? "rollback" : `${p.strategy} rollout`;
      return `${pre}  ${color.cyan("⇄")} ${p.service}: ${what} ${short(p.from)} → ${p.to}: ${p.phase}, ${p.ready}/${p.replicas} new replicas ready, ${p.weight}% of traffic${p.message ? ` (${p.message.split("\n")[0]})` : ""}`;
    }
    case "flags": {
      const parts = [
        p.created.length > 0 ? `created ${p.created.join(", ")}` : "",
        p.changed.length > 0 ? `set ${p.changed.join(", ")}` : "",
        p.removed.length > 0 ? `removed ${p.removed.join(", ")}` : "",
        p.evaluators.length > 0 ? `flagEvaluators ${p.evaluators.join(", ")}` : "",
      ].filter((x) => x !== "");
      return parts.length === 0 ? undefined : `${pre}  ${color.green("✓")} flags: ${parts.join("; ")} (revision ${p.revision})`;
    }
    case "service":
      switch (p.status) {
        case "ready":
          return `${pre}  ${color.green("✓")} ${color.bold(p.service)} ready${p.message ? ` (${p.message})` : ""}`;
        case "removed":
          return `${pre}  ${color.yellow("-")} ${p.service} removed`;
        case "rolled-back":
          return `${pre}  ${color.yellow("↺")} ${p.service}: new release failed, rolled back\n${indent(p.message ?? "", pre)}`;
        case "failed":
          return `${pre}  ${color.red("✗")} ${p.service} failed\n${indent(p.message ?? "", pre)}`;
      }
  }
  return undefined;
}

function indent(text: string, pre: string): string {
  return pre ? text.split("\n").map((l) => `${pre}${l}`).join("\n") : text;
}

/** Resolves on the first SIGINT or SIGTERM (Ctrl-C in a foreground command). */
export function untilSignal(): Promise<void> {
  return new Promise((r) => {
    process.once("SIGINT", () => r());
    process.once("SIGTERM", () => r());
  });
}
