// The demo online service on the embedded default registry: a login with each simulated account,
// the fee paid at both payment simulators, the application sent to the Fachverfahren simulator and
// accepted there, a level of assurance too low and its way back, and the demo opened under another
// host name than the public URL's.
import { expect, keyboard } from '../lib/checks.mjs';

/** The simulated accounts: provider id, account simulator path, persona keys. */
const ACCOUNTS = [
  ['bundid-sim', 'bundid', ['erika', 'hans-guenther', 'leyla']],
  ['unternehmenskonto-sim', 'unternehmenskonto', ['musterbau', 'beispiel-handwerk']],
];
const AUTHORITIES = ['09162000', '03241001'];

const on = (base, prefix) => (url) => url.origin === base && url.pathname.startsWith(prefix);

/** Logs in at the demo with the mouse, or with the keyboard alone (`byKeyboard`). */
async function login(session, base, { provider, simulator, persona, level = 'substantial', acr, byKeyboard = false, documentStatus }) {
  await session.step('demo start page', (page) => page.goto(`${base}/demo`));
  await session.step('provider choice page', async (page) => {
    await page.selectOption('#level', level);
    if (byKeyboard) await keyboard(page, 'form[action="/demo/login"] button[type="submit"]');
    else await page.click('form[action="/demo/login"] button[type="submit"]');
    await page.waitForURL(on(base, '/authorize'));
    expect(await page.locator(`button[value="${provider}"]`).count() === 1, `a button for ${provider}`);
  });
  await session.step(`account simulator ${simulator}`, async (page) => {
    if (byKeyboard) await keyboard(page, `button[value="${provider}"]`);
    else await page.click(`button[value="${provider}"]`);
    await page.waitForURL(on(base, `/dev/${simulator}/authorize`));
  });
  await session.step(`logged in as ${persona}${acr ? ` with ${acr}` : ''}`, async (page) => {
    if (!byKeyboard) await page.check(`#persona-${persona}`);
    if (acr) await page.check(`[id="level-${acr}"]`);
    if (byKeyboard) await keyboard(page, 'button[value="login"]');
    else await page.click('button[value="login"]');
    await page.waitForURL((url) => url.origin === base && !url.pathname.startsWith('/dev/'));
  }, { documentStatus });
}

/** Pays the fee from the demo's login result page at `authority`'s payment simulator; returns its path. */
async function pay(session, base, authority, { byKeyboard = false } = {}) {
  let simulator;
  await session.step(`pay page for ${authority}`, async (page) => {
    const radio = page.locator(`#authority-${authority}`);
    if (byKeyboard) {
      // The first authority is preselected; a radio group is one Tab stop, its arrows choose.
      expect(await radio.isChecked(), `${authority} preselected`);
      await keyboard(page, 'form[action="/demo/pay"] button[type="submit"]');
    } else {
      await radio.check();
      await page.click('form[action="/demo/pay"] button[type="submit"]');
    }
    await page.waitForURL((url) => url.origin === base && url.pathname.startsWith('/dev/'));
    expect((await page.textContent('main')).includes('12,00'), 'the pay page shows the fee 12,00 €');
    simulator = new URL(page.url()).pathname.split('/page/')[0];
  });
  await session.step(`paid at ${authority}`, async (page) => {
    if (byKeyboard) await keyboard(page, 'button[value="pay"]');
    else await page.click('button[value="pay"]');
    await page.waitForURL(on(base, '/demo'));
    const text = await page.textContent('main');
    expect(/PAYED/.test(text), `the demo reads the payment as PAYED: ${text}`);
  });
  return simulator;
}

/** From the paid payment's page: sends the application, accepts it in the Fachverfahren simulator,
 * and reads `accept-submission` in the demo's event log. */
async function sendApplication(session, base) {
  let status;
  let submission;
  await session.step('application sent', async (page) => {
    await page.click('form[action="/demo/antrag"] button[type="submit"]');
    await page.waitForURL(on(base, '/demo/antrag/status'));
    status = page.url();
    const text = await page.textContent('main');
    expect(text.includes('submit-submission'), `the event log shows submit-submission: ${text}`);
    submission = (await page.locator('tr:has(th:has-text("submissionId")) td code').textContent()).trim();
  });
  await session.step('the Fachverfahren simulator received and checked it', async (page) => {
    // pforte calls the simulator back within a second or two; the page is read again until then.
    for (let attempt = 0; attempt < 50; attempt += 1) {
      await page.goto(`${base}/dev/fachverfahren`);
      if ((await page.textContent('main')).includes(submission)) break;
      await page.waitForTimeout(200);
    }
    const entry = page.locator(`section:has-text("${submission}")`);
    const text = await entry.textContent();
    expect(!text.includes('nicht bestanden'), `every check passed: ${text}`);
    expect(text.includes('12.00 EUR'), `the verified payment: ${text}`);
    await entry.locator('button[value="accept"]').click();
    await page.waitForURL(on(base, '/dev/fachverfahren'));
    expect((await page.textContent('main')).includes('angenommen'), 'the decision was sent');
  });
  await session.step('the demo reads accept-submission', async (page) => {
    await page.goto(status);
    const text = await page.textContent('main');
    expect(text.includes('accept-submission'), `the event log shows accept-submission: ${text}`);
  });
}

export async function demoScenarios(suite, base) {
  let first = true;
  for (const [provider, simulator, personas] of ACCOUNTS) {
    for (const persona of personas) {
      const session = await suite.session(`demo ${persona}`);
      // The first login and payment use the keyboard alone (Tab, arrows, Enter).
      await login(session, base, { provider, simulator, persona, byKeyboard: first });
      const text = await session.page.textContent('main');
      expect(text.includes(provider), `the demo shows the provider ${provider}`);
      if (first) {
        await pay(session, base, AUTHORITIES[0], { byKeyboard: true });
      }
      await session.close();
      first = false;
    }
  }

  // Both payment simulators, each from a fresh login.
  const simulators = new Set();
  for (const authority of AUTHORITIES) {
    const session = await suite.session(`demo pays ${authority}`);
    await login(session, base, { provider: 'bundid-sim', simulator: 'bundid', persona: 'erika' });
    simulators.add(await pay(session, base, authority));
    // Hannover's Fachverfahren receives the application (any authority with a destination would).
    if (authority === '03241001') await sendApplication(session, base);
    await session.close();
  }
  expect(simulators.size === 2, `the two authorities pay at two simulators: ${[...simulators]}`);

  // Level "high" required, username and password proven: pforte's page says why, its link leads back.
  const low = await suite.session('demo level too low');
  await login(low, base, {
    provider: 'bundid-sim',
    simulator: 'bundid',
    persona: 'erika',
    level: 'high',
    acr: 'STORK-QAA-Level-1',
    documentStatus: 403,
  });
  await low.step('the level-too-low page leads back to the demo', async (page) => {
    expect((await page.textContent('h1')).includes('Vertrauensniveau'), 'the page names the level of assurance');
    await page.click('a.button');
    await page.waitForURL(on(base, '/demo/callback'));
    expect((await page.textContent('main')).length > 0, 'the demo answers');
  });
  await low.close();
}

/** The demo under another host than the public URL's: pforte sends the browser to the public URL. */
export async function otherHostScenario(suite, base) {
  const other = base.replace('127.0.0.1', 'localhost');
  const session = await suite.session('demo under another host');
  await session.step('demo under localhost redirects to the public URL', async (page) => {
    await page.goto(`${other}/demo?from=typed`);
    const url = new URL(page.url());
    expect(url.origin === base && url.pathname === '/demo' && url.search === '?from=typed', `landed on ${page.url()}`);
  });
  await session.step('its login form works there', async (page) => {
    await page.click('form[action="/demo/login"] button[type="submit"]');
    await page.waitForURL(on(base, '/authorize'));
  });
  await session.close();
}
