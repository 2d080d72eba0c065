// The manifest domain: keelson.yaml parsing, validation and its JSON Schema.
export * from "./schema.js";
