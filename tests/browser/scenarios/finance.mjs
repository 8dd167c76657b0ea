// The finance page as staff use it: sign-in, today's reconciliation, the filters, the chart.
import { expect } from '../lib/checks.mjs';

export async function financeScenario(suite, base, { tenant, token }) {
  const session = await suite.session('finance');
  await session.step('finance sign-in page', (page) => page.goto(`${base}/finance/login`));

  // ── STAFF SIGN-IN ─────────────────────────────────────────────────────────────────────────────
  // Today: the token form. The "staff" work (issue 10 item 4) adds the OpenID Connect sign-in with
  // the authority's staff provider here, then the uploads (one with an error, one that succeeds)
  // right after the sign-in, and the logout at the end of this scenario.
  await session.step('signed in with the finance token', async (page) => {
    await page.fill('input[name="tenant"]', tenant);
    await page.fill('input[name="token"]', token);
    await page.click('form[action="/finance/login"] button[type="submit"]');
    await page.waitForURL((url) => url.origin === base && url.pathname === `/finance/${tenant}/abgleich`);
  });
  // ── END STAFF SIGN-IN ─────────────────────────────────────────────────────────────────────────

  await session.step("today's reconciliation with its chart", async (page) => {
    expect((await page.locator('svg.chart').count()) === 1, 'the page draws the chart');
    expect((await page.locator('select[name="category"]').count()) === 1, 'the category filter');
  });
  await session.step('filtered by a search term and a category', async (page) => {
    const options = await page.locator('select[name="category"] option').evaluateAll((all) => all.map((o) => o.value));
    expect(options.length > 1, `the category filter offers categories: ${options}`);
    await page.selectOption('select[name="category"]', options[1]);
    await page.fill('input[name="q"]', 'KZ');
    await page.click('form[method="get"] button[type="submit"]');
    await page.waitForURL((url) => url.searchParams.get('q') === 'KZ' && url.searchParams.get('category') === options[1]);
    expect((await page.inputValue('input[name="q"]')) === 'KZ', 'the filter is kept on the page');
  });
  await session.close();
}
