// The app shell: the login screen until a token is accepted, then the view the URL's hash names,
// fed by one event stream. A token the API refuses later (revoked, expired) sends the user back
// to the login screen with the reason.
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { createApi, tokenStore, UnauthorizedError, type Api, type Principal } from "./api.js";
import { AuditView } from "./audit-view.js";
import { DeploysView } from "./deploys-view.js";
import { DoraView } from "./dora-view.js";
import { FlagsView, FlagView } from "./flags-view.js";
import { Login } from "./login.js";
import { Overview } from "./overview.js";
import { useView, type View } from "./router.js";
import { mayReadAudit } from "./permissions.js";
import { ServiceMapView } from "./service-map-view.js";
import { ServiceView } from "./service-view.js";
import { TraceView, TracesView } from "./traces-view.js";
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

function Nav(props: { view: View; principal: Principal | undefined }) {
  const { view, principal } = props;
  const section = view.name === "trace" ? "traces" : view.name === "service" ? "overview" : view.name === "flag" ? "flags" : view.name;
  const links: Array<[string, string, string]> = [
    ["overview", "#/", "Overview"],
    ["deploys", "#/deploys", "Deploys"],
    ["traces", "#/traces", "Traces"],
    ["map", "#/map", "Service map"],
    ["flags", "#/flags", "Flags"],
    ["dora", "#/dora", "DORA"],
  ];
  if (mayReadAudit(principal)) links.push(["audit", "#/audit", "Audit"]);
  return (
    <nav aria-label="Main" class="nav">
      {links.map(([name, href, text]) => (
        <a key={name} href={href} aria-current={section === name ? "page" : undefined}>
          {text}
        </a>
      ))}
    </nav>
  );
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
        <Nav view={view} principal={principal} />
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
        <Page view={view} api={api} principal={principal} revision={live.revision} onUnauthorized={onUnauthorized} />
      </main>
    </>
  );
}

function Page(props: { view: View; api: Api; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  const { view, api, principal, revision, onUnauthorized } = props;
  switch (view.name) {
    case "service":
      return <ServiceView key={view.service} api={api} name={view.service} principal={principal} revision={revision} onUnauthorized={onUnauthorized} />;
    case "deploys":
      return <DeploysView api={api} principal={principal} revision={revision} onUnauthorized={onUnauthorized} />;
    case "map":
      return <ServiceMapView api={api} principal={principal} revision={revision} onUnauthorized={onUnauthorized} />;
    case "flags":
      return <FlagsView api={api} principal={principal} revision={revision} onUnauthorized={onUnauthorized} />;
    case "flag":
      return <FlagView key={view.key} api={api} flagKey={view.key} principal={principal} revision={revision} onUnauthorized={onUnauthorized} />;
    case "dora":
      return <DoraView api={api} principal={principal} revision={revision} onUnauthorized={onUnauthorized} />;
    case "traces":
      return <TracesView api={api} revision={revision} onUnauthorized={onUnauthorized} />;
    case "trace":
      return <TraceView key={view.traceId} api={api} traceId={view.traceId} onUnauthorized={onUnauthorized} />;
    case "audit":
      // The API refuses other roles anyway; the page says so instead of showing the error.
      return principal !== undefined && !mayReadAudit(principal) ? (
        <>
          <h1>Audit log</h1>
          <p>Only admins may read the audit log.</p>
        </>
      ) : (
        <AuditView api={api} revision={revision} onUnauthorized={onUnauthorized} />
      );
    case "overview":
      return <Overview api={api} revision={revision} onUnauthorized={onUnauthorized} />;
  }
}
