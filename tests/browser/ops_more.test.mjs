// Operations in a real browser, continued: a nurse records a patient's consent and withdraws it
// with a reason (the status then says it is not valid, by whom and why); a pharmacist counts the
// stock and sees the book beside the count, then opens the printable inventory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, signOut, resultPath } from './harness.mjs';

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

test('a nurse withdraws a consent with a reason; it is no longer valid', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/patients/1/consent`);
  await page.selectOption('#protocol_id', 'trd-adult-esketamine');
  await page.selectOption('#signer', 'patient');
  await page.click('#sign-consent button[type=submit]');
  await page.waitForSelector('#consent-message');
  const row = page.locator('#consent-status tr', { hasText: 'trd-adult-esketamine' });
  assert.match(await row.textContent(), /Valid/);

  const form = page.locator('form.withdraw-consent').first();
  await form.locator('input[name=reason]').fill('patient moved away');
  await form.locator('button[type=submit]').click();
  await page.waitForSelector('#consent-message');
  assert.match(await page.textContent('#consent-message'), /Consent withdrawn/);
  assert.match(await row.textContent(), /Not valid: consent was withdrawn .*nurse.*patient moved away/);
  assert.match(await page.textContent('#signatures'), /withdrawn .* by nurse: patient moved away/);
  await page.screenshot({ path: resultPath('ops-consent-withdrawn.png'), fullPage: true });
  await signOut(page);
  await page.close();
});

test('a pharmacist counts the stock and prints the inventory', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'pharmacist');
  await page.click('nav >> text=Ledger');
  // What is on the shelf (here, what the containers table says), counted on a blind form.
  const onShelf = await page.$$eval('#containers tbody tr', (rows) => rows
    .map((r) => [...r.cells].map((c) => c.textContent.trim()))
    .filter((c) => c[7] === 'sealed' || c[7] === 'open')
    .map((c) => [c[0], c[5].replace(' mL', '')]));
  assert.ok(onShelf.length > 0);
  await page.click('#count-link');
  await page.fill('#period', 'day shift');
  for (const [id, ml] of onShelf) {
    assert.equal(await page.inputValue(`#counted_${id}`), '');
    await page.fill(`#counted_${id}`, ml);
  }
  await page.click('#count-form button[type=submit]');
  await page.waitForSelector('#ledger-message');
  await page.click('#counts-link');
  const sheet = page.locator('.count-sheet').first();
  assert.match(await sheet.textContent(), /day shift/);
  assert.match(await sheet.textContent(), /balances/);
  assert.match(await sheet.textContent(), /Expected \(book\)\s*Counted/);

  await page.click('nav >> text=Ledger');
  await page.selectOption('#inventory', 'biennial');
  await page.fill('#taken', new Date().toISOString().slice(0, 10));
  await page.fill('#registrant_name', 'Demo Clinic');
  await page.fill('#registrant_address', '1 Main Street');
  await page.fill('#dea_number', 'AB1234563');
  await page.click('#inventory-form button[type=submit]');
  await page.waitForSelector('#ledger-message');
  await page.locator('#entries a', { hasText: 'printable' }).first().click();
  await page.waitForSelector('#inventory-document');
  assert.match(await page.textContent('#inventory-document'), /Biennial inventory/);
  assert.match(await page.textContent('#inventory-lines'), /Ketamine 50 mg\/mL/);
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('header.top').isVisible(), false);
  await page.screenshot({ path: resultPath('ops-inventory-print.png'), fullPage: true });
  await page.emulateMedia({ media: 'screen' });
  await signOut(page);
  await page.close();
});
