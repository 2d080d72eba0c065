// The dashboard's SSE parser and hash router: pure functions, tested without a browser.
import { describe, expect, it } from "vitest";
import { createSseParser, type SseMessage } from "./event-stream.js";
import { flagHref, parseHash, serviceHref } from "./router.js";

function parse(chunks: string[]): SseMessage[] {
  const out: SseMessage[] = [];
  const parser = createSseParser((m) => out.push(m));
  for (const c of chunks) parser.push(c);
  return out;
}

describe("createSseParser", () => {
  it("joins messages split anywhere across chunks, skips comments, keeps the last id", () => {
    const text = ': after 4\n\nid: 5\nevent: keelson\ndata: {"seq":5}\n\n: heartbeat\n\nid: 6\nevent: keelson\ndata: {"seq":6}\n\n';
    const expected = [
      { event: "keelson", data: '{"seq":5}', id: "5" },
      { event: "keelson", data: '{"seq":6}', id: "6" },
    ];
    expect(parse([text])).toEqual(expected);
    for (let cut = 1; cut < text.length; cut += 7) expect(parse([text.slice(0, cut), text.slice(cut)]), `cut at ${cut}`).toEqual(expected);
  });

  it("takes CRLF and CR line ends, multi-line data and a missing event name", () => {
    // A chunk's last CR may be half a CRLF: it counts once the next chunk shows it is not.
    expect(parse(["data: a\r\ndata: b\r", "\n\r\n", "data:c\r\r"])).toHaveLength(1);
    expect(parse(["data: a\r\ndata: b\r", "\n\r\n", "data:c\r\r", ": heartbeat\n\n"])).toEqual([
      { event: "message", data: "a\nb", id: undefined },
      { event: "message", data: "c", id: undefined },
    ]);
  });

  it("sends nothing for an unfinished message", () => {
    expect(parse(["event: keelson\ndata: {}\n"])).toEqual([]);
  });
});

describe("parseHash", () => {
  it("knows the overview and service views, and falls back to the overview", () => {
    expect(parseHash("")).toEqual({ name: "overview" });
    expect(parseHash("#/")).toEqual({ name: "overview" });
    expect(parseHash("#/services/api")).toEqual({ name: "service", service: "api" });
    expect(parseHash(serviceHref("a b"))).toEqual({ name: "service", service: "a b" });
    expect(parseHash("#/services/%E0%A4%A")).toEqual({ name: "overview" });
    expect(parseHash("#/nowhere")).toEqual({ name: "overview" });
    expect(parseHash("#/constructor")).toEqual({ name: "overview" });
  });

  it("knows each section and one flag", () => {
    for (const name of ["deploys", "traces", "map", "flags", "dora", "audit"]) expect(parseHash(`#/${name}`)).toEqual({ name });
    expect(parseHash(flagHref("new-checkout"))).toEqual({ name: "flag", key: "new-checkout" });
    expect(parseHash("#/traces/0123456789ABCDEF0123456789abcdef")).toEqual({ name: "trace", traceId: "0123456789abcdef0123456789abcdef" });
  });
});
