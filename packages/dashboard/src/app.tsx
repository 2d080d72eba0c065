// The app shell: the login screen until a token is accepted, then the overview. A token the API
// refuses later (revoked, expired) sends the user back to the login screen with the reason.
import { useCallback, useMemo, useState } from "preact/hooks";
import { createApi, tokenStore } from "./api.js";
import { Login } from "./login.js";
import { Overview } from "./overview.js";

export function App() {
  const [token, setToken] = useState(tokenStore.get);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const api = useMemo(() => (token === undefined ? undefined : createApi(token)), [token]);

  const logIn = useCallback((accepted: string) => {
    tokenStore.set(accepted);
    setNotice(undefined);
    setToken(accepted);
  }, []);
  const logOut = useCallback((reason?: string) => {
    tokenStore.clear();
    setNotice(reason);
    setToken(undefined);
  }, []);

  if (api === undefined) return <Login onLogIn={logIn} notice={notice} />;
  return (
    <>
      <header class="bar">
        <span class="brand">Keelson</span>
        <button type="button" class="quiet" onClick={() => logOut()}>
          Log out
        </button>
      </header>
      <main id="main">
        <Overview api={api} onUnauthorized={() => logOut("The control plane refused your token (401). Log in again.")} />
      </main>
    </>
  );
}
