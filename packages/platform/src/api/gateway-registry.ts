// The gateways that follow this project's control plane, whichever instance they follow: each
// names its admin URL when it opens the routing watch, the instance it reaches records it in
// the store, and the leader scrapes every gateway seen lately (metrics for analysis and SLOs,
// the live load the autoscaler reads), not only the one the manifest names.
import type { Store } from "../store/index.js";

/** The store collection gateways are recorded in (id: the admin URL's origin). */
export const GATEWAY_COLLECTION = "gateway";

export interface GatewayRegistry {
  /** Records a gateway's admin URL from its watch request; an unusable value is ignored (logged). */
  seen(adminUrl: string | undefined): void;
  /** The manifest's gateway and every gateway recorded within the last `ttlMs`. */
  urls(): string[];
  /** Rereads the store now, then every `refreshMs`. */
  start(): Promise<void>;
  stop(): void;
}

export function createGatewayRegistry(options: {
  store: Store;
  project: string;
  /** Always scraped: the gateway the manifest names. */
  fixed: string[];
  /** This instance, recorded as the one the gateway followed. */
  instance: string;
  log: { warn(obj: object, msg: string): void };
  /** A gateway not seen for this long is no longer scraped (default 2 min). */
  ttlMs?: number;
  /** How often the list is reread from the store (default 10 s). */
  refreshMs?: number;
  now?: () => number;
}): GatewayRegistry {
  const ttlMs = options.ttlMs ?? 120_000;
  const refreshMs = options.refreshMs ?? 10_000;
  const now = options.now ?? Date.now;
  let recorded: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  // A watch reconnecting often must not write each time: once per refresh period per gateway.
  const lastWritten = new Map<string, number>();

  async function refresh(): Promise<void> {
    const docs = await options.store.listDocuments({ collection: GATEWAY_COLLECTION, project: options.project, since: new Date(now() - ttlMs).toISOString() });
    recorded = docs.map((d) => d.id);
  }

  return {
    seen(adminUrl) {
      if (adminUrl === undefined) return;
      let origin: string;
      try {
        const u = new URL(adminUrl);
        if ((u.protocol !== "http:" && u.protocol !== "https:") || u.username !== "" || u.password !== "") throw new Error("expected http(s)://host:port");
        origin = u.origin;
      } catch (err) {
        options.log.warn({ adminUrl: adminUrl.slice(0, 200), err: (err as Error).message }, "ignoring a gateway admin URL that is not one");
        return;
      }
      const at = now();
      if (at - (lastWritten.get(origin) ?? 0) < refreshMs) return;
      lastWritten.set(origin, at);
      if (!recorded.includes(origin)) recorded = [...recorded, origin];
      options.store
        .putDocuments([{ collection: GATEWAY_COLLECTION, project: options.project, id: origin, tag: "", at: new Date(at).toISOString(), body: { adminUrl: origin, instance: options.instance } }])
        .catch((err: unknown) => options.log.warn({ err, adminUrl: origin }, "recording a gateway failed"));
    },
    urls() {
      return [...new Set([...options.fixed, ...recorded])];
    },
    async start() {
      await refresh().catch((err: unknown) => options.log.warn({ err }, "reading the recorded gateways failed"));
      timer ??= setInterval(() => void refresh().catch((err: unknown) => options.log.warn({ err }, "reading the recorded gateways failed")), refreshMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
