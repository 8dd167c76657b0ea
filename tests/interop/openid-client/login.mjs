// Logs in through pforte as an online service would, with openid-client (an OpenID-certified
// relying party library): discovery, PKCE S256, state, nonce, RFC 9207 `iss` check, ID token
// validation (ES256 against pforte's JWKS) and userinfo. The browser part — pforte's redirect to the
// citizen-account simulator and the simulator's login form — is walked with plain fetch.
//
// usage: node login.mjs <issuer> <client_id> <client_secret>
// Prints one JSON line with what was received; exits non-zero on any failure.
import * as client from 'openid-client';

const [issuer, clientId, clientSecret] = process.argv.slice(2);
if (!issuer || !clientId || !clientSecret) {
  console.error('usage: node login.mjs <issuer> <client_id> <client_secret>');
  process.exit(2);
}

const insecure = new URL(issuer).protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};
const config = await client.discovery(new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), insecure);

const redirectUri = `${issuer}/demo/callback`;
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile birth',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
  acr_values: 'http://eidas.europa.eu/LoA/substantial',
  idp_hint: 'bundid-sim',
});

// The browser: pforte sends it to the account provider, which shows its login form.
const manual = { redirect: 'manual' };
const toUpstream = await fetch(authorizationUrl, manual);
if (toUpstream.status !== 303) throw new Error(`authorize answered ${toUpstream.status}`);
const cookie = toUpstream.headers.get('set-cookie').split(';')[0];
const upstreamUrl = new URL(toUpstream.headers.get('location'));
const page = await (await fetch(upstreamUrl, manual)).text();
const request = page.match(/name="request" value="([^"]+)"/)[1];
const decide = new URL(upstreamUrl.pathname.replace(/\/authorize$/, '/authorize/decide'), upstreamUrl);
const back = await fetch(decide, {
  ...manual,
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ request, persona: 'erika', level: 'STORK-QAA-Level-3', action: 'login' }),
});
const toService = await fetch(back.headers.get('location'), { ...manual, headers: { cookie } });
const callbackUrl = new URL(toService.headers.get('location'));

// The online service: openid-client checks state, iss, the code exchange and the ID token.
const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
console.log(JSON.stringify({ sub: claims.sub, acr: claims.acr, idp: claims.idp, given_name: userinfo.given_name, birthdate: userinfo.birthdate, email: userinfo.email ?? null }));
