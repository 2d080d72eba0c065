// A flag's change history, newest first: who changed it, when, how (an edit, the kill switch,
// `keelson up`, a rollback), the diff of each change, and "Roll back to this version" for a role
// that may change the flag.
import { ConfirmAction } from "./confirm-action.js";
import { changeTitle, diffLines, formatValueLong, SHORT_VALUE } from "./flag-diff.js";
import type { FlagChange, FlagDiffEntry } from "./flags-api.js";

export interface FlagHistoryProps {
  flagKey: string;
  changes: FlagChange[];
  /** Present for a role that may change the flag: puts back the definition after change `seq`. */
  rollback: ((seq: number) => Promise<string>) | undefined;
}

export function FlagHistory(props: FlagHistoryProps) {
  const { flagKey, changes, rollback } = props;
  if (changes.length === 0) return <p>No recorded changes.</p>;
  return (
    <ol class="flag-history">
      {changes.map((c, i) => (
        <li key={c.seq} data-seq={c.seq}>
          <p class="flag-change-head">
            <span class={`flag-change-kind ${c.kind.replace("flag.", "")}`}>{changeTitle(c)}</span> <span class="muted">by</span> <span data-field="actor">{c.actor}</span> <span class="muted">·</span>{" "}
            <time dateTime={c.at}>{new Date(c.at).toLocaleString()}</time> <span class="muted">· change {c.seq}, revision {c.revision}</span>
          </p>
          <Diff entries={c.diff} />
          {/* The newest change is the current definition; a deletion has none to put back. */}
          {rollback !== undefined && i > 0 && c.after !== null ? (
            <ConfirmAction
              label="Roll back to this version"
              question={
                <>
                  Put {flagKey} back to its definition after change {c.seq} ({new Date(c.at).toLocaleString()})?
                </>
              }
              confirmLabel="Confirm roll back"
              busyLabel="Rolling back…"
              run={() => rollback(c.seq)}
            />
          ) : null}
        </li>
      ))}
    </ol>
  );
}

function Diff(props: { entries: FlagDiffEntry[] }) {
  const lines = diffLines(props.entries);
  if (lines.length === 0) return <p class="muted flag-diff-empty">No difference in the definition.</p>;
  return (
    <ul class="flag-diff" aria-label="Changes">
      {lines.map((l, i) => {
        const entry = props.entries[i] as FlagDiffEntry;
        return (
          <li key={l.path} data-path={l.path} class={l.kind}>
            <code class="flag-diff-path">{l.path}</code>{" "}
            {l.kind === "added" ? (
              <>
                <span class="muted">added</span> <Value kind="after" text={l.after} value={entry.after} />
              </>
            ) : l.kind === "removed" ? (
              <>
                <span class="muted">removed</span> <Value kind="before" text={l.before} value={entry.before} />
              </>
            ) : (
              <>
                <Value kind="before" text={l.before} value={entry.before} /> <span aria-hidden="true">→</span>
                <span class="flag-sr"> became </span> <Value kind="after" text={l.after} value={entry.after} />
              </>
            )}
          </li>
        );
      })}
    </ul>
  );
}

/** A value of the diff: inline when short, folded with the whole (pretty) JSON on demand when long. */
function Value(props: { kind: "before" | "after"; text: string | undefined; value: unknown }) {
  const { kind, text = "", value } = props;
  const Tag = kind === "before" ? "del" : "ins";
  if (text.length <= SHORT_VALUE) {
    return (
      <Tag class={`flag-diff-${kind}`}>
        <code>{text}</code>
      </Tag>
    );
  }
  return (
    <Tag class={`flag-diff-${kind}`}>
      <details>
        <summary>
          <code>{`${text.slice(0, SHORT_VALUE - 1)}…`}</code>
        </summary>
        <pre>{formatValueLong(value)}</pre>
      </details>
    </Tag>
  );
}
