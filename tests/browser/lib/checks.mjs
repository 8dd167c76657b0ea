// What every step of the suite is held to: no console error, no CSP violation, no failed request
// and no resource answering >= 400 while the step runs; each page pforte (or the suite's online
// service) serves passes axe-core without serious or critical violations; a screenshot of every
// step under target/browser/.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const NAVIGATION_LIMIT_MS = 15_000;

// Runs in every page before its own scripts (injected by the DevTools protocol, so pforte's CSP
// does not block it): CSP violations reach the console, where the guard sees them.
const REPORT_CSP_VIOLATIONS = () => {
  document.addEventListener('securitypolicyviolation', (event) => {
    console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || '(inline)'}`);
  });
};

export class Suite {
  constructor({ browser, screenshots, axeOrigins }) {
    this.browser = browser;
    this.screenshots = screenshots;
    this.axeOrigins = new Set(axeOrigins);
    this.stepCount = 0;
    this.axePages = new Set();
    this.results = [];
  }

  /** The accessibility check must be able to fail: axe-core has to report an unlabelled input. */
  async selfCheck() {
    const context = await this.browser.newContext();
    try {
      const page = await context.newPage();
      await page.setContent('<!doctype html><html lang="de"><title>Probe</title><main><input id="probe"></main></html>');
      await page.evaluate(AXE_SOURCE);
      const found = await page.evaluate(async () => (await globalThis.axe.run(document)).violations.map((v) => v.id));
      if (!found.includes('label')) throw new Error(`axe-core did not report an unlabelled input (${found})`);
    } finally {
      await context.close();
    }
  }

  /** A fresh browser profile (cookies, storage) for one scenario, with `locale` as Accept-Language. */
  async session(name, { locale = 'de-DE' } = {}) {
    const context = await this.browser.newContext({ locale, extraHTTPHeaders: { 'accept-language': locale } });
    await context.addInitScript(REPORT_CSP_VIOLATIONS);
    const page = await context.newPage();
    page.setDefaultTimeout(NAVIGATION_LIMIT_MS);
    return new Session(this, name, context, page);
  }
}

class Session {
  constructor(suite, name, context, page) {
    this.suite = suite;
    this.name = name;
    this.context = context;
    this.page = page;
    this.problems = [];
    this.allowedDocumentStatus = new Set();
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const source = message.location()?.url;
      // Chromium logs a page that answers with an error status; a step that expects that status allows it.
      const status = /^Failed to load resource: the server responded with a status of (\d+)/.exec(message.text());
      if (status && this.allowedDocumentStatus.has(Number(status[1])) && source === page.url()) return;
      this.problems.push(`console error on ${short(page.url())}: ${message.text()}${source ? ` (${short(source)})` : ''}`);
    });
    page.on('pageerror', (error) => this.problems.push(`script error on ${page.url()}: ${error.message}`));
    page.on('requestfailed', (request) => {
      this.problems.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
    });
    page.on('response', (response) => {
      const request = response.request();
      const status = response.status();
      if (status < 400) return;
      const isDocument = request.resourceType() === 'document';
      if (isDocument && this.allowedDocumentStatus.has(status)) return;
      this.problems.push(`${request.resourceType()} ${request.method()} ${response.url()} answered ${status}`);
    });
  }

  /**
   * One step: runs `action`, then checks the page the browser landed on. `documentStatus` is an
   * error status the step expects for the page itself (e.g. 403 for "level too low").
   */
  async step(title, action, { documentStatus } = {}) {
    const suite = this.suite;
    const number = ++suite.stepCount;
    const started = Date.now();
    const before = this.problems.length;
    this.allowedDocumentStatus = new Set(documentStatus ? [documentStatus] : []);
    let failure;
    try {
      await action(this.page);
      await this.page.waitForLoadState('load');
    } catch (error) {
      failure = error;
    }
    const file = `${String(number).padStart(2, '0')}-${slug(this.name)}-${slug(title)}.png`;
    await this.page.screenshot({ path: path.join(suite.screenshots, file), fullPage: true }).catch(() => {});
    const problems = this.problems.slice(before);
    if (!failure && problems.length === 0) {
      const violations = await this.axe().catch((error) => [`axe could not run: ${error.message}`]);
      problems.push(...violations);
    }
    const ms = Date.now() - started;
    if (failure || problems.length > 0) {
      const reason = [...problems, ...(failure ? [String(failure.message ?? failure)] : [])].join('\n    ');
      suite.results.push({ number, session: this.name, title, ms, ok: false });
      throw new Error(`step ${number} "${this.name}: ${title}" failed on ${short(this.page.url())}:\n    ${reason}`);
    }
    suite.results.push({ number, session: this.name, title, ms, ok: true });
    console.log(`ok   ${String(number).padStart(2, ' ')} ${this.name}: ${title} (${ms} ms) ${short(this.page.url())}`);
  }

  /** axe-core on the current page, if pforte or the suite's own peers (service, providers) served it. */
  async axe() {
    const url = new URL(this.page.url());
    if (!this.suite.axeOrigins.has(url.origin)) return [];
    await this.page.evaluate(AXE_SOURCE);
    const violations = await this.page.evaluate(async () => {
      const result = await globalThis.axe.run(document, { resultTypes: ['violations'] });
      return result.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `axe ${v.impact} ${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
    });
    this.suite.axePages.add(`${url.origin}${url.pathname.replace(/[A-Za-z0-9_-]{20,}/g, '{id}')}`);
    return violations;
  }

  async close() {
    await this.context.close();
  }
}

/** Moves the focus with Tab alone until it is on `selector`, then presses `key` there. */
export async function keyboard(page, selector, key = 'Enter', maxTabs = 60) {
  for (let i = 0; i < maxTabs; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) {
      await page.keyboard.press(key);
      return;
    }
  }
  throw new Error(`the keyboard (Tab) never reached ${selector} on ${page.url()}`);
}

/** Throws unless `condition` holds, with `what` as the message. */
export function expect(condition, what) {
  if (!condition) throw new Error(`expected: ${what}`);
}

/** A URL without its query (codes and states make messages unreadable). */
function short(url) {
  return String(url).split('?')[0];
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}
