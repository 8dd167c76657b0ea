// An online service on another origin whose client may use two upstream providers, each an
// oidc-provider on another origin: choice page -> provider -> back to the service with a code it
// exchanges; a second login the provider answers at once (its session); RP-initiated logout through
// the provider's end_session_endpoint; pforte's account simulator for that service; cancel at the
// provider; a level too low and its way back, in German and in English.
import { expect, keyboard } from '../lib/checks.mjs';

const at = (origin, prefix = '/') => (url) => url.origin === origin && url.pathname.startsWith(prefix);

/** From the service's start page to pforte's choice page. */
async function toChoice(session, service, pforte, providers) {
  await session.step('online service start page', (page) => page.goto(`${service.origin}/`));
  await session.step('provider choice page (service on another origin)', async (page) => {
    await page.click('a[href="/login"]');
    await page.waitForURL(at(pforte, '/authorize'));
    for (const provider of providers) {
      expect(await page.locator(`button[value="${provider.id}"]`).count() === 1, `a button for ${provider.id}`);
    }
  });
}

/** From the choice page to the provider's login page and through it (method `low` or `substantial`). */
async function atProvider(session, service, pforte, provider, { method = 'substantial', byKeyboard = false, documentStatus } = {}) {
  await session.step(`login page of ${provider.id} (another origin)`, async (page) => {
    if (byKeyboard) await keyboard(page, `button[value="${provider.id}"]`);
    else await page.click(`button[value="${provider.id}"]`);
    await page.waitForURL(at(provider.origin, '/interaction/'));
  });
  await session.step(`back from ${provider.id} (${method})`, async (page) => {
    await page.check(`#method-${method}`);
    await page.click('form button[type="submit"]');
    await page.waitForURL((url) => url.origin === service.origin || (url.origin === pforte && url.pathname.startsWith('/callback/')));
  }, { documentStatus });
}

export async function otherOriginScenarios(suite, { pforte, service, providers }) {
  const [a, b] = providers;

  // Login through each provider, the code exchanged by the service; then logout through provider B.
  const session = await suite.session('other origin');
  await toChoice(session, service, pforte, providers);
  await atProvider(session, service, pforte, a, { byKeyboard: true });
  const afterA = service.logins.length;
  expect(afterA === 1 && service.logins[0].claims.idp === a.id, `the service exchanged a code from ${a.id}: ${JSON.stringify(service.errors)}`);
  expect((await session.page.textContent('#idp')) === a.id, 'the service page names provider A');

  await toChoice(session, service, pforte, providers);
  await atProvider(session, service, pforte, b);
  expect(service.logins.length === 2 && service.logins[1].claims.idp === b.id, `a code from ${b.id}`);

  // Provider A still has its session: the choice leads through it and pforte straight back to the service.
  await toChoice(session, service, pforte, providers);
  await session.step(`provider ${a.id} answers at once from its session`, async (page) => {
    await page.click(`button[value="${a.id}"]`);
    await page.waitForURL(at(service.origin, '/callback'));
  });
  expect(service.logins.length === 3 && service.logins[2].claims.idp === a.id, 'a third code, from provider A');

  await session.step(`logout: pforte sends the browser to ${a.id}'s end_session_endpoint`, async (page) => {
    await page.click('a[href*="/logout"]');
    await page.waitForURL(at(a.origin));
  });
  await session.step('logout confirmed at the provider, back at the service', async (page) => {
    await page.click('button[value="yes"]');
    await page.waitForURL(at(service.origin, '/'));
    expect(new URL(page.url()).searchParams.get('state') === 'after-logout', `the service got its state back: ${page.url()}`);
  });
  await session.close();

  // pforte's own account simulator, for a service on another origin: its answer leads through pforte there.
  const simulated = await suite.session('simulator for a service elsewhere');
  await toChoice(simulated, service, pforte, providers);
  await simulated.step('citizen account simulator', async (page) => {
    await page.click('button[value="bundid-sim"]');
    await page.waitForURL(at(pforte, '/dev/bundid/authorize'));
  });
  await simulated.step('back at the service from the simulator', async (page) => {
    await page.click('button[value="login"]');
    await page.waitForURL(at(service.origin, '/callback'));
    expect((await page.textContent('#idp')) === 'bundid-sim', 'the service names the simulator');
  });
  await simulated.close();

  // Cancel at the provider: the service receives access_denied.
  const cancel = await suite.session('cancel at the provider');
  await toChoice(cancel, service, pforte, providers);
  await cancel.step(`login page of ${b.id}`, async (page) => {
    await page.click(`button[value="${b.id}"]`);
    await page.waitForURL(at(b.origin, '/interaction/'));
  });
  await cancel.step('cancelled: the service gets access_denied', async (page) => {
    await page.click('a[href$="/abort"]');
    await page.waitForURL(at(service.origin, '/callback'));
    expect((await page.textContent('#error')) === 'access_denied', 'error=access_denied');
  });
  await cancel.close();

  // The provider proves "low", the service needs "substantial": pforte's page, then back with an error.
  for (const [locale, title] of [['de-DE', 'Vertrauensniveau'], ['en-GB', 'Level of assurance']]) {
    const low = await suite.session(`level too low (${locale})`, { locale });
    await toChoice(low, service, pforte, providers);
    if (locale === 'en-GB') {
      expect((await low.page.getAttribute('html', 'lang')) === 'en', 'the choice page is in English');
      expect((await low.page.textContent('h1')).includes('Log in'), 'an English heading');
    }
    await atProvider(low, service, pforte, a, { method: 'low', documentStatus: 403 });
    await low.step('the level-too-low page leads back to the service', async (page) => {
      expect((await page.textContent('h1')).includes(title), `the heading says ${title}`);
      await page.click('a.button');
      await page.waitForURL(at(service.origin, '/callback'));
      expect((await page.textContent('#error')).length > 0, 'the service received an error');
    });
    await low.close();
  }
}
