// A button for a change that needs a second thought (kill switch, rollback): it asks inline, runs
// on confirmation and announces the outcome, or the API's refusal.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

export interface ConfirmActionProps {
  label: string;
  /** What confirming will do, in a sentence. */
  question: ComponentChildren;
  confirmLabel: string;
  busyLabel: string;
  /** Does the change; resolves with what to announce. */
  run: () => Promise<string>;
  /** A red button for changes that take effect for every user at once. */
  danger?: boolean;
  /** Where the outcome goes instead of under the button (a row of buttons keeps its layout). */
  announce?: (outcome: { ok: boolean; text: string }) => void;
}

export function ConfirmAction(props: ConfirmActionProps) {
  const { label, question, confirmLabel, busyLabel, run, danger = false, announce } = props;
  const [step, setStep] = useState<"idle" | "confirm" | "busy">("idle");
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const confirmButton = useRef<HTMLButtonElement>(null);
  const trigger = useRef<HTMLButtonElement>(null);
  const last = useRef(step);
  useEffect(() => {
    // Into the question when it opens; back to the button after Cancel or once the change is done,
    // so that a keyboard user does not start again from the top of the page.
    if (step === "confirm") confirmButton.current?.focus();
    else if (step === "idle" && last.current !== "idle") trigger.current?.focus();
    last.current = step;
  }, [step]);

  async function confirm() {
    setStep("busy");
    let result: { ok: boolean; text: string };
    try {
      result = { ok: true, text: await run() };
    } catch (err) {
      result = { ok: false, text: (err as Error).message };
    }
    if (announce) announce(result);
    else setOutcome(result);
    setStep("idle");
  }
  return (
    <div class="confirm-action">
      {step === "confirm" ? (
        <p role="group" aria-label={`Confirm: ${label}`} class="confirm-question">
          {question}{" "}
          <button type="button" ref={confirmButton} class={danger ? "danger" : undefined} onClick={() => void confirm()}>
            {confirmLabel}
          </button>{" "}
          <button type="button" class="quiet" onClick={() => setStep("idle")}>
            Cancel
          </button>
        </p>
      ) : (
        <button type="button" ref={trigger} class={danger ? "danger" : "quiet"} disabled={step === "busy"} onClick={() => (setOutcome(undefined), setStep("confirm"))}>
          {step === "busy" ? busyLabel : label}
        </button>
      )}
      {/* The status region stays in the page, so that screen readers announce its text when it
          changes; a refusal is an alert, which is announced when it appears. */}
      <p class={outcome?.ok === true ? "confirm-outcome ok" : "confirm-outcome"} role="status">
        {outcome?.ok === true ? outcome.text : ""}
      </p>
      {outcome?.ok === false ? (
        <p class="error" role="alert">
          {outcome.text}
        </p>
      ) : null}
    </div>
  );
}
