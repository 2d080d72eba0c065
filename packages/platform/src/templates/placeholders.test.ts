import { describe, expect, it } from "vitest";
import { FILTERS, renderPlaceholders, scanPlaceholders, solePlaceholder } from "./placeholders.js";

const known = new Set(["name", "route", "port"]);

describe("placeholders", () => {
  it("replaces variables, with or without spaces, and leaves the rest of the text alone", () => {
    expect(renderPlaceholders("path: services/{{name}}\nroute: {{ route }}/x {}", { name: "orders", route: "/api" })).toBe("path: services/orders\nroute: /api/x {}");
  });

  it("applies filters left to right", () => {
    const values = { name: "order-history" };
    expect(renderPlaceholders("{{name|snake}} {{ name | constant }} {{name | camel}} {{name|pascal}} {{name | title}} {{name|upper}}", values)).toBe(
      "order_history ORDER_HISTORY orderHistory OrderHistory Order History ORDER-HISTORY",
    );
    expect(renderPlaceholders("{{ name | pascal | kebab }}", values)).toBe("order-history");
    expect(renderPlaceholders('const x = {{ name | json }};', { name: 'say "hi"\\' })).toBe('const x = "say \\"hi\\"\\\\";');
    expect(renderPlaceholders("<h1>{{ name | html }}</h1>", { name: `<b>&"'` })).toBe("<h1>&#60;b&#62;&#38;&#34;&#39;</h1>");
    expect(FILTERS.json(3)).toBe("3");
    expect(renderPlaceholders('{ "d": "{{ name | escaped }}" }', { name: 'a "b"\\' })).toBe('{ "d": "a \\"b\\"\\\\" }');
  });

  it("writes \\{{ as a literal {{ and never looks inside it", () => {
    expect(renderPlaceholders("style=\\{{ color: red }}", {})).toBe("style={{ color: red }}");
    expect(scanPlaceholders("a \\{{ b }} c", known).issues).toEqual([]);
  });

  it("reports malformed and unclosed placeholders, unknown filters and unknown variables at their line and column", () => {
    const text = ["first line", "  x = {{ nmae }};", "  y = {{ name | shout }}", "  z = {{ 1 + 2 }}", "  w = {{ name", "  }}"].join("\n");
    const { issues } = scanPlaceholders(text, known, (w) => (w === "nmae" ? "name" : undefined));
    expect(issues).toEqual([
      { line: 2, column: 7, message: 'unknown variable "nmae" in {{ nmae }}', hint: "did you mean `name`?" },
      { line: 3, column: 7, message: 'unknown filter "shout" in {{ name | shout }}', hint: expect.stringContaining("filters: lower, upper") as string },
      { line: 4, column: 7, message: "malformed placeholder {{ 1 + 2 }}: expected {{ variable }} or {{ variable | filter }}", hint: "write \\{{ for a literal {{" },
      { line: 5, column: 7, message: "`{{` without a closing `}}` on the same line", hint: "write \\{{ for a literal {{" },
    ]);
  });

  it("lists the known variables when no name is close", () => {
    expect(scanPlaceholders("{{ zzz }}", known).issues[0]?.hint).toBe("variables: name, route, port");
  });

  it("refuses to render a text with a problem instead of leaving a placeholder in the output", () => {
    expect(() => renderPlaceholders("{{ missing }}", { name: "x" })).toThrow('no value for "missing"');
    expect(() => renderPlaceholders("{{ oops", {})).toThrow("without a closing");
    // Only a record's own values count: not Object.prototype's toString.
    expect(() => renderPlaceholders("{{ toString }}", {})).toThrow('no value for "toString"');
  });

  it("tells a text that is exactly one placeholder", () => {
    expect(solePlaceholder("{{ port }}")).toMatchObject({ variable: "port", filters: [] });
    expect(solePlaceholder("{{port}}x")).toBeUndefined();
    expect(solePlaceholder("x")).toBeUndefined();
  });
});
