// The logging interface the gateway writes to: the subset of pino it uses, so tests can pass
// a silent or recording logger and `runGateway` passes a real pino instance.

/** Structured logger: an object of facts first, then a message (pino's argument order). */
export interface GatewayLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = () => undefined;

/** Discards everything; the default when no logger is given. */
export const silentLogger: GatewayLogger = { debug: noop, info: noop, warn: noop, error: noop };
