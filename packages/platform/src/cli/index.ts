// The cli domain: the `keelson` command line.
export { buildProgram, main } from "./main.js";
