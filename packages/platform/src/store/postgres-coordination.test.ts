// Leader election and change notices between control-plane instances, against a real PostgreSQL:
// one instance leads at a time, a broken leader connection ends its leadership and another takes
// over with a higher term, and notices reach every instance, also after their connection is lost.
import { Client } from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { postgresAvailability, requireComponent, startTestPostgres, waitFor, type TestDatabase, type TestPostgres } from "#test-support";
import { createSingleCoordination, type Coordination } from "./coordination.js";
import { createPostgresCoordination } from "./postgres-coordination.js";
import { createPostgresStore } from "./postgres-store.js";
import type { Store } from "./store.js";

const availability = postgresAvailability();
const available = requireComponent("PostgreSQL", availability.available, availability.reason);

describe("single coordination", () => {
  it("leads at once for good, and tells its own subscribers", async () => {
    const c = createSingleCoordination({ id: "a", url: "http://127.0.0.1:1" }, () => new Date("2026-11-27T10:00:00Z"));
    const leadership = await c.campaign();
    expect(leadership.term).toBe(1);
    expect(await c.leader()).toEqual({ id: "a", url: "http://127.0.0.1:1", term: 1, since: "2026-11-27T10:00:00.000Z" });
    const heard: Array<string | undefined> = [];
    c.subscribe("routing", (p) => heard.push(p));
    await c.publish("routing", "4");
    await c.publish("other", "5");
    expect(heard).toEqual(["4"]);
    const settled = await Promise.race([leadership.lost.then(() => "lost"), new Promise((r) => setTimeout(() => r("still leading"), 50))]);
    expect(settled).toBe("still leading");
  });
});

describe.runIf(available)("PostgreSQL coordination", () => {
  let server: TestPostgres;
  let db: TestDatabase;
  let store: Store;
  const open: Coordination[] = [];

  beforeAll(async () => {
    server = await startTestPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    db = await server.createDatabase();
    // The store creates the schema and the settings table the leader records itself in.
    store = await createPostgresStore({ url: db.url });
  });
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
    await store.close();
    await db.drop();
  });

  const instance = (name: string): Coordination => {
    const c = createPostgresCoordination({ url: db.url, self: { id: name, url: `http://${name}.test:7070` }, retryMs: 50, heartbeatMs: 200 });
    open.push(c);
    return c;
  };
  /** Ends a server session by its application_name, as a network failure or an admin would. */
  const terminate = async (applicationName: string) => {
    const admin = new Client({ connectionString: db.url });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ ok: boolean }>("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()", [applicationName]);
      return rows.length;
    } finally {
      await admin.end();
    }
  };

  it("elects one leader; another takes over with a higher term when the leader's connection breaks", async () => {
    const a = instance("a");
    const b = instance("b");
    const leadA = await a.campaign();
    expect(leadA.term).toBe(1);
    expect(await b.leader()).toMatchObject({ id: "a", url: "http://a.test:7070", term: 1 });
    const campaignB = b.campaign();
    const early = await Promise.race([campaignB.then(() => "b leads"), new Promise((r) => setTimeout(() => r("b waits"), 400))]);
    expect(early).toBe("b waits");

    expect(await terminate("keelson-leader")).toBe(1);
    expect(await leadA.lost).toMatch(/connection holding leadership/);
    const leadB = await campaignB;
    expect(leadB.term).toBe(2);
    expect(await a.leader()).toMatchObject({ id: "b", term: 2 });
  });

  it("hands over when the leader closes, and a campaign stops when aborted", async () => {
    const a = instance("a");
    const b = instance("b");
    await a.campaign();
    const abort = new AbortController();
    const aborted = b.campaign(abort.signal);
    abort.abort(new Error("stopping"));
    await expect(aborted).rejects.toThrow("stopping");
    const campaignB = b.campaign();
    await a.close();
    expect((await campaignB).term).toBe(2);
  });

  it("delivers notices to every instance, and tells subscribers to read again after their connection came back", async () => {
    const a = instance("a");
    const b = instance("b");
    const heardA: Array<string | undefined> = [];
    const heardB: Array<string | undefined> = [];
    a.subscribe("routing", (p) => heardA.push(p));
    b.subscribe("routing", (p) => heardB.push(p));
    b.subscribe("other", () => heardB.push("wrong topic"));
    // LISTEN starts in the background: publish until both hear.
    await waitFor(async () => {
      await a.publish("routing", "1");
      return heardA.includes("1") && heardB.includes("1");
    }, { what: "both instances hearing a notice" });
    heardB.length = 0;

    await terminate("keelson-listen");
    await waitFor(() => heardB.includes(undefined) && heardA.includes(undefined), { what: "subscribers told to read again" });
    heardB.length = 0;
    await waitFor(async () => {
      await b.publish("routing", "2");
      return heardB.includes("2");
    }, { what: "notices after the reconnect" });
    expect(heardB.every((p) => p === "2")).toBe(true);
  });
});
