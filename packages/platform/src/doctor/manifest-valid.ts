// Checks that the project's manifest loads: valid YAML, schema and rules, shared pipeline files
// included; every problem is listed, as `keelson validate` does.
import { isKeelsonError } from "@keelson/protocol";
import { formatManifestIssue, loadManifest, type LoadedManifest, type ManifestIssue } from "../manifest/index.js";
import { fail, pass, type CheckResult } from "./check-result.js";

/** The manifest check's line, and the manifest when it is valid (the other checks need it). */
export async function checkManifest(dir: string): Promise<{ results: CheckResult[]; loaded?: LoadedManifest }> {
  try {
    const loaded = await loadManifest(dir);
    const n = Object.keys(loaded.manifest.services).length;
    const shared = loaded.sharedFiles.length === 0 ? "" : `, pipeline templates from ${loaded.sharedFiles.join(", ")}`;
    return { results: [pass("manifest", `${loaded.file} is valid: project "${loaded.manifest.project}", ${n} service${n === 1 ? "" : "s"}${shared}`)], loaded };
  } catch (err) {
    if (!isKeelsonError(err)) throw err;
    if (err.code === "KEELSON_ERR_MANIFEST_NOT_FOUND") return { results: [fail("manifest", err.message, "run `keelson init` to write one, or point doctor at the project folder")] };
    if (err.code === "KEELSON_ERR_MANIFEST_INVALID") {
      const issues = ((err.details as { issues?: ManifestIssue[] } | undefined)?.issues ?? []).map(formatManifestIssue);
      const lines = issues.length > 0 ? issues : err.message.split("\n");
      return { results: [fail("manifest", `the manifest has ${lines.length} problem${lines.length === 1 ? "" : "s"}`, "fix each place listed; `keelson validate` checks again", lines)] };
    }
    return { results: [fail("manifest", err.message, "check that the manifest can be read by this user")] };
  }
}
