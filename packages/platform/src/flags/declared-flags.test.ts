import { describe, expect, it } from "vitest";
import { isKeelsonError } from "@keelson/protocol";
import { createMemoryStore } from "../store/index.js";
import { applyDeclaredFlags, desiredFlagSet, readFlagState } from "./declared-flags.js";
import { createFlagService } from "./flag-service.js";

const flag = (defaultVariant = "off", extra: Record<string, unknown> = {}) => ({ state: "ENABLED" as const, variants: { on: true, off: false }, defaultVariant, ...extra });

function setup() {
  const store = createMemoryStore();
  const flags = createFlagService({ store, project: "shop" });
  const apply = (declaration: Parameters<typeof applyDeclaredFlags>[0]["declaration"]) => applyDeclaredFlags({ flags, store, project: "shop", declaration, actor: "ana" });
  return { store, flags, apply };
}

describe("desiredFlagSet", () => {
  it("sets declared entries, removes those declared before and no longer, keeps the rest", () => {
    const current = { flags: { a: flag(), b: flag(), live: flag("on") }, $evaluators: { old: true, mine: false }, metadata: { team: "web" } };
    const next = desiredFlagSet(current, { flags: { a: flag("on"), c: flag() }, evaluators: { mine: true } }, { flags: ["a", "b"], evaluators: ["old", "mine"] });
    expect(next).toEqual({ flags: { a: flag("on"), live: flag("on"), c: flag() }, $evaluators: { mine: true }, metadata: { team: "web" } });
  });

  it("leaves $evaluators out when none remain", () => {
    expect(desiredFlagSet({ flags: {}, $evaluators: { x: true } }, {}, { flags: [], evaluators: ["x"] })).toEqual({ flags: {} });
    expect(desiredFlagSet({ flags: {} }, {}, { flags: [], evaluators: [] })).toEqual({ flags: {} });
  });
});

describe("applyDeclaredFlags", () => {
  it("makes one revision for every change, with source manifest, and none when nothing differs", async () => {
    const { store, flags, apply } = setup();
    await flags.put("live", flag(), "bo");
    expect(await apply({ flags: { a: flag(), b: flag() } })).toEqual({ revision: 2, created: ["a", "b"], changed: [], removed: [], evaluators: [] });
    const events = await store.listEvents({ project: "shop", kinds: ["flag.created"] });
    expect(events.map((e) => [e.subject, e.actor, e.details.revision, e.details.source])).toEqual([
      ["flag/live", "bo", 1, undefined],
      ["flag/a", "ana", 2, "manifest"],
      ["flag/b", "ana", 2, "manifest"],
    ]);
    expect(await apply({ flags: { b: flag(), a: flag() } })).toEqual({ revision: 2, created: [], changed: [], removed: [], evaluators: [] });
    expect(await apply({ flags: { a: flag("on") } })).toEqual({ revision: 3, created: [], changed: ["a"], removed: ["b"], evaluators: [] });
    expect((await readFlagState({ store, project: "shop" })).declared).toEqual({ flags: ["a"], evaluators: [] });
    expect(Object.keys((await flags.snapshot()).set.flags).sort()).toEqual(["a", "live"]);
  });

  it("refuses a result that is not a valid set, and keeps the last declared keys", async () => {
    const { store, flags, apply } = setup();
    await apply({ flags: { base: flag() } });
    await flags.put("live", flag("off", { prerequisites: [{ flag: "base", variant: "on" }] }), "bo");
    const err = await apply({}).catch((e: unknown) => e);
    expect(isKeelsonError(err) && err.code).toBe("KEELSON_ERR_INVALID_INPUT");
    expect(String((err as Error).message)).toMatch(/flags\.live\.prerequisites\.0\.flag: no flag "base"/);
    expect((await readFlagState({ store, project: "shop" })).declared.flags).toEqual(["base"]);
  });
});
