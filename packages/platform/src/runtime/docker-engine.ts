// The docker driver's connection to the Engine API (dockerode over a unix socket) and the
// helpers its parts share: reading a progress stream to its end, and the engine's errors as KeelsonErrors.
import Docker from "dockerode";
import { KeelsonError } from "@keelson/protocol";

/** Where the engine listens: `socketPath`, else DOCKER_HOST (unix:// only), else /var/run/docker.sock. */
export function engineSocketPath(socketPath?: string): string {
  if (socketPath !== undefined) return socketPath;
  const host = process.env.DOCKER_HOST;
  if (host !== undefined && host !== "") {
    if (!host.startsWith("unix://")) {
      throw new KeelsonError("KEELSON_ERR_RUNTIME", `docker runtime: DOCKER_HOST=${host} is not a unix socket (unix:///path); only local engines are supported`);
    }
    return host.slice("unix://".length);
  }
  return "/var/run/docker.sock";
}

/** A client for the engine at that socket (nothing is sent until the first call). */
export function connectEngine(socketPath?: string): Docker {
  return new Docker({ socketPath: engineSocketPath(socketPath) });
}

/** The HTTP status of an engine error (404 no such container, 409 conflict, 304 not modified), if any. */
export function engineStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** The engine's own message of an error ("No such container: ..."), else the error's message. */
export function engineMessage(err: unknown): string {
  const json = (err as { json?: { message?: unknown } } | undefined)?.json;
  if (typeof json?.message === "string") return json.message;
  return err instanceof Error ? err.message : String(err);
}

/** One message of a build or import progress stream. */
export interface EngineProgress {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

/**
 * Reads a build or import progress stream to its end; rejects with the engine's message when a
 * step failed (the engine reports that inside the stream, with HTTP 200).
 */
export function followProgress(docker: Docker, stream: NodeJS.ReadableStream): Promise<EngineProgress[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, messages: EngineProgress[]) => {
      if (err !== null) return reject(err);
      const failed = messages.find((m) => m.error !== undefined || m.errorDetail?.message !== undefined);
      if (failed !== undefined) return reject(new Error(failed.errorDetail?.message ?? failed.error));
      resolve(messages);
    });
  });
}
