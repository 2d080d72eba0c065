// The login screen: paste an API token (`keelson token create`, or `.keelson/token` for the first
// admin); it is checked against GET /v1/status before it is kept.
import { useState } from "preact/hooks";
import { createApi, UnauthorizedError } from "./api.js";

export function Login(props: { onLogIn: (token: string) => void; notice: string | undefined }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    const token = value.trim();
    if (token === "") {
      setError("Paste an API token first.");
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await createApi(token).status();
      props.onLogIn(token);
    } catch (err) {
      setError(err instanceof UnauthorizedError ? "That token was refused: check it and try again." : `The control plane could not be reached: ${(err as Error).message}`);
      setBusy(false);
    }
  }

  const message = error ?? props.notice;
  return (
    <main id="main" class="login">
      <h1>Keelson</h1>
      <form onSubmit={(e) => void submit(e)} aria-describedby="login-help" novalidate>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          aria-invalid={error !== undefined}
          aria-describedby={message === undefined ? undefined : "login-error"}
        />
        <p id="login-help" class="hint">
          A token from <code>keelson token create</code>, or the admin token <code>keelson up</code> wrote to <code>.keelson/token</code>. It is kept in this tab only.
        </p>
        {message !== undefined && (
          <p id="login-error" class="error" role="alert">
            {message}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Checking…" : "Log in"}
        </button>
      </form>
    </main>
  );
}
