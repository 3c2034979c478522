// Operations in a real browser: a scheduler books an esketamine course onto a chair (and a
// clashing course is refused with its reasons); a nurse draws ketamine for a session and records
// the waste with a prescriber as witness, who signs with their own password; the session balances.
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

// The next Monday after today (the demo rosters the prescriber on weekdays from today).
function nextMonday() {
  const d = new Date();
  d.setDate(d.getDate() + ((8 - d.getDay()) % 7 || 7));
  return d.toISOString().slice(0, 10);
}

test('scheduler books a course; a clashing course is refused with reasons', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'scheduler');
  await page.click('nav >> text=Schedule');
  const monday = nextMonday();
  await page.fill('#patient_id', '1');
  await page.selectOption('#template_id', 'esketamine-trd');
  await page.fill('#first_day', monday);
  await page.fill('#time', '09:00');
  await page.selectOption('#chair_id', { label: 'Chair 1' });
  await page.click('#book-course button[type=submit]');
  await page.waitForSelector('#schedule-message');
  assert.match(await page.textContent('#schedule-message'), /Course booked: 16 sessions/);
  // Week view of the first week: Monday and Thursday, each 09:00 – 11:10 (10 min dose + 120 min observation).
  const first = await page.locator('#schedule-grid .booking').allTextContents();
  assert.equal(first.length, 2);
  assert.match(first[0], /09:00 – 11:10/);
  await page.screenshot({ path: resultPath('ops-week.png'), fullPage: true });

  // Another patient on the same chair at the same time: nothing is booked, each reason shown.
  await page.fill('#patient_id', '2');
  await page.selectOption('#template_id', 'esketamine-trd');
  await page.fill('#first_day', monday);
  await page.fill('#time', '10:00');
  await page.selectOption('#chair_id', { label: 'Chair 1' });
  await page.click('#book-course button[type=submit]');
  await page.waitForSelector('#conflicts');
  assert.match(await page.textContent('#schedule-error'), /Nothing was booked/);
  assert.match(await page.textContent('#conflicts'), /chair \d+ is taken by booking/);
  assert.match(await page.textContent('#conflicts'), /nurse \d+ already monitors/);
  await signOut(page);
  await page.close();
});

test('a nurse draws and records waste with a witness; the session balances', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'nurse');
  await page.click('nav >> text=Ledger');
  assert.match(await page.textContent('#on-hand'), /Ketamine 50 mg\/mL/);

  // 1 mL of 50 mg/mL = 50 mg drawn for session 9001 (patient 1).
  await page.selectOption('#draw-container', '1');
  await page.fill('#draw-session', '9001');
  await page.fill('#draw-patient', '1');
  await page.fill('#draw-volume', '1');
  await page.click('#draw-form button[type=submit]');
  await page.waitForSelector('#ledger-message');
  assert.match(await page.textContent('#ledger-message'), /recorded \(draw\)/);

  // 35 mg given: not balanced yet.
  await page.fill('#bal-session', '9001');
  await page.fill('#bal-given', '35');
  await page.click('#balance-form button[type=submit]');
  assert.match(await page.textContent('#balance'), /15 mg drawn is not accounted for/);

  // The nurse cannot witness her own waste.
  await page.fill('#waste-session', '9001');
  await page.fill('#waste-amount', '15');
  await page.fill('#witness-username', 'nurse');
  await page.fill('#witness-password', 'ketcare-demo');
  await page.click('#waste-form button[type=submit]');
  await page.waitForSelector('#ledger-error');
  assert.match(await page.textContent('#ledger-error'), /different person/);

  // The prescriber witnesses, typing their own password on the nurse's screen.
  await page.fill('#waste-session', '9001');
  await page.fill('#waste-amount', '15');
  await page.fill('#waste-note', 'left in syringe after the infusion');
  await page.fill('#witness-username', 'prescriber');
  await page.fill('#witness-password', 'ketcare-demo');
  await page.click('#waste-form button[type=submit]');
  await page.waitForSelector('#ledger-message');
  assert.match(await page.textContent('#ledger-message'), /recorded \(waste\)/);
  assert.match(await page.textContent('#entries'), /"username":"prescriber"/);

  await page.fill('#bal-session', '9001');
  await page.fill('#bal-given', '35');
  await page.click('#balance-form button[type=submit]');
  assert.match(await page.textContent('#balance'), /balanced: 50 mg drawn = 35 mg given \+ 15 mg wasted/);
  await page.screenshot({ path: resultPath('ops-ledger.png'), fullPage: true });
  await signOut(page);
  await page.close();
});
