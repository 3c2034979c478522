// Two sites in a real browser: the administrator sets one key for North only on the site's
// settings page (marked as the site's, and given back to the organisation's); the main site's
// pharmacist sends sealed stock to North, and North's pharmacist receives it from the ledger
// page, each ledger showing its side; a site in another time zone opens its schedule on its own
// today.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

test('a site sets a key of its own sessions for itself', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, server.base, 'admin');
  await page.goto(`${server.base}/settings`);
  await page.click('#per-site >> text=settings at North clinic');
  await page.waitForSelector('#site-settings');
  const row = page.locator('#setting-session\\.alarm\\.spo2_low_percent');
  assert.match(await row.textContent(), /the organisation's/);
  // A reason is required; then the value is North's own.
  await row.locator('input[name=value]').fill('94');
  await row.locator('input[name=reason]').first().fill('North monitors more closely');
  await row.locator('button', { hasText: 'Set for this site' }).click();
  await page.waitForSelector('#site-settings');
  const set = page.locator('#setting-session\\.alarm\\.spo2_low_percent');
  assert.match(await set.textContent(), /94\s*%?\s*set by this site/);
  await page.screenshot({ path: resultPath('site-settings.png') });
  // The main site still has the organisation's value.
  await page.goto(`${server.base}/sites/1/settings`);
  assert.match(
    await page.locator('#setting-session\\.alarm\\.spo2_low_percent').textContent(),
    /the organisation's/,
  );
  // Given back to the organisation's value at North.
  await page.goto(`${server.base}/sites/2/settings`);
  const back = page.locator('#setting-session\\.alarm\\.spo2_low_percent');
  await back.locator('input[name=reason]').nth(1).fill('back to the organisation');
  await back.locator('button', { hasText: "Use the organisation's value" }).click();
  await page.waitForSelector('#site-settings');
  assert.match(
    await page.locator('#setting-session\\.alarm\\.spo2_low_percent').textContent(),
    /the organisation's/,
  );
  await signOut(page);
  await page.close();
});

test('sealed stock moves from the main site to North as a pair of entries', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, server.base, 'pharmacist');
  await page.goto(`${server.base}/ledger`);
  const form = page.locator('#transfer-form');
  await page.selectOption('#to_site', { label: 'North clinic' });
  await form.locator('input[name=container]').nth(0).check();
  await form.locator('input[name=container]').nth(1).check();
  await page.fill('#transfer-invoice', 'TR-BROWSER-1');
  await form.locator('button[type=submit]').click();
  await page.waitForSelector('#ledger-message');
  assert.match(await page.textContent('#entries'), /Sent 2 sealed containers to site 2 .*TR-BROWSER-1/);
  await signOut(page);

  await signIn(page, server.base, 'north-pharmacist');
  await page.goto(`${server.base}/ledger`);
  const due = page.locator('#transfers-due li');
  assert.equal(await due.count(), 1);
  assert.match(await due.textContent(), /From Main site .*TR-BROWSER-1/);
  await page.screenshot({ path: resultPath('site-transfer-due.png'), fullPage: true });
  await due.locator('button').click();
  await page.waitForSelector('#ledger-message');
  assert.equal(await page.locator('#transfers-due').count(), 0);
  assert.match(await page.textContent('#entries'), /Received 2 sealed containers from site 1 .*TR-BROWSER-1/);
  assert.match(await page.textContent('#containers'), /DEMO-K50-1/);
  await signOut(page);
  await page.close();
});

test("a site's time zone decides its users' today", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, server.base, 'admin');
  await page.goto(`${server.base}/users`);
  // UTC+14: the date there is never behind the server's.
  await page.fill('input[aria-label="Time zone of site 2"]', 'Pacific/Kiritimati');
  await page.click('#edit-site-2 button[type=submit]');
  await page.waitForLoadState();
  await signOut(page);
  const dayIn = (zone) => new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(new Date());
  await signIn(page, server.base, 'north-nurse');
  await page.goto(`${server.base}/schedule`);
  assert.equal(await page.textContent('h1'), `Schedule — ${dayIn('Pacific/Kiritimati')}`);
  await page.screenshot({ path: resultPath('site-time-zone.png') });
  await signOut(page);
  await page.close();
});

test('one account holds a different role at each site and acts in the chosen site\'s', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // The demo's float nurse is North's scheduler: signed in, she is the main site's nurse.
  await signIn(page, server.base, 'float');
  const chooser = page.locator('.site-choice select[name=site]');
  assert.deepEqual(
    (await chooser.locator('option').allTextContents()).map((t) => t.trim()),
    ['Main site (nurse)', 'North clinic (scheduler)'],
  );
  assert.equal(await page.locator('nav a[href="/suite"]').count() > 0, true);
  // Choosing North acts as its scheduler: the schedule is North's, the clinical suite is not hers.
  await chooser.selectOption({ label: 'North clinic (scheduler)' });
  // The page comes back from the choice acting as North's scheduler.
  await page.waitForFunction(() => document.querySelector('a.who')?.textContent.includes('scheduler'));
  await page.goto(`${server.base}/schedule`);
  assert.match(await page.textContent('body'), /North 1/);
  assert.doesNotMatch(await page.textContent('body'), /Chair 1\b/);
  assert.equal(await page.locator('nav a[href="/suite"]').count(), 0);
  await page.screenshot({ path: resultPath('site-role-scheduler.png') });
  await signOut(page);
  // The administrator sees and changes the role per site on the users page.
  await signIn(page, server.base, 'admin');
  await page.goto(`${server.base}/users`);
  const row = page.locator('tr[data-user="float"]');
  const north = row.locator('select[aria-label="Role of float at North clinic"]');
  assert.equal(await north.inputValue(), 'scheduler');
  await north.selectOption('therapist');
  await row.locator('button', { hasText: 'Save sites' }).click();
  await page.waitForSelector('#users-message');
  assert.equal(
    await page.locator('tr[data-user="float"] select[aria-label="Role of float at North clinic"]').inputValue(),
    'therapist',
  );
  await page.screenshot({ path: resultPath('site-roles-users.png'), fullPage: true });
  await signOut(page);
  await page.close();
});

test("a site's own protocol is added for North and listed as North's", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const builtin = readFileSync(
    new URL('../../crates/ketcare-clinical/data/protocols/trd-adult-iv-ketamine.toml', import.meta.url),
    'utf8',
  );
  const id = 'north-trd-adult-iv-ketamine';
  await signIn(page, server.base, 'admin');
  await page.goto(`${server.base}/settings`);
  await page.fill('#file_name', 'north-trd.toml');
  await page.selectOption('#protocol_site', { label: 'North clinic only (its own protocol)' });
  await page.fill('#toml', builtin.replace('id = "trd-adult-iv-ketamine"', `id = "${id}"`));
  await page.click('button:has-text("Add protocol")');
  await page.waitForSelector('#site-protocols');
  assert.match(await page.textContent('#site-protocols'), /north-trd\.toml — North clinic's own/);
  await page.goto(`${server.base}/protocols/${id}`);
  assert.match(await page.textContent('#protocol-owner'), /North clinic's own protocol, used only there/);
  await page.screenshot({ path: resultPath('site-protocol.png') });
  await signOut(page);
  // The main site's nurse sees it is not one of her sites'.
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/protocols`);
  const row = page.locator('#protocols tr', { hasText: id });
  assert.match(await row.textContent(), /North clinic's own protocol, used only there \(not at your sites\)/);
  await signOut(page);
  await page.close();
});
