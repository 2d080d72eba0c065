// Entry point of {{name}}: serves public/ under $BASE_PATH on $PORT until SIGTERM.
import { startSiteServer } from "./src/site-server.mjs";

const port = Number(process.env.PORT ?? 3000);
const basePath = process.env.BASE_PATH ?? "/";
const site = await startSiteServer({ root: new URL("./public/", import.meta.url), basePath, port });
console.log(JSON.stringify({ level: "info", msg: "serving", url: site.url, basePath }));

process.once("SIGTERM", () => {
  site.close().then(() => process.exit(0));
  // A client holding a connection open does not keep the replica from stopping.
  setTimeout(() => process.exit(0), 5000).unref();
});
