// The finance pages as staff use them: sign-in with the authority's staff identity provider (the
// `dienstkonto` simulator), uploads (one refused, one imported), today's reconciliation with its chart
// and filters, sign-out; a staff member without finance access refused; the token sign-in for those
// who only have a finance token.
import fs from 'node:fs';

import { expect, keyboard } from '../lib/checks.mjs';

const STAFF_PROVIDER = 'dienstkonto-sim';
/** The clerk's signed-in name and her `provider/subject` in the list of imports. */
const CLERK = { label: /Katrin Kassner/, name: 'Katrin Kassner', id: 'dienstkonto-sim/dienstkonto-sim-0001-kasse-muenchen' };
const OUTSIDER = /Petra Plan/;
const SESSION_COOKIE = 'pforte-finance-session';

/**
 * München's bank statement as a German savings bank sends it (tests/fixtures, valid against the
 * camt.053.001.08 XSD), its booking days moved to today in Berlin so the page's default period (the
 * last 30 days) shows its entries.
 */
function todaysBankStatement() {
  const fixture = fs.readFileSync(new URL('../../fixtures/camt/camt.053.001.08.xml', import.meta.url), 'utf8');
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(new Date());
  const moved = fixture.replace(/2026-11-(29|30)/g, today);
  expect(moved.includes('DE89370400440532013000') && moved !== fixture, 'the fixture is München\'s dated statement');
  return Buffer.from(moved, 'utf8');
}

/** A settlement report whose third line has no amount a bank could book. */
const MALFORMED_SETTLEMENT = Buffer.from(
  'Buchungsdatum;Transaktions-ID;Art;Brutto;Gebühr;Auszahlungsreferenz\n' +
    '29.11.2026;T-1;Zahlung;12,00;0,30;PO-1\n' +
    '29.11.2026;T-2;Zahlung;zwölf;0,20;PO-1\n',
  'utf8',
);

const onReconciliation = (base, tenant) => (url) => url.origin === base && url.pathname === `/finance/${tenant}/abgleich`;
const onSignIn = (base) => (url) => url.origin === base && url.pathname === '/finance/login';

/** From the sign-in page through the staff simulator as `persona` (a label on its page). */
async function staffSignIn(session, base, persona, { byKeyboard = false, documentStatus } = {}) {
  await session.step('finance sign-in page', async (page) => {
    await page.goto(`${base}/finance/login`);
    const forms = await page.locator('form[method="post"]').evaluateAll((all) =>
      all.map((f) => f.querySelector('input[type="hidden"][name="csrf"]')?.value ?? ''),
    );
    expect(forms.length === 2 && forms.every((csrf) => csrf.length >= 22), `both sign-in forms carry a form token: ${forms}`);
  });
  await session.step('staff simulator dienstkonto', async (page) => {
    const button = `#staff-sign-in-${STAFF_PROVIDER}`;
    if (byKeyboard) await keyboard(page, button);
    else await page.click(button);
    await page.waitForURL((url) => url.origin === base && url.pathname === '/dev/dienstkonto/authorize');
  });
  await session.step(`signed in at the simulator as ${persona.source}`, async (page) => {
    await page.getByLabel(persona).check();
    await page.click('button[value="login"]');
    await page.waitForURL((url) => url.origin === base && !url.pathname.startsWith('/dev/'));
  }, { documentStatus });
}

/** Uploads `file` ({ name, buffer }) as `kind` from the reconciliation page. */
async function upload(page, kind, file) {
  await page.selectOption('#upload-kind', kind);
  await page.setInputFiles('#upload-file', { name: file.name, mimeType: 'application/octet-stream', buffer: file.buffer });
  await page.click('#upload-submit');
  await page.waitForURL((url) => url.pathname.endsWith('/imports'));
}

export async function financeScenario(suite, base, { tenant, token }) {
  const session = await suite.session('finance');
  let reconciliation;
  // The sign-in button is reached with the keyboard alone.
  await staffSignIn(session, base, CLERK.label, { byKeyboard: true });
  await session.step("the clerk's reconciliation page", async (page) => {
    await page.waitForURL(onReconciliation(base, tenant));
    reconciliation = page.url();
    expect((await page.textContent('#staff-name')) === CLERK.name, `#staff-name names ${CLERK.name}`);
    expect((await page.locator('#imports-empty').count()) === 1, 'nothing imported yet');
  });

  await session.step('a malformed settlement report is refused, naming its line', async (page) => {
    await upload(page, 'settlement', { name: 'abrechnung-kaputt.csv', buffer: MALFORMED_SETTLEMENT });
    const error = await page.textContent('#import-error');
    expect(/line 3\b/.test(error) && error.includes('zwölf'), `the error names line 3 and its value: ${error}`);
  }, { documentStatus: 422 });
  await session.step('after the refusal nothing is listed', async (page) => {
    await page.click('#back');
    await page.waitForURL(onReconciliation(base, tenant));
    expect((await page.locator('#imports-empty').count()) === 1, 'still nothing imported');
    expect((await page.locator('#imports').count()) === 0, 'no list of imports');
  });
  await session.step("today's bank statement is imported", async (page) => {
    await upload(page, 'bank', { name: 'kontoauszug-heute.xml', buffer: todaysBankStatement() });
    const result = await page.textContent('#import-result');
    expect(result.includes('kontoauszug-heute.xml') && /\b\d+ Zeilen/.test(result), `the result names the file and its rows: ${result}`);
  });
  await session.step('the import is listed with who imported it', async (page) => {
    await page.click('#back');
    await page.waitForURL(onReconciliation(base, tenant));
    const rows = await page.locator('#imports tr').evaluateAll((all) => all.slice(1).map((r) => r.textContent));
    expect(rows.length === 1, `one import listed: ${rows}`);
    expect(rows[0].includes('kontoauszug-heute.xml') && rows[0].includes(CLERK.id) && rows[0].includes('Kontoauszug'), `the row: ${rows[0]}`);
  });

  await session.step("today's reconciliation with its chart", async (page) => {
    expect((await page.locator('svg.chart').count()) === 1, 'the page draws the chart');
    const bars = await page.locator('svg.chart rect.paid').count();
    expect(bars > 0 && bars === (await page.locator('svg.chart rect.settled').count()), `two bars a day: ${bars}`);
    const bank = await page.locator('table.findings tr.bank_entry_without_payout').count();
    expect(bank > 0, 'the statement\'s entries are findings');
    // Long references (import ids, bank references) wrap inside their cells: no sideways scrolling.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow <= 0, `the page fits the window's width (${overflow} px wider)`);
  });
  await session.step('filtered by a search term and a category', async (page) => {
    const options = await page.locator('select[name="category"] option').evaluateAll((all) => all.map((o) => o.value));
    expect(options.includes('bank_entry_without_payout'), `the category filter offers categories: ${options}`);
    await page.selectOption('select[name="category"]', 'bank_entry_without_payout');
    await page.fill('input[name="q"]', '2026-000101');
    await page.click('form[method="get"] button[type="submit"]');
    await page.waitForURL((url) => url.searchParams.get('q') === '2026-000101' && url.searchParams.get('category') === 'bank_entry_without_payout');
    expect((await page.inputValue('input[name="q"]')) === '2026-000101', 'the filter is kept on the page');
    const rows = await page.locator('table.findings tr').evaluateAll((all) => all.slice(1).map((r) => [r.className, r.textContent]));
    expect(rows.length === 1 && rows[0][0] === 'bank_entry_without_payout' && rows[0][1].includes('2026-000101'), `only the Kassenzeichen's entry: ${JSON.stringify(rows)}`);
  });

  let ended;
  await session.step('signed out', async (page) => {
    ended = (await session.context.cookies(reconciliation)).find((c) => c.name === SESSION_COOKIE);
    expect(ended !== undefined, `a ${SESSION_COOKIE} cookie while signed in`);
    await page.click('#sign-out-submit');
    await page.waitForURL(onSignIn(base));
    const left = (await session.context.cookies(reconciliation)).filter((c) => c.name === SESSION_COOKIE);
    expect(left.length === 0, 'the browser forgot the session cookie');
  });
  await session.step('the reconciliation page again leads to the sign-in page', async (page) => {
    await page.goto(reconciliation);
    expect(onSignIn(base)(new URL(page.url())), `the page leads to the sign-in page, not ${page.url()}`);
    // The server ended the session too: its old cookie, put back, opens nothing.
    await session.context.addCookies([ended]);
    await page.goto(reconciliation);
    expect(onSignIn(base)(new URL(page.url())), `the ended session's cookie opens nothing: ${page.url()}`);
    expect((await page.locator('#staff-name').count()) === 0, 'nobody is signed in');
  });
  await session.close();

  // A staff member whose groups give no finance access.
  const outsider = await suite.session('finance refused');
  await staffSignIn(outsider, base, OUTSIDER, { documentStatus: 403 });
  await outsider.step('the refusal page leads back to the sign-in page', async (page) => {
    expect((await page.textContent('h1')) === 'Anmeldung abgelehnt', 'the page says the sign-in was refused');
    expect((await page.textContent('#notice')).includes('keinen Zugang'), 'and why');
    expect((await page.locator('#staff-name').count()) === 0, 'nobody is signed in');
    await page.click('#back');
    await page.waitForURL(onSignIn(base));
  });
  await outsider.close();

  // Those who only have a finance token: the token form (with its form token) opens a session too.
  const machine = await suite.session('finance token');
  await machine.step('finance sign-in page', (page) => page.goto(`${base}/finance/login`));
  await machine.step('signed in with the finance token', async (page) => {
    await page.fill('#tenant', tenant);
    await page.fill('#token', token);
    await page.click('#token-submit');
    await page.waitForURL(onReconciliation(base, tenant));
    expect((await page.locator('svg.chart').count()) === 1, 'the page draws the chart');
    expect((await page.locator('#sign-out-submit').count()) === 1, 'the page offers the sign-out');
  });
  await machine.close();
}
