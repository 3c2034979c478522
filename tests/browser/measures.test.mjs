// Measurement-based care in a real browser: a nurse sends a PHQ-9 + GAD-7 link; the patient
// answers on a phone-sized window with item 9 positive and sees crisis resources at once; the
// alert is on the staff dashboard and closes only with a documented follow-up.
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

test('PHQ-9 + GAD-7 link answered on a phone; positive item 9 alerts the team; follow-up closes it', async () => {
  const staff = await browser.newPage();
  await signIn(staff, server.base, 'nurse');
  await staff.click('nav >> text=Patients');
  await staff.fill('#q', 'Alvarez');
  await staff.click('button:has-text("Search")');
  await staff.click('text=Alvarez, Maria');
  await staff.click('text=Measures, alerts and opioids');
  await staff.check('#send-link input[value=phq9]');
  await staff.check('#send-link input[value=gad7]');
  await staff.click('#send-link button');
  const url = await staff.inputValue('#new-link-url');
  assert.match(url, /\/q\/[0-9a-f]{64}$/);
  assert.match(await staff.textContent('#links'), /phq9, gad7\s*sent/);

  // The patient, on a phone, without signing in.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  await p.goto(url);
  assert.equal(await p.isVisible('form'), true);
  const scrollWidth = await p.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= 390, `page fits the phone (scrollWidth ${scrollWidth})`);
  const phq9 = [1, 1, 1, 1, 1, 1, 1, 1, 2];
  for (const [i, v] of phq9.entries()) await p.check(`input[name="phq9.${i + 1}"][value="${v}"]`);
  for (let i = 1; i <= 7; i++) await p.check(`input[name="gad7.${i}"][value="1"]`);
  await p.screenshot({ path: resultPath('measures-phone-form.png'), fullPage: true });
  await p.screenshot({ path: resultPath('measures-phone-top.png') });
  await p.click('#submit');
  await p.waitForSelector('#crisis');
  assert.match(await p.textContent('#crisis'), /emergency/);
  assert.match(await p.textContent('#done-message'), /sent to your care team/);
  await p.screenshot({ path: resultPath('measures-phone-crisis.png'), fullPage: true });
  // The link is used up.
  const again = await p.goto(url);
  assert.equal(again.status(), 410);
  await phone.close();

  // The team sees the alert at once.
  await staff.goto(`${server.base}/`);
  assert.match(await staff.textContent('#home-alerts'), /1 open suicide-risk alert/);
  await staff.click('nav >> text=Alerts');
  assert.match(await staff.textContent('#alerts'), /PHQ-9 item 9/);
  // Not without a documented follow-up (the browser refuses an empty required field; the server too).
  await staff.fill('#alerts textarea[name=follow_up]', 'Phoned the patient within the hour; safety plan reviewed; seen today by the prescriber.');
  await staff.click('#alerts button');
  await staff.waitForSelector('#no-alerts');
  await staff.goto(`${server.base}/`);
  assert.equal(await staff.isVisible('#home-alerts'), false);
  // The scores are on the patient's page.
  await staff.goBack();
  await staff.click('nav >> text=Patients');
  await staff.fill('#q', 'Alvarez');
  await staff.click('button:has-text("Search")');
  await staff.click('text=Alvarez, Maria');
  await staff.click('text=Measures, alerts and opioids');
  const table = await staff.textContent('#responses');
  assert.match(table, /PHQ-9\s*10/);
  assert.match(table, /GAD-7\s*7/);
  await staff.screenshot({ path: resultPath('measures-patient.png'), fullPage: true });
  await signOut(staff);
});
