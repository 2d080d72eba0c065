// The app shell: the login screen until a token is accepted, then the view the URL's hash names,
// fed by one event stream. A token the API refuses later (revoked, expired) sends the user back
// to the login screen with the reason.
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { createApi, tokenStore, UnauthorizedError, type Api, type Principal } from "./api.js";
import { Login } from "./login.js";
import { Overview } from "./overview.js";
import { useView } from "./router.js";
import { ServiceView } from "./service-view.js";
import { useEventStream } from "./use-live.js";

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
  return <Shell key={api.token} api={api} logOut={logOut} />;
}

function Shell(props: { api: Api; logOut: (reason?: string) => void }) {
  const { api, logOut } = props;
  const onUnauthorized = useCallback(() => logOut("The control plane refused your token (401). Log in again."), [logOut]);
  const live = useEventStream(api, onUnauthorized);
  const view = useView();
  const [principal, setPrincipal] = useState<Principal | undefined>(undefined);
  useEffect(() => {
    const controller = new AbortController();
    api.whoami(controller.signal).then(setPrincipal, (err: unknown) => {
      if (err instanceof UnauthorizedError) onUnauthorized();
    });
    return () => controller.abort();
  }, [api, onUnauthorized]);

  return (
    <>
      <header class="bar">
        <a class="brand" href="#/">
          Keelson
        </a>
        <span class="who">
          <span class={`live ${live.connected ? "on" : "off"}`} title={live.dropped ?? (live.connected ? "Live: following the event stream" : "Connecting…")}>
            {live.connected ? "Live" : "Offline"}
          </span>
          {principal?.kind === "user" ? (
            <span class="muted" data-testid="principal">
              {principal.name} ({principal.role})
            </span>
          ) : null}
          <button type="button" class="quiet" onClick={() => logOut()}>
            Log out
          </button>
        </span>
      </header>
      <main id="main">
        {view.name === "service" ? (
          <ServiceView key={view.service} api={api} name={view.service} principal={principal} revision={live.revision} onUnauthorized={onUnauthorized} />
        ) : (
          <Overview api={api} revision={live.revision} onUnauthorized={onUnauthorized} />
        )}
      </main>
    </>
  );
}
