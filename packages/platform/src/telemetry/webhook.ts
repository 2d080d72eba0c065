// Delivering a JSON event to a webhook: POST with a bounded number of tries, backing off between
// them, giving up on answers a retry would not change. Used for incidents and rollout failures.

export interface WebhookDelivery {
  /** Tries, the first included (default 4). */
  attempts?: number;
  /** Wait before the first retry, doubling after each (default 500 ms). */
  backoffMs?: number;
  /** Longest wait for one try (default 5 s). */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * POSTs `body` (JSON text) to `url`; resolves with undefined once delivered, or with the last
 * error once every try failed. Never rejects.
 *
 * @example
 * const err = await deliverWebhook("http://127.0.0.1:9000/hook", JSON.stringify(event), { kind: event.kind });
 */
export async function deliverWebhook(url: string, body: string, options: WebhookDelivery & { kind: string }): Promise<string | undefined> {
  const attempts = options.attempts ?? 4;
  const backoffMs = options.backoffMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const doFetch = options.fetch ?? globalThis.fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  let lastError = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await doFetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "keelson", "x-keelson-event": options.kind },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
      if (res.ok) return undefined;
      lastError = `answered ${res.status}`;
      // Other client errors will not change on a retry.
      if (res.status < 500 && res.status !== 429 && res.status !== 408) break;
    } catch (err) {
      lastError = err instanceof Error && err.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : describeFetchError(err);
    }
    if (attempt < attempts) await sleep(backoffMs * 2 ** (attempt - 1));
  }
  return lastError;
}

export function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
  return err.message === "fetch failed" && cause !== undefined ? `cannot connect (${cause.code ?? cause.message ?? "unknown"})` : err.message;
}
