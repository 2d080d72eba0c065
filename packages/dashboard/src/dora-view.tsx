// Placeholder: replaced by the view's implementation.
import type { Api, Principal } from "./api.js";

export function DoraView(_props: { api: Api; principal: Principal | undefined; revision: number; onUnauthorized: () => void }) {
  return <h1>DORA and teams</h1>;
}
