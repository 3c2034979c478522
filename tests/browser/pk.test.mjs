// PK simulation in a real browser: a prescriber compares 0.5 mg/kg IV over 40 min with intranasal
// and oral alternatives for a demo patient, sees the curves with population bands, the key
// numbers, the assumptions and the model's validity and sources.
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

test('prescriber compares three regimens and sees curves, bands and assumptions', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1800 } });
  await signIn(page, server.base, 'prescriber');
  await page.click('nav >> text=Simulate');
  await page.waitForURL(`${server.base}/simulate`);

  // A demo patient's weight and age fill in from the record.
  await page.fill('#patient', '1');
  await page.selectOption('#model', 'domino');
  await page.fill('#weight_kg', '');
  await page.fill('#iiv', 'v1=30, k10=30, k12=30');
  await page.fill('#subjects', '500');
  await page.fill('#target_ng_ml', '100');
  assert.equal(await page.inputValue('#r0_route'), 'iv_infusion');
  assert.equal(await page.inputValue('#r0_dose'), '0.5');
  assert.equal(await page.inputValue('#r0_duration'), '40');
  assert.equal(await page.inputValue('#r1_route'), 'intranasal');
  assert.equal(await page.inputValue('#r2_route'), 'oral');
  await page.click('#simulate-run');
  await page.waitForSelector('#pk-chart svg');

  assert.match(await page.textContent('#patient-note'), /from the record/);
  assert.notEqual(await page.inputValue('#weight_kg'), '');

  const sections = await page.$$('.pk-result');
  assert.equal(sections.length, 3);
  const results = await page.textContent('#pk-results');
  assert.match(results, /iv_infusion over 40 min/);
  assert.match(results, /Cmax, population median \(5–95%\)/);
  assert.match(results, /Reaching 100 ng\/mL/);
  assert.match(results, /bioavailability \(intranasal\)[^]*P23[^]*Alternatives/);
  assert.match(results, /bioavailability \(oral\)/);
  assert.match(results, /IIV of v1 = 0\.3000 CV \(your choice\)/);
  assert.match(results, /Sources: P1, P2, P3/);
  assert.match(results, /first-pass metabolite exposure is not modelled/);

  // The chart: one band per regimen and a legend naming each regimen.
  assert.equal(await page.locator('#pk-chart svg polygon').count(), 3);
  const chart = await page.innerHTML('#pk-chart');
  assert.match(chart, /intranasal/);
  assert.match(await page.textContent('#pk-advisory'), /never drives an infusion pump/);
  await page.screenshot({ path: resultPath('pk-compare.png'), fullPage: true });
});
