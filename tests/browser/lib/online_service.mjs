// An online service on another origin than pforte (its own loopback port): it sends the browser to
// pforte's /authorize with PKCE, takes the code at /callback, exchanges it at /token with its
// client secret, and logs out through pforte's /logout with the ID token as hint. Its pages are
// plain, labelled HTML so axe checks them like pforte's.
import crypto from 'node:crypto';
import http from 'node:http';

const b64url = (buffer) => buffer.toString('base64url');

function page(title, body) {
  return `<!doctype html>
<html lang="de">
<head><meta charset="utf-8"><title>${title}</title></head>
<body><main>
<h1>${title}</h1>
${body}
</main></body>
</html>
`;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Starts the service at http://127.0.0.1:<port>; `logins` records each exchanged code's result. */
export async function startOnlineService({ port, pforteUrl, clientId, secret }) {
  const origin = `http://127.0.0.1:${port}`;
  const pending = new Map();
  const logins = [];
  const errors = [];
  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url, origin);
    const send = (status, html, headers = {}) => {
      response.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
      response.end(html);
    };
    try {
      if (url.pathname === '/favicon.ico') {
        response.writeHead(204).end();
      } else if (url.pathname === '/') {
        const notice = url.searchParams.get('state') === 'after-logout' ? '<p role="status">Sie sind abgemeldet.</p>' : '';
        send(200, page('Browser-Testdienst', `${notice}<p><a href="/login">Anmelden</a></p>`));
      } else if (url.pathname === '/login') {
        const state = b64url(crypto.randomBytes(16));
        const nonce = b64url(crypto.randomBytes(16));
        const verifier = b64url(crypto.randomBytes(32));
        pending.set(state, { nonce, verifier });
        const authorize = new URL('/authorize', pforteUrl);
        authorize.search = new URLSearchParams({
          response_type: 'code',
          client_id: clientId,
          redirect_uri: `${origin}/callback`,
          scope: 'openid profile',
          state,
          nonce,
          code_challenge: b64url(crypto.createHash('sha256').update(verifier).digest()),
          code_challenge_method: 'S256',
        }).toString();
        response.writeHead(302, { location: authorize.toString() }).end();
      } else if (url.pathname === '/callback') {
        const state = url.searchParams.get('state');
        const flow = pending.get(state);
        pending.delete(state);
        if (!flow) throw new Error(`callback with an unknown state ${state}`);
        if (url.searchParams.get('error')) {
          const error = url.searchParams.get('error');
          errors.push(error);
          send(200, page('Anmeldung nicht abgeschlossen', `<p role="alert">Fehler: <code id="error">${escape(error)}</code></p><p><a href="/">Zur Startseite</a></p>`));
          return;
        }
        const tokens = await exchange(pforteUrl, clientId, secret, url.searchParams.get('code'), `${origin}/callback`, flow.verifier);
        const claims = JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url').toString());
        if (claims.nonce !== flow.nonce) throw new Error('the ID token carries another nonce');
        logins.push({ claims, tokens });
        const logout = new URL('/logout', pforteUrl);
        logout.search = new URLSearchParams({
          id_token_hint: tokens.id_token,
          post_logout_redirect_uri: `${origin}/`,
          state: 'after-logout',
        }).toString();
        send(200, page('Angemeldet', `<p role="status">Angemeldet über <code id="idp">${escape(claims.idp)}</code> als <span id="name">${escape(claims.given_name ?? '')}</span>.</p>
<p><a href="${escape(logout.toString())}">Abmelden</a></p>`));
      } else {
        send(404, page('Nicht gefunden', '<p>Nicht gefunden.</p>'));
      }
    } catch (error) {
      errors.push(String(error));
      send(500, page('Fehler', `<p role="alert">${escape(error)}</p>`));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return { origin, logins, errors, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** The code exchange at pforte's token endpoint (client_secret_basic). */
async function exchange(pforteUrl, clientId, secret, code, redirectUri, verifier) {
  const response = await fetch(new URL('/token', pforteUrl), {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }),
  });
  const body = await response.json();
  if (response.status !== 200 || !body.id_token || !body.access_token) {
    throw new Error(`token endpoint answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body;
}
