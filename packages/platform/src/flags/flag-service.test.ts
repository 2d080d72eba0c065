import { describe, expect, it } from "vitest";
import { KeelsonError } from "@keelson/protocol";
import { createMemoryStore } from "../store/index.js";
import { createFlagService, diffFlag, type FlagSnapshot } from "./flag-service.js";

const checkout = {
  state: "ENABLED",
  variants: { on: true, off: false },
  defaultVariant: "off",
  type: "release",
  owner: "commerce",
  targeting: { if: [{ starts_with: [{ var: "email" }, "qa-"] }, "on", null] },
} as const;

describe("flag service", () => {
  const make = () => {
    const store = createMemoryStore();
    return { store, flags: createFlagService({ store, project: "shop", now: () => new Date("2026-11-26T12:00:00Z") }) };
  };

  it("creates, evaluates, changes and removes flags, each change a new revision with an audit event and a diff", async () => {
    const { store, flags } = make();
    const seen: FlagSnapshot[] = [];
    flags.subscribe((s) => seen.push(s));
    expect((await flags.snapshot()).revision).toBe(0);

    const s1 = await flags.put("new-checkout", checkout, "ana");
    expect(s1.revision).toBe(1);
    expect(s1.compiled.evaluate("new-checkout", { targetingKey: "u1", email: "qa-1@shop.test" })).toMatchObject({ value: true, variant: "on", reason: "TARGETING_MATCH" });
    expect(s1.compiled.evaluate("new-checkout", { targetingKey: "u2", email: "bo@shop.test" })).toMatchObject({ value: false, variant: "off", reason: "DEFAULT" });

    // Putting the same definition again changes nothing.
    expect((await flags.put("new-checkout", checkout, "ana")).revision).toBe(1);
    const s2 = await flags.put("new-checkout", { ...checkout, defaultVariant: "on" }, "bo");
    expect(s2.revision).toBe(2);
    expect(s2.etag).not.toBe(s1.etag);
    const s3 = await flags.remove("new-checkout", "bo");
    expect(s3.set.flags).toEqual({});
    expect(seen.map((s) => s.revision)).toEqual([1, 2, 3]);

    const history = await flags.history("new-checkout");
    expect(history.map((h) => [h.kind, h.actor, h.revision])).toEqual([
      ["flag.deleted", "bo", 3],
      ["flag.changed", "bo", 2],
      ["flag.created", "ana", 1],
    ]);
    expect(history[1]?.diff).toEqual([{ path: "defaultVariant", before: "off", after: "on" }]);
    const events = await store.listEvents({ project: "shop", kinds: ["flag.changed"] });
    expect(events[0]).toMatchObject({ actor: "bo", subject: "flag/new-checkout" });
  });

  it("keeps its state in the store: a new service over the same store sees the same revision", async () => {
    const { store, flags } = make();
    await flags.put("a", checkout, "ana");
    const again = createFlagService({ store, project: "shop" });
    const s = await again.snapshot();
    expect(s.revision).toBe(1);
    expect(Object.keys(s.set.flags)).toEqual(["a"]);
  });

  it("rejects invalid definitions with the path named and keeps the set unchanged", async () => {
    const { flags } = make();
    await flags.put("ok", checkout, "ana");
    const bad = async (def: unknown) => {
      const err = await flags.put("x", def, "ana").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KeelsonError);
      return (err as KeelsonError).message;
    };
    expect(await bad({ state: "ENABLED", variants: { a: 1, b: "two" }, defaultVariant: "a" })).toMatch(/flags\.x\.variants/);
    expect(await bad({ state: "ENABLED", variants: { a: 1 }, defaultVariant: "z" })).toMatch(/flags\.x\.defaultVariant/);
    expect(await bad({ state: "ENABLED", variants: { a: 1 }, defaultVariant: "a", targeting: { nope: [1] } })).toMatch(/flags\.x\.targeting/);
    expect(await bad({ state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "off", prerequisites: [{ flag: "x", variant: "on" }] })).toMatch(/prerequisite|cycle/i);
    await expect(flags.put("bad key!", checkout, "ana")).rejects.toThrow(/flag key "bad key!"/);
    await expect(flags.put("stream", checkout, "ana")).rejects.toThrow(/flag key "stream" is reserved/);
    const s = await flags.snapshot();
    expect(s.revision).toBe(1);
    expect(Object.keys(s.set.flags)).toEqual(["ok"]);
  });

  it("kill turns a flag to its safe variant for everyone; rollback puts the definition back", async () => {
    const { flags } = make();
    await flags.put("new-checkout", { ...checkout, defaultVariant: "on", safeVariant: "off" }, "ana");
    const killed = await flags.kill("new-checkout", "oncall");
    const flag = killed.set.flags["new-checkout"];
    expect(flag?.defaultVariant).toBe("off");
    expect(flag?.targeting).toBeUndefined();
    expect(flag?.metadata).toMatchObject({ killedBy: "oncall" });
    expect(killed.compiled.evaluate("new-checkout", { targetingKey: "u", email: "qa-1@shop.test" })).toMatchObject({ value: false, reason: "STATIC" });

    const [kill, created] = await flags.history("new-checkout");
    expect(kill?.kind).toBe("flag.killed");
    const restored = await flags.rollback("new-checkout", created!.seq, "oncall");
    expect(restored.set.flags["new-checkout"]).toEqual(created!.after);
    // The history says which change a rollback went back to (the dashboard shows it).
    const [rolledBack] = await flags.history("new-checkout", 1);
    expect(rolledBack).toMatchObject({ kind: "flag.changed", actor: "oncall", rollbackTo: created!.seq });
    expect(created).not.toHaveProperty("rollbackTo");
    expect(created).not.toHaveProperty("source");
    await expect(flags.rollback("new-checkout", 999_999, "oncall")).rejects.toThrow(/has no change 999999/);
    await expect(flags.kill("missing", "oncall")).rejects.toThrow(/flag "missing" does not exist/);
  });

  it("replace applies a whole set as one revision with one event per changed flag", async () => {
    const { flags } = make();
    await flags.put("a", checkout, "ana");
    await flags.put("b", checkout, "ana");
    const s = await flags.replace({ flags: { a: checkout, c: { state: "DISABLED", variants: { x: "1" }, defaultVariant: "x" } } }, "import", { source: "flagd.json" });
    expect(s.revision).toBe(3);
    expect(Object.keys(s.set.flags).sort()).toEqual(["a", "c"]);
    expect((await flags.history("b"))[0]?.kind).toBe("flag.deleted");
    expect((await flags.history("c"))[0]?.kind).toBe("flag.created");
    expect(await flags.history("a")).toHaveLength(1);
  });

  it("update changes the set it is given, with no other change in between", async () => {
    const { flags } = make();
    await flags.put("a", checkout, "ana");
    // Queued at once: each update sees the set the one before it left.
    const [first, second] = await Promise.all([
      flags.update((set) => ({ ...set, flags: { ...set.flags, b: checkout } }), "ana"),
      flags.update((set) => ({ ...set, flags: { ...set.flags, c: checkout } }), "bo", { source: "manifest" }),
    ]);
    expect([first.revision, second.revision]).toEqual([2, 3]);
    expect(Object.keys(second.set.flags).sort()).toEqual(["a", "b", "c"]);
    expect((await flags.update((set) => set, "ana")).revision).toBe(3);
  });

  it("diffFlag names the changed paths only", () => {
    expect(diffFlag({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 3] }, d: true })).toEqual([
      { path: "b.c", before: [1, 2], after: [1, 3] },
      { path: "d", after: true },
    ]);
    expect(diffFlag(null, { a: 1 })).toEqual([{ path: "(whole)", before: null, after: { a: 1 } }]);
  });
});
