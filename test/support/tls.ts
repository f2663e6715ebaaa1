// Certificates for tests, made with openssl (EC P-256, valid one day): a self-signed one, and one
// signed by a throwaway CA for a client that is then told to trust that CA.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestCertificate {
  /** PEM of the certificate and of its key, as a TLS server takes them. */
  readonly cert: string;
  readonly key: string;
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(args: readonly string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** A self-signed certificate for `subjectAltName` (`IP:127.0.0.1`, `DNS:localhost`), its files in `dir`. */
export function selfSignedCertificate(dir: string, commonName: string, subjectAltName: string): TestCertificate {
  const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
  openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "1",
    "-subj",
    `/CN=${commonName}`,
    "-addext",
    `subjectAltName=${subjectAltName}`,
  ]);
  return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
}

/** A server certificate for `subjectAltName`, signed by a CA made for it (`caPem`: what a client must trust). */
export function caSignedCertificate(
  dir: string,
  caName: string,
  commonName: string,
  subjectAltName: string,
): TestCertificate & { readonly caPem: string } {
  const file = (name: string): string => join(dir, name);
  openssl(["req", "-x509", ...EC_KEY, "-keyout", file("ca.key"), "-out", file("ca.crt"), "-days", "1", "-subj", `/CN=${caName}`]);
  openssl(["req", ...EC_KEY, "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", `/CN=${commonName}`]);
  writeFileSync(file("san.ext"), `subjectAltName=${subjectAltName}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl([
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.crt"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-out",
    file("server.crt"),
    "-days",
    "1",
    "-extfile",
    file("san.ext"),
  ]);
  return {
    caPem: readFileSync(file("ca.crt"), "utf8"),
    cert: readFileSync(file("server.crt"), "utf8"),
    key: readFileSync(file("server.key"), "utf8"),
  };
}
