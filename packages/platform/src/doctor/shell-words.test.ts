import { describe, expect, it } from "vitest";
import { simpleCommands } from "./shell-words.js";

const programs = (text: string) => simpleCommands(text).map((c) => c.program);

describe("simpleCommands", () => {
  it("names the program of each simple command, after assignments, with its arguments", () => {
    expect(simpleCommands("NODE_ENV=test npm ci && npx tsc -p . | tee log.txt")).toEqual([
      { program: "npm", args: ["ci"] },
      { program: "npx", args: ["tsc", "-p", "."] },
      { program: "tee", args: ["log.txt"] },
    ]);
  });

  it("splits at ;, ||, & and newlines but not inside quotes or redirections", () => {
    expect(programs("make build; make test || echo failed & wait\nnode 'a; b' \"c && d\" 2>&1 | grep -v x")).toEqual(["make", "make", "node", "grep"]);
    expect(simpleCommands("npm test 2>&1")).toEqual([{ program: "npm", args: ["test", "2>&1"] }]);
  });

  it("leaves out builtins, keywords, env's settings and words built at run time", () => {
    expect(programs("cd app && export A=1 && env -i B=2 node x.js")).toEqual(["node"]);
    expect(programs("if test -f x; then ./build.sh; else exit 1; fi")).toEqual(["./build.sh"]);
    expect(programs('$BUILD_TOOL --fast && "$(which node)" x.js && `npm bin`/tsc')).toEqual([]);
    expect(programs("( cd a && tsc ) # a comment; rm -rf /")).toEqual(["tsc"]);
    expect(programs("2>/dev/null  jest --ci")).toEqual(["jest"]);
  });
});
