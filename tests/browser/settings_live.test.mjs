// The administrator changes an alarm threshold while a session runs, using only links and
// buttons; the nurse finds the patient from her queue, records the next vital, and the alarm is
// raised at the new threshold; the session's record says which settings version changed what.
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

test('an alarm threshold changed during a running session applies to the next vital', async () => {
  const page = await browser.newPage();
  // The administrator lowers the systolic alarm from the demo clinic's 180 to 150.
  await signIn(page, server.base, 'admin');
  await page.click('nav >> text=Settings');
  const row = page.locator('tr[data-key="session.alarm.systolic_high_mmhg"]');
  await row.locator('input[type=number]').fill('150');
  await row.locator('input[name=reason]').fill('clinic policy: tighter BP watch');
  await row.locator('button:has-text("Save")').click();
  await page.waitForURL(/\/settings#setting-session\.alarm\.systolic_high_mmhg$/);
  assert.match(await page.locator('tr[data-key="session.alarm.systolic_high_mmhg"]').textContent(), /150 mmHg/);
  await signOut(page);

  // The nurse opens the running session from her queue and records a BP of 160/90.
  await signIn(page, server.base, 'nurse');
  await page.locator('#sessions-now a', { hasText: 'Okafor' }).click();
  await page.waitForURL(/\/sessions\/\d+$/);
  assert.match(await page.textContent('#phase'), /Running/);
  await page.fill('#v-sys', '160');
  await page.fill('#v-dia', '90');
  await page.fill('#v-spo2', '97');
  await page.click('#save-vitals');
  await page.waitForURL(/\/sessions\/\d+#vitals-section$/);
  assert.match(await page.textContent('#alarms'), /Systolic BP high/i);
  assert.match(await page.textContent('#alarms'), /160 above 150/);
  assert.match(await page.textContent('#settings-applied'), /systolic high alarm: 180 .* → 150/);
  await page.screenshot({ path: resultPath('settings-live-alarm.png'), fullPage: true });
  await page.close();
});
