// Upstream OpenID Providers on other origins: oidc-provider (panva's OpenID-certified provider)
// instances on loopback ports, each with pforte registered as a confidential client. Their pages
// (login with a choice of method, which sets the `acr`; cancel; logout) are the suite's own: the
// library's development pages load a web font from the internet, and the suite stays on loopback.
import http from 'node:http';
import Provider from 'oidc-provider';

/** The upstream `acr` values and the levels the registry entries map them to. */
export const ACR = { low: 'urn:pforte:browser:low', substantial: 'urn:pforte:browser:substantial' };

/** Starts a provider at http://127.0.0.1:<port> and resolves once it listens. */
export async function startProvider({ id, name, port, pforteUrl, secret }) {
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'pforte',
        client_secret: secret,
        redirect_uris: [`${pforteUrl}/callback/${id}`],
        post_logout_redirect_uris: [`${pforteUrl}/logout/done`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    acrValues: [ACR.low, ACR.substantial],
    // Profile claims in the ID token too, as the public sector's account services send them.
    conformIdTokenClaims: false,
    claims: { acr: null, openid: ['sub'], profile: ['given_name', 'family_name'] },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, given_name: 'Erika', family_name: `Mustermann (${name})` }),
    }),
    // Cookies belong to a host, not to a port: without names of their own, the two providers on
    // 127.0.0.1 would overwrite each other's session.
    cookies: {
      keys: [`${id}-cookie-key-for-tests-only`],
      names: { session: `${id}_session`, interaction: `${id}_interaction`, resume: `${id}_resume` },
    },
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 3600, IdToken: 600, Interaction: 600, Session: 3600 },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page(name, 'Abmelden', `<p>Möchten Sie sich bei ${name} abmelden?</p>
${form}
<p><button type="submit" form="op.logoutForm" value="yes" name="logout">Ja, abmelden</button></p>`);
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page(name, 'Abgemeldet', '<p>Sie sind abgemeldet.</p>');
        },
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page(name, 'Fehler', `<p role="alert">${escape(out.error)}: ${escape(out.error_description ?? '')}</p>`);
    },
  });
  const oidc = provider.callback();
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, issuer);
    if (url.pathname === '/favicon.ico') {
      // A browser asks every origin for one; a 404 would count as a failed request.
      response.writeHead(204).end();
    } else if (url.pathname.startsWith('/interaction/')) {
      interaction(provider, name, request, response, url).catch((error) => {
        response.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
      });
    } else {
      oidc(request, response);
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return { id, name, issuer, origin: issuer, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** The login page (GET), its answer (POST .../login), the cancel link (GET .../abort); consent is implied. */
async function interaction(provider, name, request, response, url) {
  const details = await provider.interactionDetails(request, response);
  const { uid, prompt, params, session } = details;
  if (url.pathname.endsWith('/abort')) {
    await provider.interactionFinished(request, response, {
      error: 'access_denied',
      error_description: 'The person cancelled the login.',
    });
  } else if (request.method === 'POST' && url.pathname.endsWith('/login')) {
    const form = new URLSearchParams(await body(request));
    const acr = form.get('method') === 'low' ? ACR.low : ACR.substantial;
    await provider.interactionFinished(request, response, { login: { accountId: form.get('login') || 'erika', acr } }, {
      mergeWithLastSubmission: false,
    });
  } else if (prompt.name === 'consent') {
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    grant.addOIDCScope(String(params.scope));
    const grantId = await grant.save();
    await provider.interactionFinished(request, response, { consent: { grantId } }, { mergeWithLastSubmission: true });
  } else {
    const wanted = String(params.acr_values ?? '').includes(ACR.substantial) ? 'substantial' : 'low';
    const radio = (value, label) =>
      `<div><input type="radio" name="method" id="method-${value}" value="${value}"${value === wanted ? ' checked' : ''}> <label for="method-${value}">${label}</label></div>`;
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    response.end(
      page(name, 'Anmelden', `<form method="post" action="/interaction/${uid}/login">
<p><label for="login">Benutzername</label> <input id="login" name="login" value="erika" autocomplete="off"></p>
<fieldset><legend>Verfahren</legend>
${radio('low', 'Passwort (niedrig)')}
${radio('substantial', 'Ausweis-App (substanziell)')}
</fieldset>
<p><button type="submit">Anmelden</button></p>
</form>
<p><a href="/interaction/${uid}/abort">Abbrechen</a></p>`),
    );
  }
}

function body(request) {
  return new Promise((resolve, reject) => {
    let text = '';
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => resolve(text));
    request.on('error', reject);
  });
}

function page(provider, title, body) {
  return `<!doctype html>
<html lang="de">
<head><meta charset="utf-8"><title>${title} – ${escape(provider)}</title></head>
<body><main>
<p>${escape(provider)} (Testkonto)</p>
<h1>${title}</h1>
${body}
</main></body>
</html>
`;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
