// The notification endpoints of the control-plane API: the deliveries (and the dead-letter list),
// re-queueing a dead delivery, and a test notification to every configured webhook.
import type { IncomingMessage } from "node:http";
import { KeelsonError } from "@keelson/protocol";
import { DELIVERY_STATES, type DeliveryState, type Notifier } from "../catalog/index.js";
import { noteChange } from "./access.js";
import { sendJson, type Route } from "./http.js";

export interface NotificationDeps {
  /** Without it (a control plane that sends no notifications) the endpoints answer 404. */
  notifier?: Notifier;
  actorOf: (req: IncomingMessage) => string;
}

/** Registers GET /v1/notifications(/:id), POST /v1/notifications/:id/retry and POST /v1/notifications/test. */
export function addNotificationRoutes(route: Route, deps: NotificationDeps): void {
  function requireNotifier(): Notifier {
    if (!deps.notifier) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", "this control plane runs without notifications");
    return deps.notifier;
  }

  route("GET", "/v1/notifications", "read", async (_req, res, _params, u) => {
    const state = u.searchParams.get("state");
    if (state !== null && !DELIVERY_STATES.includes(state as DeliveryState)) {
      throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `state: expected one of ${DELIVERY_STATES.join(", ")}, got ${JSON.stringify(state)}`);
    }
    const limitText = u.searchParams.get("limit");
    const limit = limitText === null ? 50 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", `limit: expected an integer 1-1000, got ${JSON.stringify(limitText)}`);
    const deliveries = await requireNotifier().list({ ...(state === null ? {} : { state: state as DeliveryState }), limit });
    sendJson(res, 200, { deliveries });
  });

  route("GET", "/v1/notifications/:id", "read", async (_req, res, params) => {
    const delivery = await requireNotifier().get(params.id ?? "");
    if (delivery === undefined) throw new KeelsonError("KEELSON_ERR_NOT_FOUND", `no notification delivery "${params.id ?? ""}"`);
    sendJson(res, 200, delivery);
  });

  route("POST", "/v1/notifications/:id/retry", "admin", async (req, res, params) => {
    const delivery = await requireNotifier().retry(params.id ?? "", deps.actorOf(req));
    noteChange(req, { before: { state: "dead" }, after: { state: delivery.state, kind: delivery.kind, target: delivery.target } });
    sendJson(res, 202, delivery);
  });

  route("POST", "/v1/notifications/test", "admin", async (req, res) => {
    const deliveries = await requireNotifier().test(deps.actorOf(req));
    noteChange(req, { after: { deliveries: deliveries.map((d) => ({ id: d.id, to: d.to, target: d.target })) } });
    sendJson(res, 202, { deliveries });
  });
}
