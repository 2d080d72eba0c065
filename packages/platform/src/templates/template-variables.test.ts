import { describe, expect, it } from "vitest";
import { rejection } from "#test-support";
import { parseTemplateDefinition } from "./template-definition.js";
import type { ServiceTemplate } from "./service-template.js";
import { resolveVariables, type VariableQuestion } from "./template-variables.js";

function template(variables: string): ServiceTemplate {
  const { definition, issues } = parseTemplateDefinition(`description: t\nvariables:\n${variables}\nmanifest: { start: x }\n`, "template.yaml");
  if (!definition) throw new Error(issues.map((i) => i.message).join("\n"));
  return { name: "t", origin: "folder", dir: "/t", definitionFile: "/t/template.yaml", definition, files: [] };
}

const builtins = { name: "orders", owner: "web", project: "shop", path: "services/orders", gateway: "http://127.0.0.1:8080" };
const VARS = `  route: { description: Route, default: "/{{name}}", pattern: "/[a-z/]+" }
  replicas: { description: How many, type: integer, default: 2 }
  tls: { description: TLS, type: boolean, default: false }
  token: { description: A token }
  note: { description: Optional, required: false }`;

describe("template variables", () => {
  it("takes --set values typed, defaults with their placeholders replaced, and \"\" for optional ones", async () => {
    const values = await resolveVariables(template(VARS), { builtins, given: { replicas: "3", tls: "true", token: "abc" } });
    expect(values).toEqual({ ...builtins, route: "/orders", replicas: 3, tls: true, token: "abc", note: "" });
  });

  it("lists every problem at once: unknown and built-in names, values that do not fit, and what is missing", async () => {
    const err = await rejection(resolveVariables(template(VARS), { builtins, given: { rout: "/x", name: "x", replicas: "many", route: "/Bad" } }), "KEELSON_ERR_INVALID_INPUT");
    expect(err.message.split("\n")).toEqual([
      '--set rout: template "t" has no variable "rout"; did you mean `route`?',
      "--set name: \"name\" is set by `keelson new` itself (the service's name)",
      '--set route=/Bad: expected a value matching //[a-z/]+/, got "/Bad"',
      '--set replicas=many: expected an integer, got "many"',
      'template "t" needs a value for token (A token); pass --set token=…, or run in a terminal to be asked',
    ]);
    expect(err.details).toMatchObject({ missing: ["token"] });
  });

  it("says when a default does not fit the values it was made from", async () => {
    const err = await rejection(resolveVariables(template(`  route: { description: Route, default: "/{{name}}", pattern: "/[a-z]{1,3}" }`), { builtins, given: {} }), "KEELSON_ERR_INVALID_INPUT");
    expect(err.message).toBe('route: its default becomes "/orders" here, which does not fit (expected a value matching //[a-z]{1,3}/, got "/orders"); pass --set route=…');
  });

  it("lists a variable whose default uses an earlier variable without a value as needing one, instead of crashing", async () => {
    const vars = `  token: { description: A token }\n  header: { description: Header, default: "Bearer {{token}}" }`;
    const err = await rejection(resolveVariables(template(vars), { builtins, given: {} }), "KEELSON_ERR_INVALID_INPUT");
    expect(err.message).toBe('template "t" needs values for token (A token), header (Header); pass --set token=… --set header=…, or run in a terminal to be asked');
    expect(err.details).toMatchObject({ missing: ["token", "header"] });
    // The same after a --set of the earlier variable that does not fit.
    const invalid = await rejection(resolveVariables(template(`${VARS}\n  label: { description: Label, default: "x{{replicas}}" }`), { builtins, given: { replicas: "many", token: "t" } }), "KEELSON_ERR_INVALID_INPUT");
    expect(invalid.message.split("\n")).toEqual([
      '--set replicas=many: expected an integer, got "many"',
      'template "t" needs a value for label (Label); pass --set label=…, or run in a terminal to be asked',
    ]);
    // A terminal is asked without a suggestion, and Enter is not an answer.
    let label: VariableQuestion | undefined;
    const ask = async (q: VariableQuestion) => {
      if (q.variable.name === "label") label = q;
      return q.variable.name === "token" ? "tok" : "";
    };
    await rejection(resolveVariables(template(`${VARS}\n  label: { description: Label, default: "x{{replicas}}" }`), { builtins, given: { replicas: "many" }, ask }), "KEELSON_ERR_INVALID_INPUT");
    expect(label?.suggestion).toBeUndefined();
    expect(label?.check("")).toBe("a value is needed");
  });

  it("reads a variable named like an Object method (toString, constructor) from its own value, not the prototype", async () => {
    const values = await resolveVariables(template(`  toString: { description: T, default: "{{name}}-text" }\n  constructor: { description: C, type: integer, default: 3 }`), { builtins, given: {} });
    expect(values).toEqual({ ...builtins, toString: "orders-text", constructor: 3 });
  });

  it("asks for what is not set, in order, offering each default with earlier answers filled in", async () => {
    const asked: Array<[string, string | undefined]> = [];
    const answers: Record<string, string> = { route: "/shop/orders", replicas: "", tls: "", token: "tok", note: "" };
    const ask = async (q: VariableQuestion) => {
      asked.push([q.variable.name, q.suggestion]);
      return answers[q.variable.name] ?? "";
    };
    const values = await resolveVariables(template(`${VARS}\n  summary: { description: S, default: "{{route}} x{{replicas}}" }`), { builtins, given: { tls: "true" }, ask });
    expect(asked).toEqual([
      ["route", "/orders"],
      ["replicas", "2"],
      ["token", undefined],
      ["note", undefined],
      ["summary", "/shop/orders x2"],
    ]);
    expect(values).toMatchObject({ route: "/shop/orders", replicas: 2, tls: true, token: "tok", note: "", summary: "/shop/orders x2" });
  });

  it("gives the asker a check that refuses what does not fit", async () => {
    let check: VariableQuestion["check"] | undefined;
    await resolveVariables(template(`  route: { description: Route, default: "/{{name}}", pattern: "/[a-z/]+" }`), {
      builtins,
      given: {},
      ask: async (q) => {
        check = q.check;
        return "";
      },
    });
    expect(check?.("nope")).toBe('expected a value matching //[a-z/]+/, got "nope"');
    expect(check?.("")).toBeUndefined();
  });
});
