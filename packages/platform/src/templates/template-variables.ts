// The values of a template's variables for one service: the built-ins, then each declared
// variable in order from --set, an answer to a prompt, or its default. Every problem is found
// before anything is written and reported at once.
import { KeelsonError } from "@keelson/protocol";
import { didYouMean } from "../manifest/index.js";
import { renderPlaceholders, scanPlaceholders, type TemplateValue } from "./placeholders.js";
import { BUILTIN_VARIABLES, parseValue, valueProblem, type BuiltinVariable, type TemplateVariable } from "./template-definition.js";
import type { ServiceTemplate } from "./service-template.js";

/** One question to the person running `keelson new` in a terminal. */
export interface VariableQuestion {
  variable: TemplateVariable;
  /** What Enter accepts: the default, with its placeholders replaced. */
  suggestion: string | undefined;
  /** The problem with an answer (already defaulted when empty), or undefined when it will do. */
  check(answer: string): string | undefined;
}

/** Asks one question and resolves with the answer as typed ("" for Enter); it asks again itself while `check` finds a problem. */
export type Asker = (question: VariableQuestion) => Promise<string>;

export interface ResolveVariablesInput {
  builtins: Record<BuiltinVariable, string>;
  /** From `--set name=value`. */
  given: Readonly<Record<string, string>>;
  /** Present when there is someone to ask (a terminal): variables not given are asked for. */
  ask?: Asker;
}

/**
 * Every variable's value. Throws one KEELSON_ERR_INVALID_INPUT listing unknown or built-in
 * names given, values that do not fit, and required variables that have no value.
 *
 * @example
 * const values = await resolveVariables(template, { builtins, given: { route: "/api/hello" } });
 */
export async function resolveVariables(template: ServiceTemplate, input: ResolveVariablesInput): Promise<Record<string, TemplateValue>> {
  const values: Record<string, TemplateValue> = { ...input.builtins };
  const problems: string[] = [];
  const declared = template.definition.variables;
  const names = declared.map((v) => v.name);
  for (const key of Object.keys(input.given)) {
    if (Object.hasOwn(BUILTIN_VARIABLES, key)) problems.push(`--set ${key}: "${key}" is set by \`keelson new\` itself (${BUILTIN_VARIABLES[key as BuiltinVariable]})`);
    else if (!names.includes(key)) {
      const close = didYouMean(key, names);
      problems.push(`--set ${key}: template "${template.name}" has no variable "${key}"; ${close ? `did you mean \`${close}\`?` : names.length > 0 ? `its variables: ${names.join(", ")}` : "it has no variables"}`);
    }
  }
  const missing: TemplateVariable[] = [];
  for (const v of declared) {
    const suggestion = defaultValue(v, values);
    // A variable with a default but no suggestion needs a value: an earlier variable its default uses has none.
    const needed = v.required || v.default !== undefined;
    const given = Object.hasOwn(input.given, v.name) ? input.given[v.name] : undefined;
    if (given !== undefined) {
      const value = parseValue(v, given);
      const wrong = valueProblem(v, value);
      if (wrong !== undefined) problems.push(`--set ${v.name}=${given}: ${wrong}`);
      else values[v.name] = value;
      continue;
    }
    const check = (answer: string): string | undefined => {
      const raw = answer === "" ? suggestion : answer;
      if (raw === undefined) return needed ? "a value is needed" : undefined;
      return valueProblem(v, parseValue(v, raw));
    };
    if (input.ask) {
      const answer = await input.ask({ variable: v, suggestion, check });
      const raw = answer === "" ? suggestion : answer;
      const wrong = check(answer);
      if (wrong !== undefined) problems.push(`${v.name}: ${wrong}`);
      else values[v.name] = raw === undefined ? "" : parseValue(v, raw);
      continue;
    }
    if (suggestion !== undefined) {
      const value = parseValue(v, suggestion);
      const wrong = valueProblem(v, value);
      if (wrong !== undefined) problems.push(`${v.name}: its default becomes ${JSON.stringify(suggestion)} here, which does not fit (${wrong}); pass --set ${v.name}=…`);
      else values[v.name] = value;
    } else if (needed) {
      missing.push(v);
    } else {
      values[v.name] = "";
    }
  }
  if (missing.length > 0) {
    problems.push(
      `template "${template.name}" needs ${missing.length === 1 ? "a value" : "values"} for ${missing.map((v) => `${v.name} (${v.description})`).join(", ")}; pass ${missing.map((v) => `--set ${v.name}=…`).join(" ")}, or run in a terminal to be asked`,
    );
  }
  if (problems.length > 0) {
    throw new KeelsonError("KEELSON_ERR_INVALID_INPUT", problems.join("\n"), { details: { template: template.name, problems, missing: missing.map((v) => v.name) } });
  }
  return values;
}

/** A variable's default with its placeholders replaced; undefined without one, or when a variable it uses has no value. */
function defaultValue(v: TemplateVariable, values: Readonly<Record<string, TemplateValue>>): string | undefined {
  if (v.default === undefined) return undefined;
  if (typeof v.default !== "string") return String(v.default);
  const uses = scanPlaceholders(v.default, new Set()).placeholders;
  return uses.every((p) => Object.hasOwn(values, p.variable)) ? renderPlaceholders(v.default, values) : undefined;
}
