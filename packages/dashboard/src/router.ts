// A tiny hash router: `#/` is the overview, `#/services/<name>` a service, `#/traces` the trace
// search, `#/traces/<id>` one trace's waterfall, `#/audit` the audit log. Hash routes need no
// server support (the control plane serves index.html at / only) and survive a reload.
import { useEffect, useState } from "preact/hooks";

export type View = { name: "overview" } | { name: "service"; service: string } | { name: "traces" } | { name: "trace"; traceId: string } | { name: "audit" };

export function parseHash(hash: string): View {
  if (/^#\/traces\/?$/.test(hash)) return { name: "traces" };
  if (/^#\/audit\/?$/.test(hash)) return { name: "audit" };
  const trace = /^#\/traces\/([0-9a-f]{32})\/?$/i.exec(hash);
  if (trace?.[1] !== undefined) return { name: "trace", traceId: trace[1].toLowerCase() };
  const match = /^#\/services\/([^/]+)\/?$/.exec(hash);
  if (match?.[1] !== undefined) {
    try {
      return { name: "service", service: decodeURIComponent(match[1]) };
    } catch {
      // A malformed escape: fall back to the overview.
    }
  }
  return { name: "overview" };
}

export function traceHref(traceId: string): string {
  return `#/traces/${traceId}`;
}

export function serviceHref(name: string): string {
  return `#/services/${encodeURIComponent(name)}`;
}

export function useView(): View {
  const [view, setView] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const onChange = () => setView(parseHash(location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return view;
}
