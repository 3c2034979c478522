// The research registry in a real browser: the demo researcher builds a cohort, reads its
// de-identified outcome table (small cells suppressed), durability and predictors, and downloads
// the CSV and Parquet exports and the data dictionary; nothing on the page or in the file
// identifies a patient. The prescriber (the medical director) reads the same table for the whole
// program, identified.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
  assert.match(await dict.text(), /durability_days,integer,days,/);
  // The Parquet export, downloaded as a user would (a real download), is a Parquet file.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#export-parquet'),
  ]);
  assert.equal(download.suggestedFilename(), 'registry.parquet');
  const saved = resultPath('registry.parquet');
  await download.saveAs(saved);
  const bytes = readFileSync(saved);
  assert.equal(bytes.subarray(0, 4).toString(), 'PAR1');
  assert.equal(bytes.subarray(bytes.length - 4).toString(), 'PAR1');

  // Another role does not reach it.
  const nurse = await browser.newPage();
  await signIn(nurse, server.base, 'nurse');
  const r = await nurse.goto(`${server.base}/research`);
  assert.equal(r.status(), 403);
  await nurse.close();
  await page.close();
});

test('the medical director reads the program outcomes, identified, with links to the charts', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  await signIn(page, server.base, 'prescriber');
  await page.click('nav >> text=Program outcomes');
  await page.waitForSelector('#outcome-table');
  await page.waitForSelector('#program-patients');
  const first = page.locator('#program-patients a').first();
  const name = (await first.textContent()).trim();
  assert.ok(name.length > 0);
  await page.screenshot({ path: resultPath('program-outcomes.png'), fullPage: true });
  assert.doesNotMatch(await page.textContent('main'), /S-[2-9A-Z]{12}/, 'no study id beside a name');
  await first.click();
  await page.waitForURL(/\/patients\/\d+/);
  assert.match(await page.textContent('main'), new RegExp(name.split(' ')[1] ?? name));
  // The researcher does not reach the identified dashboard.
  const rae = await browser.newPage();
  await signIn(rae, server.base, 'researcher');
  const r = await rae.goto(`${server.base}/program`);
  assert.equal(r.status(), 403);
  await rae.close();
  await page.close();
});
