// A FIT-Connect sender and subscriber's JOSE side, written with jose (panva), independent of pforte's
// JOSE code. One command per call; the input is JSON on stdin, the answer JSON on stdout.
//
//   encrypt     {jwk, plaintext (base64), cty}      -> {jwe}        RSA-OAEP-256 + A256GCM to the
//                                                                  destination's key as pforte serves it
//   decrypt     {pkcs8, jwe}                        -> {plaintext (base64), header}
//   sign-set    {pkcs8, kid, claims}                -> {set}        PS512, typ secevent+jwt
//   verify-set  {jwks, set, issuer}                 -> {payload}    against pforte's published JWKS
import { createPublicKey } from "node:crypto";
import * as jose from "jose";

const read = async () => {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
};

const commands = {
  async encrypt({ jwk, plaintext, cty }) {
    // FIT-Connect publishes key_ops ["wrapKey"], which jose's WebCrypto import refuses for RSA-OAEP
    // ("usages must include encrypt"): the stumbling block integrators report. A Node KeyObject carries
    // no usages, so the published JWK is imported as one, unchanged.
    const key = createPublicKey({ key: jwk, format: "jwk" });
    const jwe = await new jose.CompactEncrypt(Buffer.from(plaintext, "base64"))
      .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: jwk.kid, cty })
      .encrypt(key);
    return { jwe };
  },
  async decrypt({ pkcs8, jwe }) {
    const key = await jose.importPKCS8(pkcs8, "RSA-OAEP-256");
    const { plaintext, protectedHeader } = await jose.compactDecrypt(jwe, key);
    return { plaintext: Buffer.from(plaintext).toString("base64"), header: protectedHeader };
  },
  async "sign-set"({ pkcs8, kid, claims }) {
    const key = await jose.importPKCS8(pkcs8, "PS512");
    const set = await new jose.SignJWT(claims)
      .setProtectedHeader({ typ: "secevent+jwt", alg: "PS512", kid })
      .sign(key);
    return { set };
  },
  async "verify-set"({ jwks, set, issuer }) {
    const keys = jose.createLocalJWKSet(jwks);
    const { payload } = await jose.jwtVerify(set, keys, { algorithms: ["PS512"], typ: "secevent+jwt", issuer });
    return { payload };
  },
};

const command = commands[process.argv[2]];
if (!command) {
  console.error(`unknown command ${process.argv[2]}; use ${Object.keys(commands).join(", ")}`);
  process.exit(2);
}
try {
  process.stdout.write(JSON.stringify(await command(await read())));
} catch (error) {
  console.error(`${error.code ?? "error"}: ${error.message}`);
  process.exit(1);
}
