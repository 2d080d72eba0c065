// A throwaway CA made with the openssl binary, for SDK tests that need certificates without the
// platform's CA (the SDK must not import @keelson/platform).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Whether an openssl binary is on the PATH. */
export function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * A P-256 CA in `caDir` issuing leaves for spiffe://<trustDomain>/<service> (also DNS localhost,
 * IP 127.0.0.1) into a folder as cert.pem, key.pem and ca.pem, the way the control plane writes
 * them: key first, each file whole via rename.
 */
export function opensslCa(caDir: string, trustDomain = "shop") {
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: caDir, stdio: "pipe" });
  run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  let n = 0;
  return {
    caPath: join(caDir, "ca.pem"),
    issue(service: string, outDir: string): void {
      const name = `${service}-${++n}`;
      writeFileSync(join(caDir, `${name}.ext`), `subjectAltName=URI:spiffe://${trustDomain}/${service},DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n`);
      run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", `/CN=${service}`]);
      run(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`]);
      for (const [from, to] of [["ca.pem", "ca.pem"], [`${name}-key.pem`, "key.pem"], [`${name}.pem`, "cert.pem"]] as const) {
        copyFileSync(join(caDir, from), join(outDir, `${to}.tmp`));
        renameSync(join(outDir, `${to}.tmp`), join(outDir, to));
      }
    },
  };
}
