// A tiny hash router: `#/` is the overview, `#/services/<name>` a service, `#/deploys` pipelines and
// rollouts, `#/traces` the trace search, `#/traces/<id>` one trace's waterfall, `#/map` the service
// map, `#/flags` the flags, `#/flags/<key>` one flag with its history and experiment, `#/dora` the
// four keys per team and service, `#/audit` the audit log. Hash routes need no
// server support (the control plane serves index.html at / only) and survive a reload.
import { useEffect, useState } from "preact/hooks";

export type View =
  | { name: "overview" }
  | { name: "service"; service: string }
  | { name: "deploys" }
  | { name: "traces" }
  | { name: "trace"; traceId: string }
  | { name: "map" }
  | { name: "flags" }
  | { name: "flag"; key: string }
  | { name: "dora" }
  | { name: "audit" };

/** Views whose hash is a fixed word. */
const FIXED: Record<string, View> = {
  traces: { name: "traces" },
  audit: { name: "audit" },
  deploys: { name: "deploys" },
  map: { name: "map" },
  flags: { name: "flags" },
  dora: { name: "dora" },
};

export function parseHash(hash: string): View {
  const fixed = /^#\/([a-z]+)\/?$/.exec(hash)?.[1];
  if (fixed !== undefined && Object.hasOwn(FIXED, fixed)) return FIXED[fixed]!;
  const trace = /^#\/traces\/([0-9a-f]{32})\/?$/i.exec(hash);
  if (trace?.[1] !== undefined) return { name: "trace", traceId: trace[1].toLowerCase() };
  const match = /^#\/(services|flags)\/([^/]+)\/?$/.exec(hash);
  if (match?.[2] !== undefined) {
    try {
      const value = decodeURIComponent(match[2]);
      return match[1] === "services" ? { name: "service", service: value } : { name: "flag", key: value };
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

export function flagHref(key: string): string {
  return `#/flags/${encodeURIComponent(key)}`;
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
