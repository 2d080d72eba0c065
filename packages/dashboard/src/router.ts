// A tiny hash router: `#/` is the overview, `#/services/<name>` a service. Hash routes need no
// server support (the control plane serves index.html at / only) and survive a reload.
import { useEffect, useState } from "preact/hooks";

export type View = { name: "overview" } | { name: "service"; service: string };

export function parseHash(hash: string): View {
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
