// Placeholder: replaced by the view's implementation.
import type { Api, Principal } from "./api.js";

export function FlagsView(_props: { api: Api; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  return <h1>Flags</h1>;
}

export function FlagView(_props: { api: Api; flagKey: string; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  return <h1>Flag</h1>;
}
