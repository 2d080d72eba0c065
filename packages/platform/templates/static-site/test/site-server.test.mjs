// Tests of the site server on a free port of 127.0.0.1, below a base path as behind the gateway.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startSiteServer } from "../src/site-server.mjs";

describe("{{name}}", () => {
  let site;
  before(async () => {
    site = await startSiteServer({ root: new URL("../public/", import.meta.url), basePath: "/site" });
  });
  after(() => site.close());

  it("serves index.html below the base path, after a redirect to the trailing slash", async () => {
    const redirect = await fetch(`${site.url}/site`, { redirect: "manual" });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get("location"), "/site/");
    const page = await fetch(`${site.url}/site/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(await page.text(), /<h1>[^<]+<\/h1>/);
  });

  it("serves other files with their type and an ETag, and 304 when unchanged", async () => {
    const css = await fetch(`${site.url}/site/style.css`);
    assert.equal(css.status, 200);
    assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
    const etag = css.headers.get("etag");
    assert.ok(etag);
    const again = await fetch(`${site.url}/site/style.css`, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
  });

  it("never serves files outside public/", async () => {
    for (const path of ["/site/../package.json", "/site/%2e%2e/package.json", "/site/%2e%2e%2fpackage.json", "/package.json"]) {
      assert.equal((await fetch(`${site.url}${path}`)).status, 404, path);
    }
  });

  it("answers the probes", async () => {
    assert.equal((await fetch(`${site.url}/ready`)).status, 200);
    assert.equal((await fetch(`${site.url}/healthz`)).status, 200);
  });
});
