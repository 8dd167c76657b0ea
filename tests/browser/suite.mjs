// pforte's real-browser suite. Started by `cargo test` (tests/api/browser.rs), which runs pforte and
// passes where it listens; this script starts the two upstream providers and the online service on
// other loopback ports, drives headless system Chromium through every scenario, and exits non-zero
// on the first failed step (its message says which check failed, on which page).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { Suite } from './lib/checks.mjs';
import { startOnlineService } from './lib/online_service.mjs';
import { startProvider } from './lib/providers.mjs';
import { demoScenarios, otherHostScenario } from './scenarios/demo.mjs';
import { financeScenario } from './scenarios/finance.mjs';
import { otherOriginScenarios } from './scenarios/other_origin.mjs';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the suite is started by tests/api/browser.rs)`);
  return value;
};

const started = Date.now();
const limitSecs = Number(process.env.SUITE_LIMIT_SECS ?? 480);
setTimeout(() => {
  console.error(`the browser suite did not finish within ${limitSecs} s`);
  process.exit(3);
}, limitSecs * 1000).unref();

const pforte = env('PFORTE_URL');
const screenshots = env('SCREENSHOTS');
fs.mkdirSync(screenshots, { recursive: true });
for (const old of fs.readdirSync(screenshots).filter((f) => f.endsWith('.png'))) fs.rmSync(path.join(screenshots, old));

const providers = await Promise.all(
  [
    ['browser-op-a', 'Konto A', env('OP_A_PORT')],
    ['browser-op-b', 'Konto B', env('OP_B_PORT')],
  ].map(([id, name, port]) => startProvider({ id, name, port: Number(port), pforteUrl: pforte, secret: env('OP_SECRET') })),
);
const service = await startOnlineService({ port: Number(env('RP_PORT')), pforteUrl: pforte, clientId: 'browser-rp', secret: env('RP_SECRET') });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pforte-chromium-'));
const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  // Playwright passes --headless and a fresh --user-data-dir itself; the rest keeps Chromium on loopback and quiet.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
  ],
  env: { ...process.env, HOME: profile },
});
const suite = new Suite({ browser, screenshots, axeOrigins: [pforte, service.origin, ...providers.map((p) => p.origin)] });

// SUITE_ONLY=finance (a comma-separated list of demo, other-origin, finance, other-host) runs only
// those scenarios, for working on one of them; CI runs all.
const only = process.env.SUITE_ONLY ? new Set(process.env.SUITE_ONLY.split(',')) : undefined;
const wanted = (name) => !only || only.has(name);

let failed;
try {
  await suite.selfCheck();
  if (wanted('demo')) await demoScenarios(suite, pforte);
  if (wanted('other-origin')) await otherOriginScenarios(suite, { pforte, service, providers });
  if (wanted('finance')) await financeScenario(suite, pforte, { tenant: env('FINANCE_TENANT'), token: env('FINANCE_TOKEN') });
  if (wanted('other-host')) await otherHostScenario(suite, pforte);
} catch (error) {
  failed = error;
} finally {
  await browser.close().catch(() => {});
  await Promise.all([service.close(), ...providers.map((p) => p.close())]);
  fs.rmSync(profile, { recursive: true, force: true });
}

const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(
  `browser suite: ${suite.results.filter((r) => r.ok).length} steps passed, ${suite.axePages.size} distinct pages checked with axe-core, ${seconds} s; screenshots in ${screenshots}`,
);
if (failed) {
  console.error(String(failed.message ?? failed));
  process.exit(1);
}
