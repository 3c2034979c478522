// An administrator's account work in a real browser, then their own second factor: the
// scheduler is locked out by wrong passwords from this address; the administrator unlocks them
// and resets their password; the scheduler signs in with the temporary one and must choose their
// own. The administrator then sets up a second factor (the code computed here, RFC 6238, with
// Node's HMAC-SHA1, as an authenticator app does), signs out, and signs in with password + code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startKetcare, openBrowser, signIn, signOut, resultPath } from './harness.mjs';

// RFC 4648 base32 (no padding) to bytes.
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = ((value << 5) | i) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// RFC 6238 TOTP: HMAC-SHA1 of the 30-second step counter, dynamic truncation (RFC 4226 §5.3),
// six digits.
function totp(secret, seconds = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(seconds / 30)));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

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

test('the code computed here is RFC 6238\'s (Appendix B, SHA-1 key, last six digits)', () => {
  const key = base32('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'); // "12345678901234567890"
  assert.equal(key.toString(), '12345678901234567890');
  assert.equal(totp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 59), '287082');
  assert.equal(totp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 1111111109), '081804');
  assert.equal(totp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 2000000000), '279037');
});

test('administrator unlocks a user, resets their password and enrols a second factor', async () => {
  const page = await browser.newPage();
  // Locked out: five wrong passwords pause this address for the scheduler's account, and then
  // even the right one gets the one answer every refused sign-in gets.
  for (let i = 0; i < 5; i++) await signIn(page, server.base, 'scheduler', 'not-the-password');
  await signIn(page, server.base, 'scheduler');
  assert.match(await page.textContent('#login-error'), /Wrong username or password, or too many attempts/);

  // The administrator unlocks the account and resets its password.
  await signIn(page, server.base, 'admin');
  await page.click('nav >> text=Users');
  await page.locator('tr[data-user="scheduler"] button[value=unlock]').click();
  assert.match(await page.textContent('#users-message'), /scheduler: unlock/);
  page.once('dialog', (d) => d.accept());
  await page.locator('tr[data-user="scheduler"] button[value=reset_password]').click();
  const message = await page.textContent('#users-message');
  const temporary = message.match(/Temporary password for scheduler: ([0-9a-f]{16})/)[1];
  assert.match(await page.locator('tr[data-user="scheduler"] .status').textContent(), /must choose a new password/);
  await page.screenshot({ path: resultPath('accounts-admin-reset.png'), fullPage: true });
  await signOut(page);

  // The scheduler signs in with the temporary password and can do nothing but choose their own.
  await signIn(page, server.base, 'scheduler', temporary);
  await page.waitForURL(/\/account\/password$/);
  assert.match(await page.textContent('#password-required'), /temporary password/);
  await page.goto(`${server.base}/schedule`);
  await page.waitForURL(/\/account\/password$/);
  await page.fill('#current', temporary);
  await page.fill('#new', 'sam picks a long phrase');
  await page.fill('#repeat', 'sam picks a long phrase');
  await page.click('#password-form button[type=submit]');
  await page.waitForURL(/\/login/);
  await signIn(page, server.base, 'scheduler', 'sam picks a long phrase');
  assert.match(await page.textContent('h1'), /Welcome, Sam Scheduler/);
  await signOut(page);

  // The administrator sets up a second factor from their account page.
  await signIn(page, server.base, 'admin');
  await page.click('a.who');
  await page.click('#second-factor-link');
  await page.waitForURL(/\/account\/second-factor$/);
  assert.match(await page.textContent('#second-factor-status'), /no second factor/);
  await page.click('#second-factor-begin button[value=begin]');
  const secret = (await page.textContent('#totp-secret')).trim();
  assert.match(secret, /^[A-Z2-7]{32}$/);
  assert.match(await page.textContent('#totp-uri'), /^otpauth:\/\/totp\/ketcare:admin\?/);
  await page.screenshot({ path: resultPath('accounts-second-factor-setup.png'), fullPage: true });
  await page.fill('#code', totp(secret));
  await page.click('#second-factor-confirm button[value=confirm]');
  assert.match(await page.textContent('#second-factor-message'), /Your second factor is on/);
  const codes = await page.locator('#recovery-codes code').allTextContents();
  assert.equal(codes.length, 10);
  for (const c of codes) assert.match(c, /^[a-z2-7]{5}-[a-z2-7]{5}$/);
  assert.match(await page.textContent('#second-factor-status'), /Recovery codes left: 10/);
  await page.screenshot({ path: resultPath('accounts-second-factor-on.png'), fullPage: true });
  await page.click('nav >> text=Users');
  assert.match(await page.locator('tr[data-user="admin"] .status').textContent(), /second factor on/);
  // Their own goes only with a current code, on their account page: no reset button here.
  assert.equal(await page.locator('tr[data-user="admin"] button[value=reset_second_factor]').count(), 0);
  await page.screenshot({ path: resultPath('accounts-users-second-factor.png'), fullPage: true });
  await signOut(page);

  // The password alone is not enough now: the second step asks for the app's code. The code of
  // the step after the one used to confirm is accepted (one step of clock skew either side), and
  // is never the one already used.
  await signIn(page, server.base, 'admin');
  await page.waitForSelector('#second-step-form');
  assert.match(await page.textContent('h1'), /Second step/);
  const near = [-30, 0, 30, 60].map((d) => totp(secret, Date.now() / 1000 + d));
  await page.fill('#code', ['000000', '111111', '222222', '333333', '444444'].find((c) => !near.includes(c)));
  await page.click('#second-step-form button[type=submit]');
  assert.match(await page.textContent('#login-error'), /That code is not right/);
  await page.screenshot({ path: resultPath('accounts-second-step.png'), fullPage: true });
  await page.fill('#code', totp(secret, Date.now() / 1000 + 30));
  await page.click('#second-step-form button[type=submit]');
  assert.match(await page.textContent('h1'), /Welcome, Alex Admin/);
  await page.close();
});
