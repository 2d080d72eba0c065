import { describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import { createMemoryStore } from "../store/index.js";
import { GATEWAY_COLLECTION, createGatewayRegistry } from "./gateway-registry.js";

describe("gateway registry", () => {
  it("records the gateways that follow any instance, and forgets those not seen for a while", async () => {
    let clock = Date.parse("2026-11-27T10:00:00Z");
    const store = createMemoryStore();
    const warnings: string[] = [];
    const options = { store, project: "shop", fixed: ["http://127.0.0.1:8081"], log: { warn: (_: object, msg: string) => void warnings.push(msg) }, ttlMs: 60_000, refreshMs: 10_000, now: () => clock };
    const a = createGatewayRegistry({ ...options, instance: "a" });
    const b = createGatewayRegistry({ ...options, instance: "b" });

    // Gateway 2 follows instance b; the leader (a) learns of it from the store.
    b.seen("http://127.0.0.1:9091/");
    for (const bad of ["not a url", "file:///etc/passwd", "http://user:pw@127.0.0.1:1"]) b.seen(bad);
    expect(warnings).toHaveLength(3);
    await waitFor(async () => (await store.listDocuments({ collection: GATEWAY_COLLECTION, project: "shop" })).length === 1, { what: "the gateway recorded" });
    expect(a.urls()).toEqual(["http://127.0.0.1:8081"]);
    await a.start();
    expect(a.urls()).toEqual(["http://127.0.0.1:8081", "http://127.0.0.1:9091"]);

    // A watch reconnecting at once is not written again; after the refresh period it is.
    const before = (await store.listDocuments({ collection: GATEWAY_COLLECTION, project: "shop" }))[0]!.at;
    clock += 5_000;
    b.seen("http://127.0.0.1:9091");
    await new Promise((r) => setTimeout(r, 10));
    expect((await store.listDocuments({ collection: GATEWAY_COLLECTION, project: "shop" }))[0]!.at).toBe(before);

    // Not seen for longer than the TTL: no longer scraped (the manifest's gateway always is).
    clock += 120_000;
    a.stop();
    await a.start();
    expect(a.urls()).toEqual(["http://127.0.0.1:8081"]);
    a.stop();
  });
});
