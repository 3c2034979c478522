// The research registry in a real browser: the demo researcher builds a cohort, reads its
// de-identified outcome table (small cells suppressed), durability and predictors, and downloads
// the CSV export and its data dictionary; nothing on the page or in the file identifies a patient.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, resultPath } from './harness.mjs';

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

const DATE = /\b\d{4}-\d{2}-\d{2}\b/;

test('a researcher builds a cohort, reads its outcomes and downloads the de-identified export', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  await signIn(page, server.base, 'researcher');
  await page.click('nav >> text=Research registry');
  await page.waitForSelector('#outcome-table');
  assert.match(await page.textContent('#n'), /^(\d+|< 3)$/);
  await page.selectOption('#instrument', 'phq9');
  await page.selectOption('#age_band', 'adult');
  await page.click('#cohort-form button[type=submit]');
  await page.waitForURL(/age_band=adult/);
  await page.waitForSelector('#outcome-table');
  const text = await page.textContent('main');
  assert.match(text, /Response \(days 14–31\)/);
  assert.doesNotMatch(text, DATE, 'no calendar date on the page');
  assert.doesNotMatch(text, /KC-\d{4}|Alvarez/, 'no MRN or name on the page');
  // Saved under a name; saving it again is its next version.
  for (const version of [1, 2]) {
    await page.fill('#cohort-name', 'Adults on PHQ-9');
    await page.click('#save-cohort button[type=submit]');
    await page.waitForSelector(`#saved li:has-text("version ${version}")`);
  }
  assert.match(await page.getAttribute('#saved li a', 'href'), /age_band=adult/);
  await page.screenshot({ path: resultPath('research-cohort.png'), fullPage: true });

  const href = await page.getAttribute('#export-csv', 'href');
  const csv = await page.request.get(`${server.base}${href}`);
  assert.equal(csv.status(), 200);
  assert.match(csv.headers()['content-disposition'], /registry\.csv/);
  const body = await csv.text();
  assert.match(body.split('\n')[0], /^study_id,age,age_band,sex/);
  assert.doesNotMatch(body, DATE);
  assert.doesNotMatch(body, /KC-\d{4}|Alvarez|@/);
  const dict = await page.request.get(`${server.base}/research/dictionary.csv`);
  assert.match(await dict.text(), /durability_days,days,/);

  // Another role does not reach it.
  const nurse = await browser.newPage();
  await signIn(nurse, server.base, 'nurse');
  const r = await nurse.goto(`${server.base}/research`);
  assert.equal(r.status(), 403);
  await nurse.close();
  await page.close();
});
