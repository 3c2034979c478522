// Accessibility: every role's main pages, on a fresh demo clinic, checked with axe-core against
// WCAG 2 A and AA — no serious or critical violation (labels tied to inputs, names for charts
// and controls, contrast, keyboard-reachable actions).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startKetcare, openBrowser, signIn, signOut, resultPath } from './harness.mjs';

const require = createRequire(import.meta.url);
const axePath = require.resolve('axe-core/axe.min.js');

let server;
let browser;

before(async () => {
  server = await startKetcare();
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const PAGES = [
  [null, ['/login']],
  ['nurse', ['/', '/patients', '/patients/1', '/patients/1/measures', '/patients/1/consent',
    '/alerts', '/suite', '/schedule', '/ledger', '/sessions/1']],
  ['prescriber', ['/', '/patients/1/dose', '/patients/1/screen', '/protocols',
    '/protocols/trd-adult-iv-ketamine', '/simulate', '/pk/exposure']],
  ['pharmacist', ['/', '/ledger', '/ledger/count']],
  ['therapist', ['/', '/patients/3', '/patients/3/therapy']],
  ['admin', ['/', '/settings', '/users', '/audit', '/fhir-clients']],
];

test('every role\'s main pages have no serious accessibility violation (axe-core, WCAG 2 A/AA)', async () => {
  // The pages' content security policy allows no inline script; the checker is injected by the
  // test browser only.
  const ctx = await browser.newContext({ bypassCSP: true });
  const page = await ctx.newPage();
  const found = [];
  for (const [user, paths] of PAGES) {
    if (user) await signIn(page, server.base, user);
    for (const path of paths) {
      const r = await page.goto(`${server.base}${path}`);
      assert.equal(r.status(), 200, `${user} ${path}`);
      await page.addScriptTag({ path: axePath });
      const result = await page.evaluate(() => window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] },
      }));
      for (const v of result.violations) {
        if (v.impact === 'serious' || v.impact === 'critical') {
          found.push(`${user ?? 'anonymous'} ${path}: ${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
        }
      }
    }
    if (user) await signOut(page);
  }
  await page.goto(`${server.base}/login`);
  await page.screenshot({ path: resultPath('a11y-login.png') });
  await ctx.close();
  assert.deepEqual(found, [], found.join('\n'));
});
