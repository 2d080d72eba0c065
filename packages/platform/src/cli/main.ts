// The `keelson` command line: parses input, calls the domains and the control-plane API,
// formats output. Exit codes: 0 ok, 1 failure, 2 usage error.
import { existsSync } from "node:fs";
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { KeelsonError, type KeelsonEvent, type StatusReport, type TrafficSplit } from "@keelson/protocol";
import { runControlPlane, stateDirOf, GATEWAY_DIR, GATEWAY_IDENTITY, TOKEN_FILE } from "../api/index.js";
import { formatPlan, planFromStore, type ApplyProgress, type Plan, type ServiceFailure } from "../delivery/index.js";
import { DEFAULT_GATEWAY_WORKERS, runGateway } from "../gateway/index.js";
import { STARTER_SERVICE_PATH, loadManifest, meshPortOf, mtlsEnabled, manifestJsonSchema, manifestTemplate, starterServiceSource, type LoadedManifest } from "../manifest/index.js";
import { createMemoryStore, createSqliteStore } from "../store/index.js";
import { buildTraceTree, formatDuration, renderTraceTree, type SpanRecord, type TraceSummary } from "../telemetry/index.js";
import { createApiClient, type ApiClient } from "./api-client.js";
import { ensureControlPlane, ensureGateway, findControlPlane, findGateway, stopProcess } from "./daemons.js";
import { color, ms, table } from "./output.js";
import { formatCpu, formatUsageMemory, serviceUsage } from "./usage-format.js";
import { addDeliveryCommands } from "./delivery-commands.js";
import { addRolloutCommands } from "./rollout-commands.js";
import { addFlagsCommands } from "./flags-commands.js";
import { addSecurityCommands } from "./security-commands.js";
import { addOperationsCommands } from "./operations-commands.js";
import { addExperimentCommands } from "./experiment-commands.js";
import { addNotificationCommands } from "./notification-commands.js";
import { addCatalogCommands } from "./catalog-commands.js";
import { addDoraCommands } from "./dora-commands.js";
import { addK8sCommands } from "./k8s-commands.js";
import { addStoreCommands } from "./store-commands.js";
import { addDoctorCommand } from "./doctor-command.js";
import { addTemplateCommands } from "./template-commands.js";
import { connect, describeProgress, print, untilSignal } from "./progress.js";

class UsageError extends Error {}

function formatStatus(s: StatusReport): string {
  const rows = s.services.map((svc) => {
    const ok = svc.replicas.ready === svc.replicas.desired;
    const restarts = svc.instances.reduce((n, i) => n + i.restarts, 0);
    const usage = serviceUsage(svc.instances);
    return [
      svc.name,
      svc.owner,
      svc.release ?? "-",
      (ok ? color.green : color.yellow)(`${svc.replicas.ready}/${svc.replicas.desired}`),
      String(restarts),
      formatCpu(usage),
      formatUsageMemory(usage),
      svc.routes.join(" ") || color.dim("(internal)"),
    ];
  });
  return [
    `${color.bold("project")} ${s.project}   ${color.bold("control plane")} ${s.controlPlane.url}   ${color.bold("gateway")} ${s.gateway.url}`,
    ...(s.cluster === undefined
      ? []
      : [
          `${color.bold("instances")} ${s.cluster.instances.map((i) => (i.leader ? `${i.url} ${color.green(`(leader, term ${s.cluster!.term})`)}` : i.url)).join("  ")}   ${color.bold("gateways")} ${s.cluster.gateways.length}`,
        ]),
    "",
    table(["SERVICE", "OWNER", "RELEASE", "READY", "RESTARTS", "CPU", "MEM", "ROUTES"], rows),
  ].join("\n");
}

/** What the gateway's admin `/state` says of one service (single process or first worker). */
interface GatewayServiceView {
  loadBalancer?: string;
  inflight?: number;
  policy?: { timeoutMs: number; retries: { attempts: number; budgetPercent: number } };
  endpoints?: Array<{ replicaId: string; release: string; inflight: number; ewmaMs: number; consecutiveFailures: number; ejected: boolean; ejectedUntil?: string }>;
  split?: TrafficSplit;
  breaker?: { state: string; requests: number; failures: number };
  bulkhead?: { active: number; queued: number; maxConcurrent: number };
  retryBudget?: { available: number };
}

async function gatewayServiceState(adminUrl: string, service: string): Promise<GatewayServiceView | undefined> {
  try {
    const res = await fetch(new URL("/state", adminUrl), { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { services?: Array<{ name: string }>; workers?: Array<{ state?: { services?: Array<{ name: string }> } }> };
    const services = body.services ?? body.workers?.[0]?.state?.services ?? [];
    return services.find((x) => x.name === service) as GatewayServiceView | undefined;
  } catch {
    return undefined;
  }
}

function formatServiceStatus(svc: StatusReport["services"][number], gw: GatewayServiceView | undefined): string {
  const lines = [
    `${color.bold(svc.name)}  owner ${svc.owner}  release ${svc.release ?? "-"}  ${svc.replicas.ready}/${svc.replicas.desired} ready`,
    `routes: ${svc.routes.join(" ") || "(internal)"}`,
  ];
  if (gw) {
    const p = gw.policy;
    lines.push(
      `gateway: ${gw.loadBalancer ?? "?"}, ${gw.inflight ?? 0} in flight${p ? `, timeout ${ms(p.timeoutMs)}, ${p.retries.attempts} retries (budget ${p.retries.budgetPercent}%, ${Math.floor(gw.retryBudget?.available ?? 0)} available)` : ""}`,
      `circuit breaker: ${gw.breaker ? `${gw.breaker.state} (${gw.breaker.failures}/${gw.breaker.requests} failed in window)` : "off"}${gw.bulkhead ? `   bulkhead: ${gw.bulkhead.active}/${gw.bulkhead.maxConcurrent} active, ${gw.bulkhead.queued} queued` : ""}`,
      `split: ${gw.split ? gw.split.weights.map((w) => `${w.release}${w.label ? ` (${w.label})` : ""} ${w.weight}%`).join(", ") + (gw.split.sticky ? ", sticky" : "") : "none (every ready replica)"}`,
    );
  } else {
    lines.push(color.dim("gateway: not reachable"));
  }
  lines.push("");
  const byId = new Map((gw?.endpoints ?? []).map((e) => [e.replicaId, e]));
  lines.push(
    table(
      ["REPLICA", "RELEASE", "STATE", "PID", "PORT", "RESTARTS", "CPU", "MEM", "IN-FLIGHT", "EWMA", "FAILS", "EJECTED"],
      svc.instances.map((i) => {
        const e = byId.get(i.id);
        return [
          i.id,
          i.release,
          i.paused ? color.red(`${i.state}, hung`) : i.state === "ready" ? color.green(i.state) : color.yellow(i.state),
          String(i.pid ?? "-"),
          String(i.port),
          String(i.restarts),
          formatCpu(i.usage),
          formatUsageMemory(i.usage),
          e ? String(e.inflight) : "-",
          e ? `${e.ewmaMs.toFixed(1)} ms` : "-",
          e ? String(e.consecutiveFailures) : "-",
          e?.ejected ? color.red(`until ${e.ejectedUntil ?? "?"}`) : "-",
        ];
      }),
    ),
  );
  return lines.join("\n");
}

async function runApply(api: ApiClient, options: { rebuild: boolean }): Promise<ServiceFailure[]> {
  let failures: ServiceFailure[] = [];
  for await (const p of api.stream<ApplyProgress | { type: "done"; result: { failures: ServiceFailure[] } } | { type: "error"; error: { code: string; message: string } }>("/v1/apply", {
    method: "POST",
    body: { rebuild: options.rebuild },
  })) {
    if (p.type === "done") failures = p.result.failures;
    else if (p.type === "error") throw new KeelsonError(p.error.code as KeelsonError["code"], p.error.message);
    else {
      const text = describeProgress(p);
      if (text) print(text);
    }
  }
  return failures;
}

async function followLogs(api: ApiClient, services: string[], since: Date, signal: AbortSignal, prefix: boolean): Promise<void> {
  const palette = [color.cyan, color.magenta, color.yellow, color.blue, color.green];
  const width = Math.max(...services.map((s) => s.length));
  await Promise.all(
    services.map(async (service, i) => {
      const paint = palette[i % palette.length] ?? color.cyan;
      try {
        for await (const line of api.stream<{ t: string; replica: string; stream: string; line: string }>(`/v1/services/${service}/logs?follow=1&since=${encodeURIComponent(since.toISOString())}`, { signal })) {
          print(`${prefix ? `${paint(service.padEnd(width))} | ` : ""}${line.line}`);
        }
      } catch (err) {
        if (!signal.aborted) throw err;
      }
    }),
  );
}

async function down(dir: string): Promise<void> {
  const stateDir = stateDirOf(dir);
  const cp = await findControlPlane(stateDir);
  if (cp) {
    print(`stopping services…`);
    await createApiClient(cp.url, { stateDir }).post("/v1/down");
    print(`  ${color.green("✓")} services stopped`);
  } else if (existsSync(join(stateDir, "state.db"))) {
    // Replicas may still run without a control plane: start one to adopt and stop them.
    const loaded = await loadManifest(dir).catch(() => undefined);
    const m = loaded?.manifest;
    const started = await ensureControlPlane({
      dir,
      stateDir,
      host: m?.controlPlane.host ?? "127.0.0.1",
      port: m?.controlPlane.port ?? 7070,
      gatewayUrl: `http://${m?.gateway.host ?? "127.0.0.1"}:${m?.gateway.port ?? 8080}`,
      project: m?.project ?? "",
    });
    await createApiClient(started.url, { stateDir }).post("/v1/down");
    await stopProcess(started.pid);
    print(`  ${color.green("✓")} services stopped`);
  }
  const gw = await findGateway(stateDir);
  if (gw) {
    await stopProcess(gw.pid);
    print(`  ${color.green("✓")} gateway stopped`);
  }
  const cp2 = await findControlPlane(stateDir);
  if (cp2) {
    await stopProcess(cp2.pid);
    print(`  ${color.green("✓")} control plane stopped`);
  }
}

export function buildProgram(): Command {
  const program = new Command("keelson")
    .description("Run your team's microservices with DevOps built in.")
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();

  program
    .command("init")
    .description("create a keelson.yaml in a folder")
    .argument("[dir]", "project folder", ".")
    .option("--name <project>", "project name (default: the folder's name)")
    .action(async (dirArg: string, opts: { name?: string }) => {
      const dir = resolve(dirArg);
      const file = join(dir, "keelson.yaml");
      if (existsSync(file)) throw new KeelsonError("KEELSON_ERR_CONFLICT", `${file} already exists`);
      const name = opts.name ?? basename(dir); // manifestTemplate makes it a valid project name
      // `keelson init my-app` makes the folder, as the getting-started guide says.
      await mkdir(dir, { recursive: true });
      await writeFile(file, manifestTemplate(name));
      const starter = join(dir, STARTER_SERVICE_PATH, "server.mjs");
      if (!existsSync(starter)) {
        await mkdir(dirname(starter), { recursive: true });
        await writeFile(starter, starterServiceSource(name));
      }
      const gitignore = join(dir, ".gitignore");
      const current = existsSync(gitignore) ? await readFile(gitignore, "utf8") : "";
      if (!current.split("\n").includes(".keelson/")) await appendFile(gitignore, `${current && !current.endsWith("\n") ? "\n" : ""}.keelson/\n`);
      print(`created ${file} and a starter service in ${join(dir, STARTER_SERVICE_PATH)}\nnext: \`keelson up${dirArg === "." ? "" : ` ${dirArg}`}\`, then open the gateway's URL`);
    });

  program
    .command("validate")
    .description("check keelson.yaml and report every problem with its place")
    .argument("[dir]", "project folder or manifest file", ".")
    .action(async (dirArg: string) => {
      const loaded = await loadManifest(resolve(dirArg));
      const n = Object.keys(loaded.manifest.services).length;
      print(`${color.green("✓")} ${loaded.file} is valid: project "${loaded.manifest.project}", ${n} service${n === 1 ? "" : "s"}`);
    });

  program
    .command("schema")
    .description("print the JSON Schema of keelson.yaml (for editors)")
    .action(() => print(JSON.stringify(manifestJsonSchema(), null, 2)));

  program
    .command("plan")
    .description("show what `keelson up` would change, without changing anything")
    .argument("[dir]", "project folder", ".")
    .option("--json", "print the plan as JSON")
    .action(async (dirArg: string, opts: { json?: boolean }) => {
      const dir = resolve(dirArg);
      const loaded = await loadManifest(dir);
      const plan = await planFor(dir, loaded);
      print(opts.json ? JSON.stringify(plan, null, 2) : formatPlan(plan, { color: color.isColorSupported }));
    });

  program
    .command("up")
    .description("build what changed, start every service and the gateway, wait until ready")
    .argument("[dir]", "project folder", ".")
    .option("-d, --detach", "return once every service is ready, leaving everything running")
    .option("--rebuild", "rebuild every service even if its sources did not change")
    .addOption(new Option("--port <port>", "control-plane port (default: controlPlane.port or 7070)").argParser(parsePort))
    .addOption(new Option("--gateway-port <port>", "gateway port (default: gateway.port or 8080)").argParser(parsePort))
    .action(async (dirArg: string, opts: { detach?: boolean; rebuild?: boolean; port?: number; gatewayPort?: number }) => {
      const dir = resolve(dirArg);
      const stateDir = stateDirOf(dir);
      const loaded = await loadManifest(dir);
      const m = loaded.manifest;
      const started = Date.now();
      print(`${color.bold("keelson up")} ${m.project} (${Object.keys(m.services).length} services)`);
      const gwPort = opts.gatewayPort ?? m.gateway.port;
      const gatewayUrl = `http://${m.gateway.host}:${gwPort}`;
      const cpHost = m.controlPlane.host;
      const cpPort = opts.port ?? m.controlPlane.port;
      // Both start at once: the gateway retries until the control plane answers.
      const [cpResult, gwResult] = await Promise.allSettled([
        ensureControlPlane({ dir, stateDir, host: cpHost, port: cpPort, gatewayUrl, project: m.project }),
        ensureGateway({
          dir,
          stateDir,
          host: m.gateway.host,
          port: gwPort,
          adminPort: m.gateway.adminPort,
          meshPort: meshPortOf({ port: gwPort, meshPort: m.gateway.meshPort }),
          meshTls: mtlsEnabled(m),
          controlPlaneUrl: `http://${cpHost.includes(":") ? `[${cpHost}]` : cpHost}:${cpPort}`,
        }),
      ]);
      if (cpResult.status === "rejected" || gwResult.status === "rejected") {
        // Leave nothing half-started behind: stop what this command itself started.
        if (cpResult.status === "fulfilled" && cpResult.value.started) await stopProcess(cpResult.value.pid);
        if (gwResult.status === "fulfilled" && gwResult.value.started) await stopProcess(gwResult.value.pid);
        throw cpResult.status === "rejected" ? cpResult.reason : (gwResult as PromiseRejectedResult).reason;
      }
      const cp = cpResult.value;
      const gw = gwResult.value;
      print(`  ${color.green("✓")} control plane ${cp.url}${cp.started ? "" : color.dim(" (already running)")}`);
      print(`  ${color.green("✓")} gateway ${gw.url}${gw.started ? "" : color.dim(" (already running)")}`);
      if (cp.started && process.env.KEELSON_TOKEN === undefined && existsSync(join(stateDir, TOKEN_FILE))) {
        print(color.dim(`  the CLI's admin token is in ${join(stateDir, TOKEN_FILE)} (mode 0600); \`keelson tokens create\` makes tokens for people and CI`));
      }
      const api = createApiClient(cp.url, { stateDir });
      const failures = await runApply(api, { rebuild: opts.rebuild ?? false });
      await waitForGatewayTable(api, gw.adminUrl);
      const status = await api.get<StatusReport>("/v1/status");
      print("");
      print(formatStatus(status));
      print("");
      if (failures.length > 0) {
        print(color.red(`${failures.length} service${failures.length === 1 ? "" : "s"} failed: ${failures.map((f) => f.service).join(", ")} (the others keep running)`));
        process.exitCode = 1;
      } else {
        print(`${color.green("✓")} all services ready in ${ms(Date.now() - started)}; open ${gw.url}`);
      }
      if (opts.detach) return;
      print(color.dim("following logs; Ctrl-C stops everything (use --detach to leave it running)"));
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      await Promise.race([followLogs(api, status.services.map((s) => s.name), new Date(started), abort.signal, true), new Promise((r) => abort.signal.addEventListener("abort", r))]);
      print("");
      await down(dir);
    });

  program
    .command("down")
    .description("stop every service, the gateway and the control plane gracefully")
    .argument("[dir]", "project folder", ".")
    .action(async (dirArg: string) => {
      await down(resolve(dirArg));
    });

  program
    .command("status")
    .description("show services, releases and ready replicas; with a service name, its replicas and what the gateway sees")
    .argument("[dir-or-service]", "project folder (default .), or the name of a service", ".")
    .option("-C, --dir <dir>", "project folder, when the argument is a service")
    .option("--json", "print JSON (controlPlane, gateway, services[])")
    .action(async (target: string, opts: { dir?: string; json?: boolean }) => {
      // A folder with a manifest is a project; anything else names a service.
      const isProject = opts.dir === undefined && (target === "." || existsSync(join(resolve(target), "keelson.yaml")));
      const dir = resolve(isProject ? target : (opts.dir ?? "."));
      const api = await connect(dir);
      const status = await api.get<StatusReport>("/v1/status");
      if (isProject) return print(opts.json ? JSON.stringify(status, null, 2) : formatStatus(status));
      const service = status.services.find((x) => x.name === target);
      if (!service) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `service "${target}" does not exist in project "${status.project}"`);
      const gw = await findGateway(stateDirOf(dir));
      const gatewayView = gw?.adminUrl ? await gatewayServiceState(gw.adminUrl, target) : undefined;
      print(opts.json ? JSON.stringify({ service, gateway: gatewayView ?? null }, null, 2) : formatServiceStatus(service, gatewayView));
    });

  program
    .command("logs")
    .description("show logs of one or more services (every service by default), all replicas merged in time order")
    .argument("[services...]", "service names (default: every service)")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("-f, --follow", "keep printing new lines")
    .option("--since <time>", "only lines since an ISO time or a duration ago (10m, 1h)")
    .addOption(new Option("-n, --tail <lines>", "only the last N lines of each service").argParser(parseCount))
    .option("--grep <regex>", "only lines matching this regular expression")
    .option("--trace <trace-id>", "only lines of this trace (services log their trace id with @keelson/sdk)")
    .action(async (services: string[], opts: { dir: string; follow?: boolean; since?: string; tail?: number; grep?: string; trace?: string }) => {
      let grep: RegExp | undefined;
      try {
        grep = opts.grep === undefined ? undefined : new RegExp(opts.grep);
      } catch (err) {
        throw new InvalidArgumentError(`--grep: ${(err as Error).message}`);
      }
      const keep = (text: string) => (grep === undefined || grep.test(text)) && (opts.trace === undefined || text.includes(opts.trace));
      const api = await connect(resolve(opts.dir));
      const names = services.length > 0 ? services : (await api.get<StatusReport>("/v1/status")).services.map((x) => x.name);
      const params = new URLSearchParams();
      if (opts.follow) params.set("follow", "1");
      if (opts.since) params.set("since", parseSince(opts.since).toISOString());
      if (opts.tail !== undefined) params.set("tail", String(opts.tail));
      const abort = new AbortController();
      process.once("SIGINT", () => abort.abort());
      const width = Math.max(...names.map((n) => n.length));
      type Line = { t: string; replica: string; stream: string; line: string };
      const show = (service: string, line: Line) =>
        print(`${color.dim(line.t)} ${names.length > 1 ? `${color.magenta(service.padEnd(width))} ` : ""}${color.cyan(line.replica)} ${line.stream === "stderr" ? color.red(line.line) : line.line}`);
      const read = (service: string) => api.stream<Line>(`/v1/services/${encodeURIComponent(service)}/logs?${params}`, { signal: abort.signal });
      if (opts.follow) {
        // Live lines are printed as they come, from every service at once.
        await Promise.all(names.map(async (service) => {
          for await (const line of read(service)) if (keep(line.line)) show(service, line);
        }));
        return;
      }
      const all: Array<{ service: string; line: Line }> = [];
      await Promise.all(names.map(async (service) => {
        for await (const line of read(service)) if (keep(line.line)) all.push({ service, line });
      }));
      // Each service's lines come in time order; merging sorts across services (stable for equal times).
      all.sort((a, b) => (a.line.t < b.line.t ? -1 : a.line.t > b.line.t ? 1 : 0));
      for (const { service, line } of all) show(service, line);
    });

  program
    .command("restart")
    .description("restart a service's replicas one at a time")
    .argument("<service>", "service name")
    .option("-C, --dir <dir>", "project folder", ".")
    .action(async (service: string, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      await api.post(`/v1/services/${encodeURIComponent(service)}/restart`);
      print(`${color.green("✓")} ${service} restarted`);
    });

  program
    .command("scale")
    .description("set a service's replica count (until the next `up` applies the manifest again)")
    .argument("<service>", "service name")
    .argument("<replicas>", "replica count 0-100", parseCount)
    .option("-C, --dir <dir>", "project folder", ".")
    .action(async (service: string, replicas: number, opts: { dir: string }) => {
      const api = await connect(resolve(opts.dir));
      await api.post(`/v1/services/${encodeURIComponent(service)}/scale`, { replicas });
      print(`${color.green("✓")} ${service} scaled to ${replicas}`);
    });

  program
    .command("traffic")
    .description("show or set how a service's traffic is split across its releases")
    .argument("<service>", "service name")
    .argument("[weights...]", "release=weight[:label] pairs adding up to 100, e.g. r-3f9a1c2b7d4e=90:stable r-77aa01bc23de=10:canary")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--sticky", "pin each client to the release it first got (cookie)")
    .option("--clear", "remove the split: every ready replica takes traffic again")
    .action(async (service: string, weights: string[], opts: { dir: string; sticky?: boolean; clear?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const path = `/v1/services/${encodeURIComponent(service)}/traffic`;
      if (opts.clear) {
        await api.request("DELETE", path);
        return print(`${color.green("✓")} ${service}: split removed`);
      }
      if (weights.length === 0) {
        const { split } = await api.get<{ split: TrafficSplit | null }>(path);
        if (!split) return print(`${service}: no split; every ready replica takes traffic`);
        print(table(["RELEASE", "WEIGHT", "LABEL"], split.weights.map((w) => [w.release, `${w.weight}%`, w.label ?? ""])));
        return print(split.sticky ? "sticky: yes (cookie)" : "sticky: no");
      }
      const parsed = weights.map((w) => {
        const m = /^(r-[0-9a-f]{12})=(\d+(?:\.\d+)?)(?::([A-Za-z0-9_.-]+))?$/.exec(w);
        if (!m) throw new InvalidArgumentError(`expected release=weight[:label] like r-3f9a1c2b7d4e=90:stable, got "${w}"`);
        return { release: m[1] as string, weight: Number(m[2]), ...(m[3] ? { label: m[3] } : {}) };
      });
      await api.request("PUT", path, { weights: parsed, sticky: opts.sticky ?? false });
      print(`${color.green("✓")} ${service}: ${parsed.map((w) => `${w.release} ${w.weight}%`).join(", ")}${opts.sticky ? " (sticky)" : ""}`);
    });

  program
    .command("traces")
    .description("search stored traces (newest first)")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--service <name>", "traces that touch this service")
    .option("--status <status>", "error: only traces with a failed span")
    .option("--min-duration <duration>", "only traces at least this long, e.g. 200ms")
    .option("--since <duration>", "only traces started this long ago or less, e.g. 15m")
    .addOption(new Option("-n, --limit <n>", "how many").argParser(parseCount).default(20))
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; service?: string; status?: string; minDuration?: string; since?: string; limit: number; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const params = new URLSearchParams({ limit: String(opts.limit) });
      if (opts.service) params.set("service", opts.service);
      if (opts.status) params.set("status", opts.status);
      if (opts.minDuration) params.set("minDuration", opts.minDuration);
      if (opts.since) params.set("since", opts.since);
      const { traces } = await api.get<{ traces: TraceSummary[] }>(`/v1/traces?${params}`);
      if (opts.json) return print(JSON.stringify(traces, null, 2));
      if (traces.length === 0) return print("no traces match");
      print(
        table(
          ["TRACE", "START", "ROOT", "SERVICES", "SPANS", "DURATION", "STATUS"],
          traces.map((t) => [
            t.traceId,
            new Date(t.startTimeUs / 1000).toISOString(),
            `${t.rootService} ${t.rootName}`,
            t.services.join(","),
            String(t.spanCount),
            formatDuration(t.durationUs),
            t.errorCount > 0 ? color.red(`${t.errorCount} error${t.errorCount === 1 ? "" : "s"}`) : color.green("ok"),
          ]),
        ),
      );
    });

  program
    .command("trace")
    .description("show one trace as a tree of spans with timings")
    .argument("<trace-id>", "the trace id (32 hex digits)")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--json", "print the spans as JSON")
    .action(async (id: string, opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { spans } = await api.get<{ spans: SpanRecord[] }>(`/v1/traces/${encodeURIComponent(id)}`);
      const tree = buildTraceTree(spans);
      if (opts.json || !tree) return print(JSON.stringify(spans, null, 2));
      // Failed spans stand out in red on a terminal.
      print(
        renderTraceTree(tree)
          .split("\n")
          .map((l) => (/\bERROR\b/.test(l) ? color.red(l) : l))
          .join("\n"),
      );
    });

  program
    .command("metrics")
    .description("request rate, error ratio and latency per service (from the gateway), over a window")
    .argument("[service]", "only this service")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--window <window>", "how far back: 1m, 5m, 1h…", "5m")
    .option("--by <labels>", "group by: service, version, route, replica (comma-separated)", "service")
    .option("--json", "print JSON")
    .action(async (service: string | undefined, opts: { dir: string; window: string; by: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const params = new URLSearchParams({ window: opts.window, by: opts.by });
      if (service) params.set("service", service);
      const r = await api.get<{ window: string; rows: Array<{ labels: Record<string, string>; requestRate: number; errorRatio?: number; p50?: number; p90?: number; p99?: number }> }>(`/v1/metrics?${params}`);
      if (opts.json) return print(JSON.stringify(r, null, 2));
      if (r.rows.length === 0) return print(`no requests in the last ${r.window}`);
      const by = opts.by.split(",").filter(Boolean);
      const msOf = (v: number | undefined) => (v === undefined ? "-" : `${(v * 1000).toFixed(1)}`);
      print(
        table(
          [...by.map((b) => b.toUpperCase()), "RPS", "ERRORS", "P50 MS", "P90 MS", "P99 MS"],
          r.rows.map((row) => [
            ...by.map((b) => row.labels[b] ?? ""),
            row.requestRate.toFixed(2),
            row.errorRatio === undefined ? "-" : `${(row.errorRatio * 100).toFixed(2)}%`,
            msOf(row.p50),
            msOf(row.p90),
            msOf(row.p99),
          ]),
        ),
      );
    });

  program
    .command("slo")
    .description("service level objectives: SLI, error budget left, burn rates and open incidents")
    .option("-C, --dir <dir>", "project folder", ".")
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { slos } = await api.get<{
        slos: Array<{ service: string; slo: string; objective: string; target: number; measuredWindow: string; sli?: number; budgetRemaining?: number; burnRates: Record<string, number>; incident?: { id: number; severity: string } }>;
      }>("/v1/slo");
      if (opts.json) return print(JSON.stringify(slos, null, 2));
      if (slos.length === 0) return print("no SLOs declared (services.<name>.slos in keelson.yaml)");
      const pct = (v: number | undefined) => (v === undefined ? "-" : `${(v * 100).toFixed(3)}%`);
      print(
        table(
          ["SERVICE", "SLO", "OBJECTIVE", "TARGET", "WINDOW", "SLI", "BUDGET LEFT", "BURN 1H", "BURN 6H", "INCIDENT"],
          slos.map((x) => [
            x.service,
            x.slo,
            x.objective,
            `${+(x.target * 100).toFixed(4)}%`,
            x.measuredWindow,
            pct(x.sli),
            x.budgetRemaining === undefined ? "-" : (x.budgetRemaining < 0 ? color.red : x.budgetRemaining < 0.25 ? color.yellow : color.green)(`${(x.budgetRemaining * 100).toFixed(1)}%`),
            (x.burnRates["1h"] ?? 0).toFixed(2),
            (x.burnRates["6h"] ?? 0).toFixed(2),
            x.incident ? color.red(`#${x.incident.id} ${x.incident.severity}`) : "-",
          ]),
        ),
      );
    });

  program
    .command("events")
    .description("show the event log (every state change: who, what, when)")
    .option("-C, --dir <dir>", "project folder", ".")
    .addOption(new Option("-n, --limit <n>", "how many, newest last").argParser(parseCount).default(30))
    .option("--json", "print JSON")
    .action(async (opts: { dir: string; limit: number; json?: boolean }) => {
      const api = await connect(resolve(opts.dir));
      const { events } = await api.get<{ events: KeelsonEvent[] }>(`/v1/events?limit=${opts.limit}&order=desc`);
      events.reverse();
      if (opts.json) return print(JSON.stringify(events, null, 2));
      print(table(["SEQ", "TIME", "ACTOR", "KIND", "SUBJECT"], events.map((e) => [String(e.seq), e.at, e.actor, e.kind, e.subject])));
    });

  addDeliveryCommands(program);
  addRolloutCommands(program);
  addFlagsCommands(program);
  addSecurityCommands(program);
  addOperationsCommands(program);
  addExperimentCommands(program);
  addNotificationCommands(program);
  addCatalogCommands(program);
  addDoraCommands(program);
  addK8sCommands(program);
  addStoreCommands(program);
  addDoctorCommand(program);
  addTemplateCommands(program);

  program
    .command("serve")
    .description("run the control plane in the foreground (`up` starts it for you)")
    .argument("[dir]", "project folder", ".")
    .option("--host <host>", "address to bind")
    .addOption(new Option("--port <port>", "port").argParser(parsePort))
    .option("--gateway-url <url>", "gateway URL given to services")
    .option("--store <url|file>", "the store: a postgres:// URL (several instances may share it) or a SQLite file (default: KEELSON_STORE_URL, else .keelson/state.db)")
    .option("--store-schema <name>", "PostgreSQL schema of the store (default: KEELSON_STORE_SCHEMA, else keelson)")
    .action(async (dirArg: string, opts: { host?: string; port?: number; gatewayUrl?: string; store?: string; storeSchema?: string }) => {
      const signalled = untilSignal().then(() => "signal" as const);
      // An instance that loses leadership (its store connection broke) stops, and a new one
      // campaigns again, as Kubernetes' controller managers restart when they lose their lease.
      for (;;) {
        const cp = await runControlPlane({ dir: dirArg, ...opts });
        const outcome = await Promise.race([signalled, cp.ended]);
        await cp.stop();
        if (outcome === "signal") break;
        process.stderr.write(`keelson serve: ${outcome}; starting again as a candidate\n`);
      }
      // Replicas were detached, not stopped; nothing else should keep this process alive.
      setTimeout(() => process.exit(0), 2000).unref();
    });

  program
    .command("gateway")
    .description("run the gateway in the foreground (`up` starts it for you)")
    .argument("[dir]", "project folder", ".")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .addOption(new Option("--port <port>", "port").argParser(parsePort).default(8080))
    .addOption(new Option("--admin-port <port>", "port of /healthz, /metrics, /routes").argParser(parsePort).default(8081))
    .addOption(new Option("--mesh-port <port>", "port of the mesh listener (service-to-service calls)").argParser(parsePort).default(8082))
    .option("--mesh-tls", "serve the mesh listener over mutual TLS, and reach replicas of tls: true services, with the certificate the control plane issues")
    .option("--control-plane <urls>", "control-plane URL to follow; several instances as a comma-separated list", "http://127.0.0.1:7070")
    .addOption(new Option("--workers <n|auto>", `processes serving the port; auto = one per CPU (default: ${DEFAULT_GATEWAY_WORKERS})`).argParser(parseWorkers))
    .option("--state-dir <dir>", "where it keeps its last routing table and pid file (default: .keelson/gateway; give each gateway on one host its own)")
    .action(async (dirArg: string, opts: { host: string; port: number; adminPort: number; meshPort: number; meshTls?: boolean; controlPlane: string; workers?: number | "auto"; stateDir?: string }) => {
      const stateDir = stateDirOf(resolve(dirArg));
      // The control plane writes (and renews) the gateway's identity here.
      const identityDir = join(stateDir, "identity", GATEWAY_IDENTITY);
      await runGateway({
        host: opts.host,
        port: opts.port,
        adminPort: opts.adminPort,
        meshPort: opts.meshPort,
        ...(opts.meshTls ? { meshTls: { dir: identityDir } } : {}),
        credentialFile: join(identityDir, "token.jwt"),
        controlPlaneUrl: opts.controlPlane,
        stateDir: opts.stateDir === undefined ? join(stateDir, GATEWAY_DIR) : resolve(opts.stateDir),
        ...(opts.workers === undefined ? {} : { workers: opts.workers }),
      });
    });

  return program;
}

/**
 * Waits until the gateway serves the control plane's current routing table, so that
 * when `up` returns, what is ready is also reachable.
 */
async function waitForGatewayTable(api: ApiClient, adminUrl: string | undefined, timeoutMs = 15_000): Promise<void> {
  if (!adminUrl) return;
  const { version } = await api.get<{ version: number }>("/v1/routing");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(new URL("/routes", adminUrl), { signal: AbortSignal.timeout(1000) });
      if (res.ok && ((await res.json()) as { version: number }).version >= version) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  print(color.yellow(`  ! the gateway has not picked up routing table ${version} yet; see .keelson/gateway/gateway.log`));
}

/** Plan against the running control plane, or straight from the store when none runs. */
async function planFor(dir: string, loaded: LoadedManifest): Promise<Plan> {
  const cp = await findControlPlane(stateDirOf(dir));
  if (cp) return createApiClient(cp.url, { stateDir: stateDirOf(dir) }).post<Plan>("/v1/plan");
  const dbFile = join(stateDirOf(dir), "state.db");
  // Nothing applied yet: everything, flags included, is to be created.
  if (!existsSync(dbFile)) return planFromStore(loaded, createMemoryStore(), { hashSources: false });
  const store = await createSqliteStore({ path: dbFile, readonly: true });
  try {
    return await planFromStore(loaded, store);
  } finally {
    await store.close();
  }
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`expected a port 1-65535, got "${value}"`);
  return n;
}

function parseWorkers(value: string): number | "auto" {
  if (value === "auto") return value;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number of at least 1 or "auto", got "${value}"`);
  return n;
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a whole number, got "${value}"`);
  return n;
}

function parseSince(value: string): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(value);
  if (m) return new Date(Date.now() - Number(m[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[m[2] as "s" | "m" | "h" | "d"]);
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--since: expected an ISO time or a duration like 10m, got "${value}"`);
  return d;
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    // Commander prints the errors of its own parsing; one an action throws (a file that is not
    // JSON) reaches here as it was thrown, unprinted.
    if (err instanceof InvalidArgumentError) {
      process.stderr.write(`${color.red("error:")} ${err.message}\n`);
      return 2;
    }
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return 0;
      return 2;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`${color.red("error:")} ${err.message}\n`);
      return 2;
    }
    if (err instanceof KeelsonError) {
      process.stderr.write(`${color.red("error:")} ${err.message}\n${color.dim(`(${err.code})`)}\n`);
      return 1;
    }
    process.stderr.write(`${color.red("error:")} ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
