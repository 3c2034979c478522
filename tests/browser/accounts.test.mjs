// The administrator's account work in a real browser: a stranger's wrong passwords pause only
// that address, the administrator unlocks the account and resets its password; the user signs
// in with the temporary password, can do nothing but choose their own, and signs in with it.
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

test('administrator unlocks and resets a user; the user must choose a new password', async () => {
  const page = await browser.newPage();
  // Five wrong passwords for the therapist: this address is paused for that account, with the
  // one answer every refused sign-in gets.
  for (let i = 0; i < 5; i++) await signIn(page, server.base, 'therapist', 'not-the-password');
  await signIn(page, server.base, 'therapist');
  assert.match(await page.textContent('#login-error'), /Wrong username or password, or too many attempts/);

  await signIn(page, server.base, 'admin');
  await page.click('nav >> text=Users');
  const row = page.locator('tr[data-user="therapist"]');
  await row.locator('button[value=unlock]').click();
  assert.match(await page.textContent('#users-message'), /therapist: unlock/);
  page.once('dialog', (d) => d.accept());
  await page.locator('tr[data-user="therapist"] button[value=reset_password]').click();
  const message = await page.textContent('#users-message');
  const temporary = message.match(/Temporary password for therapist: ([0-9a-f]{16})/)[1];
  assert.match(await page.locator('tr[data-user="therapist"] .status').textContent(), /must choose a new password/);
  await page.screenshot({ path: resultPath('accounts-admin.png'), fullPage: true });
  await signOut(page);

  // The therapist signs in with it and is sent to choose their own.
  await signIn(page, server.base, 'therapist', temporary);
  await page.waitForURL(/\/account\/password$/);
  assert.match(await page.textContent('#password-required'), /temporary password/);
  await page.click('nav >> text=Patients');
  await page.waitForURL(/\/account\/password$/);
  await page.fill('#current', temporary);
  await page.fill('#new', 'tess chooses a long phrase');
  await page.fill('#repeat', 'tess chooses a long phrase');
  await page.screenshot({ path: resultPath('accounts-choose-password.png'), fullPage: true });
  await page.click('#password-form button[type=submit]');
  await page.waitForURL(/\/login/);
  await signIn(page, server.base, 'therapist', 'tess chooses a long phrase');
  assert.match(await page.textContent('h1'), /Welcome, Tess Therapist/);
  await page.close();
});
