// The flag editor: state, default variant, variants and targeting (JSON) and description. JSON is
// checked in the browser first; then the API judges the whole flag, and each issue it names is
// shown beside its field (the issue's path says which), the rest above the form.
import type { FlagDefinition } from "@keelson/protocol";
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { definitionFromDraft, draftOf, isKilled, sameJson, variantNames, type FlagDraft } from "./flag-draft.js";
import { fieldIssues, type FieldIssue, type FlagField } from "./flags-api.js";

export interface FlagEditorProps {
  flagKey: string;
  /** The flag as stored now (it may change while the editor is open). */
  flag: FlagDefinition;
  /** The stored flag's tag (GET's etag), which changes with it. */
  tag: string | undefined;
  /** PUTs the definition if the flag is still the one tagged `ifMatch`; rejects with the API's error (a 409 when it changed). */
  save: (definition: FlagDefinition, ifMatch: string | undefined) => Promise<{ revision: number }>;
  /** Closes the editor, with what to announce when it saved. */
  onClose: (saved?: string) => void;
}

const fieldId = (field: FlagField) => `flag-edit-${field}`;
const errorId = (field: FlagField) => `flag-edit-${field}-error`;

export function FlagEditor(props: FlagEditorProps) {
  const { flagKey, flag, tag, save, onClose } = props;
  const [base, setBase] = useState(flag);
  // The flag this draft started from: the save is refused if the stored flag is another by then.
  const [baseTag, setBaseTag] = useState(tag);
  const [draft, setDraft] = useState<FlagDraft>(() => draftOf(flag));
  const [issues, setIssues] = useState<FieldIssue[]>([]);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  const changedMeanwhile = !sameJson(base, flag);

  useEffect(() => {
    // Opened: the first field has the focus, where a keyboard user expects the form to start.
    form.current?.querySelector<HTMLElement>("select, input, textarea")?.focus();
  }, []);
  useEffect(() => {
    // After a refusal, the first field with a problem gets the focus (the summary is announced).
    if (issues.length > 0) form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [issues]);

  const set = (field: keyof FlagDraft) => (e: Event) => setDraft({ ...draft, [field]: (e.currentTarget as HTMLInputElement).value });

  async function submit(e: Event) {
    e.preventDefault();
    const built = definitionFromDraft(flag, draft);
    if (!built.ok) {
      setIssues(built.issues);
      return;
    }
    if (sameJson(built.definition, flag)) {
      setIssues([]);
      onClose("Nothing to save: the flag is unchanged.");
      return;
    }
    setBusy(true);
    try {
      const { revision } = await save(built.definition, baseTag);
      setIssues([]);
      onClose(`Saved ${flagKey} as revision ${revision}.`);
    } catch (err) {
      setIssues(fieldIssues(err, flagKey) ?? [{ field: "general", path: "", message: (err as Error).message }]);
    } finally {
      setBusy(false);
    }
  }

  const of = (field: FlagField) => issues.filter((i) => i.field === field);
  const general = of("general");
  const names = variantNames(draft, flag);

  return (
    <form ref={form} class="flag-editor" aria-labelledby="flag-editor-heading" onSubmit={(e) => void submit(e)} noValidate>
      <h3 id="flag-editor-heading">Edit {flagKey}</h3>
      {changedMeanwhile ? (
        <p class="flag-notice" role="status">
          Someone changed this flag since you opened the editor: load the latest and redo your change (a save now is refused, so that theirs is not overwritten).{" "}
          <button
            type="button"
            class="quiet"
            onClick={() => {
              setBase(flag);
              setBaseTag(tag);
              setDraft(draftOf(flag));
              setIssues([]);
            }}
          >
            Load the latest
          </button>
        </p>
      ) : null}
      <div aria-live="polite">
        {issues.length > 0 ? (
          <div class="flag-refused" role="alert">
            <p class="error">
              Not saved: {issues.length === 1 ? "1 problem" : `${issues.length} problems`}
              {general.length < issues.length ? " (shown beside the fields)" : ""}. Nothing changed.
            </p>
            {general.length > 0 ? <IssueList id={errorId("general")} issues={general} field="general" /> : null}
          </div>
        ) : null}
      </div>
      <Field field="state" label="State" issues={of("state")} hint="A disabled flag serves its safe variant (or the default) to everyone, without targeting.">
        <select id={fieldId("state")} value={draft.state} onChange={set("state")} {...invalidProps("state", of("state"))}>
          <option value="ENABLED">ENABLED</option>
          <option value="DISABLED">DISABLED</option>
        </select>
      </Field>
      <Field field="defaultVariant" label="Default variant" issues={of("defaultVariant")} hint="Served when no targeting rule decides.">
        <select id={fieldId("defaultVariant")} value={draft.defaultVariant} onChange={set("defaultVariant")} {...invalidProps("defaultVariant", of("defaultVariant"))}>
          {names.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </Field>
      <Field field="variants" label="Variants (JSON)" issues={of("variants")} hint="Variant name → value; every value of one type.">
        <textarea id={fieldId("variants")} class="json" rows={Math.min(12, draft.variants.split("\n").length + 1)} spellcheck={false} value={draft.variants} onInput={set("variants")} {...invalidProps("variants", of("variants"))} />
      </Field>
      <Field field="targeting" label="Targeting (JsonLogic)" issues={of("targeting")} hint='Empty for none. flagd operators: fractional, sem_ver, starts_with, ends_with, $ref; e.g. {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]}'>
        <textarea id={fieldId("targeting")} class="json" rows={Math.min(16, Math.max(4, draft.targeting.split("\n").length + 1))} spellcheck={false} value={draft.targeting} onInput={set("targeting")} {...invalidProps("targeting", of("targeting"))} />
      </Field>
      <Field field="description" label="Description" issues={of("description")} hint="What the flag does, shown in the flag list.">
        <input id={fieldId("description")} type="text" value={draft.description} onInput={set("description")} autoComplete="off" {...invalidProps("description", of("description"))} />
      </Field>
      {isKilled(flag) ? <p class="hint">Saving clears the kill switch's marks (killedAt, killedBy) from the metadata.</p> : null}
      <p class="flag-editor-buttons">
        <button type="submit" disabled={busy}>
          {busy ? "Saving…" : "Save flag"}
        </button>{" "}
        <button type="button" class="quiet" onClick={() => onClose()}>
          Cancel
        </button>
      </p>
    </form>
  );
}

function invalidProps(field: FlagField, issues: FieldIssue[]) {
  const hintId = `${fieldId(field)}-hint`;
  return issues.length > 0 ? { "aria-invalid": true, "aria-describedby": `${errorId(field)} ${hintId}` } : { "aria-describedby": hintId };
}

function Field(props: { field: FlagField; label: string; issues: FieldIssue[]; hint: string; children: ComponentChildren }) {
  const { field, label, issues, hint, children } = props;
  return (
    <div class={`flag-field${issues.length > 0 ? " invalid" : ""}`} data-field={field}>
      <label for={fieldId(field)}>{label}</label>
      {children}
      {issues.length > 0 ? <IssueList id={errorId(field)} issues={issues} field={field} /> : null}
      <p class="hint" id={`${fieldId(field)}-hint`}>
        {hint}
      </p>
    </div>
  );
}

function IssueList(props: { id: string; issues: FieldIssue[]; field: FlagField }) {
  return (
    <ul id={props.id} class="field-error" data-error-for={props.field}>
      {props.issues.map((i) => (
        <li key={`${i.path}|${i.message}`}>
          {i.path === "" ? null : (
            <>
              <code>{i.path}</code>:{" "}
            </>
          )}
          {i.message}
        </li>
      ))}
    </ul>
  );
}
