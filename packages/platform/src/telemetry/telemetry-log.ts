// The logging interface telemetry writes to: the subset of pino it uses (facts first, then the
// message), so the control plane passes its pino logger and tests a silent or recording one.

export interface TelemetryLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = () => undefined;

/** Discards everything; the default when no logger is given. */
export const silentTelemetryLog: TelemetryLog = { info: noop, warn: noop, error: noop };
