// Scheduled flag changes with a memory store and a hand-moved clock: checked when scheduled,
// applied when due through the flag service (actor schedule:<who>, event details scheduled: <id>),
// cancelled, recorded as failed when they no longer validate, and overdue ones applied on start.
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "#test-support";
import { createMemoryStore, type Store } from "../store/index.js";
import { createFlagService, type FlagService } from "./flag-service.js";
import { createFlagSchedule, type FlagSchedule } from "./flag-schedule.js";

const HOUR = 3_600_000;
const checkout = { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", safeVariant: "off", targeting: { fractional: [["on", 10], ["off", 90]] } };

const schedules: FlagSchedule[] = [];
afterEach(async () => {
  await Promise.all(schedules.splice(0).map((s) => s.close()));
});

function setup(shared?: Store, start = Date.parse("2026-11-26T12:00:00Z")) {
  let t = start;
  const store = shared ?? createMemoryStore({ now: () => t });
  const clock = { now: () => new Date(t), advance: (ms: number) => (t += ms), set: (ms: number) => (t = ms) };
  const flags = createFlagService({ store, project: "shop", now: clock.now });
  const make = (f: FlagService = flags, intervalMs = 60_000) => {
    const s = createFlagSchedule({ store, project: "shop", flags: f, now: clock.now, intervalMs });
    schedules.push(s);
    return s;
  };
  return { clock, store, flags, schedule: make(), make };
}

const at = (ms: number) => new Date(ms).toISOString();

describe("scheduled flag changes", () => {
  it("applies due changes in time order through the flag service, with the scheduler as actor and the id in the event", async () => {
    const { clock, store, flags, schedule } = setup();
    await flags.put("checkout", checkout, "ana");
    const t0 = clock.now().getTime();
    const full = await schedule.add({ flag: "checkout", at: at(t0 + 2 * HOUR), action: "set", definition: { ...checkout, targeting: { fractional: [["on", 100], ["off", 0]] } } }, "ana");
    const off = await schedule.add({ flag: "checkout", at: "2026-11-26T13:00:00+00:00", action: "disable" }, "bo");
    expect(off).toEqual({ id: "sch-2", flag: "checkout", at: "2026-11-26T13:00:00.000Z", action: "disable", by: "bo", createdAt: "2026-11-26T12:00:00.000Z" });
    expect((await schedule.list()).map((c) => c.id)).toEqual(["sch-2", "sch-1"]);
    expect(JSON.parse((await store.getSetting("flags-scheduled.shop")) as string)).toMatchObject({ nextId: 3, changes: [{ id: "sch-1", by: "ana" }, { id: "sch-2", by: "bo" }] });

    expect(await schedule.applyDue()).toEqual({ applied: [], failed: [] });
    clock.advance(HOUR);
    expect((await schedule.applyDue()).applied.map((c) => c.id)).toEqual(["sch-2"]);
    expect((await flags.snapshot()).set.flags.checkout?.state).toBe("DISABLED");
    clock.advance(HOUR);
    expect((await schedule.applyDue()).applied).toEqual([full]);
    expect((await flags.snapshot()).set.flags.checkout).toMatchObject({ state: "ENABLED", targeting: { fractional: [["on", 100], ["off", 0]] } });
    expect(await schedule.list()).toEqual([]);

    const history = await flags.history("checkout");
    expect(history.map((c) => [c.actor, c.at])).toEqual([
      ["schedule:ana", "2026-11-26T14:00:00.000Z"],
      ["schedule:bo", "2026-11-26T13:00:00.000Z"],
      ["ana", "2026-11-26T12:00:00.000Z"],
    ]);
    const events = await store.listEvents({ project: "shop", subject: "flag/checkout" });
    expect(events.map((e) => [e.kind, e.actor, e.details.scheduled ?? e.details.id])).toEqual([
      ["flag.created", "ana", undefined],
      ["flag.scheduled", "ana", "sch-1"],
      ["flag.scheduled", "bo", "sch-2"],
      ["flag.changed", "schedule:bo", "sch-2"],
      ["flag.changed", "schedule:ana", "sch-1"],
    ]);
  });

  it("kills and enables when due, and may enable a flag that an earlier scheduled change creates", async () => {
    const { clock, flags, schedule } = setup();
    await flags.put("checkout", checkout, "ana");
    const t0 = clock.now().getTime();
    await schedule.add({ flag: "checkout", at: at(t0 + HOUR), action: "kill" }, "ana");
    await expect(schedule.add({ flag: "banner", at: at(t0 + HOUR), action: "enable" }, "ana")).rejects.toThrow(/flag "banner" does not exist/);
    await schedule.add({ flag: "banner", at: at(t0 + HOUR), action: "set", definition: { state: "DISABLED", variants: { a: "hi", b: "sale" }, defaultVariant: "b" } }, "ana");
    await schedule.add({ flag: "banner", at: at(t0 + 2 * HOUR), action: "enable" }, "ana");
    clock.advance(3 * HOUR);
    const run = await schedule.applyDue();
    expect(run.failed).toEqual([]);
    expect(run.applied.map((c) => [c.flag, c.action])).toEqual([
      ["checkout", "kill"],
      ["banner", "set"],
      ["banner", "enable"],
    ]);
    const set = (await flags.snapshot()).set.flags;
    expect(set.checkout).toMatchObject({ defaultVariant: "off", metadata: { killedBy: "schedule:ana" } });
    expect(set.checkout?.targeting).toBeUndefined();
    expect(set.banner?.state).toBe("ENABLED");
  });

  it("refuses at scheduling time what would not apply now: bad times, past times, invalid definitions", async () => {
    const { clock, schedule, flags } = setup();
    await flags.put("checkout", checkout, "ana");
    const later = at(clock.now().getTime() + HOUR);
    await expect(schedule.add({ flag: "checkout", at: "tomorrow", action: "kill" }, "ana")).rejects.toThrow(/at: expected an ISO time with a zone/);
    await expect(schedule.add({ flag: "checkout", at: "2026-11-27T09:00:00", action: "kill" }, "ana")).rejects.toThrow(/with a zone/);
    await expect(schedule.add({ flag: "checkout", at: "2026-11-26T11:00:00Z", action: "kill" }, "ana")).rejects.toThrow(/is not in the future/);
    await expect(schedule.add({ flag: "checkout", at: later, action: "set", definition: { ...checkout, defaultVariant: "maybe" } }, "ana")).rejects.toThrow(/flags\.checkout\.defaultVariant/);
    await expect(schedule.add({ flag: "checkout", at: later, action: "set" }, "ana")).rejects.toThrow(/needs the flag's definition/);
    await expect(schedule.add({ flag: "checkout", at: later, action: "kill", definition: checkout }, "ana")).rejects.toThrow(/only action "set" takes a definition/);
    await expect(schedule.add({ flag: "-bad", at: later, action: "kill" }, "ana")).rejects.toThrow(/is not a flag key/);
    expect(await schedule.list()).toEqual([]);
  });

  it("cancels a pending change, which then never applies", async () => {
    const { clock, store, flags, schedule } = setup();
    await flags.put("checkout", checkout, "ana");
    const c = await schedule.add({ flag: "checkout", at: at(clock.now().getTime() + HOUR), action: "disable" }, "ana");
    expect(await schedule.cancel(c.id, "bo")).toEqual(c);
    await expect(schedule.cancel(c.id, "bo")).rejects.toThrow(/no scheduled change "sch-1"/);
    clock.advance(2 * HOUR);
    expect(await schedule.applyDue()).toEqual({ applied: [], failed: [] });
    expect((await flags.snapshot()).set.flags.checkout?.state).toBe("ENABLED");
    const [cancelled] = await store.listEvents({ project: "shop", kinds: ["flag.schedule-cancelled"] });
    expect(cancelled).toMatchObject({ actor: "bo", subject: "flag/checkout", details: { id: "sch-1", action: "disable", by: "ana" } });
  });

  it("records a change that no longer validates when due as failed and does not apply it", async () => {
    const { clock, store, flags, schedule } = setup();
    await flags.put("checkout", checkout, "ana");
    await flags.put("banner", { state: "ENABLED", variants: { a: 1, b: 2 }, defaultVariant: "a" }, "ana");
    const t0 = clock.now().getTime();
    // Valid now; but by the time it is due, the flag it needs is gone.
    await schedule.add({ flag: "checkout", at: at(t0 + HOUR), action: "set", definition: { ...checkout, prerequisites: [{ flag: "banner", variant: "b" }] } }, "ana");
    await schedule.add({ flag: "banner", at: at(t0 + HOUR), action: "enable" }, "ana");
    await flags.remove("banner", "bo");
    const revision = (await flags.snapshot()).revision;
    clock.advance(HOUR);
    const run = await schedule.applyDue();
    expect(run.applied).toEqual([]);
    expect(run.failed.map((f) => [f.change.id, f.error.code])).toEqual([
      ["sch-1", "KEELSON_ERR_INVALID_INPUT"],
      ["sch-2", "KEELSON_ERR_NOT_FOUND"],
    ]);
    expect(run.failed[0]?.error.message).toMatch(/prerequisites/);
    expect((await flags.snapshot()).revision).toBe(revision);
    expect(await schedule.list()).toEqual([]);
    const failed = await store.listEvents({ project: "shop", kinds: ["flag.schedule-failed"] });
    expect(failed.map((e) => [e.subject, e.actor, e.details.id, (e.details.error as { code: string }).code])).toEqual([
      ["flag/checkout", "schedule:ana", "sch-1", "KEELSON_ERR_INVALID_INPUT"],
      ["flag/banner", "schedule:ana", "sch-2", "KEELSON_ERR_NOT_FOUND"],
    ]);
  });

  it("keeps a change whose application failed for another reason (the store) for the next pass", async () => {
    const { clock, store, flags, schedule, make } = setup();
    await flags.put("checkout", checkout, "ana");
    await schedule.add({ flag: "checkout", at: at(clock.now().getTime() + HOUR), action: "disable" }, "ana");
    clock.advance(HOUR);
    let broken = true;
    const flaky: FlagService = { ...flags, update: (...args) => (broken ? Promise.reject(new Error("disk full")) : flags.update(...args)) };
    const other = make(flaky);
    await expect(other.applyDue()).rejects.toThrow(/disk full/);
    expect((await other.list()).map((c) => c.id)).toEqual(["sch-1"]);
    broken = false;
    expect((await other.applyDue()).applied.map((c) => c.id)).toEqual(["sch-1"]);
    expect(await store.listEvents({ project: "shop", kinds: ["flag.schedule-failed"] })).toEqual([]);
  });

  it("applies what became overdue while no control plane ran as soon as it starts, then keeps checking on its timer", async () => {
    const store = createMemoryStore();
    const first = setup(store);
    await first.flags.put("checkout", checkout, "ana");
    const t0 = first.clock.now().getTime();
    await first.schedule.add({ flag: "checkout", at: at(t0 + HOUR), action: "disable" }, "ana");
    await first.schedule.add({ flag: "checkout", at: at(t0 + 3 * HOUR), action: "enable" }, "ana");
    await first.schedule.close();

    // A restart two hours later, checking every 10 ms.
    const second = setup(store, t0 + 2 * HOUR);
    const schedule = second.make(second.flags, 10);
    await schedule.start();
    expect((await second.flags.snapshot()).set.flags.checkout?.state).toBe("DISABLED");
    expect((await schedule.list()).map((c) => c.action)).toEqual(["enable"]);
    second.clock.advance(HOUR);
    await waitFor(async () => (await second.flags.snapshot()).set.flags.checkout?.state === "ENABLED", { what: "the timer applying the enable" });
    expect(await schedule.list()).toEqual([]);
  });
});
