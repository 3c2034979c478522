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
  assert.match(await staff.textContent('#links'), /phq9, gad7\s*patient\s*sent/);

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
  // The link is used up: opening it again shows the patient's own page, not the form.
  const again = await p.goto(url);
  assert.equal(again.status(), 200);
  assert.match(p.url(), /\/me$/);
  assert.equal(await p.isVisible('#submit'), false);
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

test('an alert raised by a patient answering appears on already-open staff pages without a reload', async () => {
  const ctx = await browser.newContext();
  const home = await ctx.newPage();
  await signIn(home, server.base, 'nurse');
  const alerts = await ctx.newPage();
  await alerts.goto(`${server.base}/alerts`);
  const chart = await ctx.newPage();
  await chart.goto(`${server.base}/`);
  await chart.click('nav >> text=Patients');
  await chart.fill('#q', 'Alvarez');
  await chart.click('button:has-text("Search")');
  await chart.click('text=Alvarez, Maria');
  await chart.click('text=Measures, alerts and opioids');
  await chart.check('#send-link input[value=phq9]');
  await chart.click('#send-link button');
  const url = await chart.inputValue('#new-link-url');
  // Mark each open page: a reload would lose the mark.
  for (const p of [home, alerts, chart]) await p.evaluate(() => { window.stillHere = true; });
  assert.equal(await alerts.isVisible('#no-alerts'), true);
  assert.equal(await home.isVisible('#home-alerts'), false);

  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const p = await phone.newPage();
  await p.goto(url);
  for (let i = 1; i <= 9; i++) await p.check(`input[name="phq9.${i}"][value="${i === 9 ? 1 : 0}"]`);
  await p.click('#submit');
  await p.waitForSelector('#crisis');
  await phone.close();

  await home.waitForSelector('#home-alerts', { timeout: 15000 });
  assert.match(await home.textContent('#home-alerts'), /1 open suicide-risk alert/);
  await alerts.waitForSelector('#alerts .alert-row', { timeout: 15000 });
  assert.match(await alerts.textContent('#alerts'), /PHQ-9 item 9/);
  // Who it is and a tap-to-call number, on the alert itself.
  assert.match(await alerts.getAttribute('#alerts a.tel', 'href'), /^tel:\+1555\d+$/);
  await chart.waitForSelector('#live-alerts [data-alert]', { timeout: 15000 });
  // The navigation counts the open alert on every page, also without a reload.
  await chart.waitForFunction(() => document.getElementById('nav-alert-badge')?.textContent === '1', null, { timeout: 15000 });
  for (const page of [home, alerts, chart]) {
    assert.equal(await page.evaluate(() => window.stillHere), true, 'the page was not reloaded');
  }
  await alerts.screenshot({ path: resultPath('measures-live-alert.png'), fullPage: true });
  // Closing it from one page clears it from the others, again without a reload.
  await alerts.fill('#alerts textarea[name=follow_up]', 'Phoned the patient at once; safety plan reviewed.');
  await alerts.click('#alerts button');
  await alerts.waitForSelector('#no-alerts');
  await home.waitForSelector('#home-alerts', { state: 'detached', timeout: 15000 });
  await home.waitForFunction(() => document.getElementById('nav-alert-badge')?.hidden === true, null, { timeout: 15000 });
  await chart.waitForSelector('#live-alerts [data-alert]', { state: 'detached', timeout: 15000 });
  assert.equal(await home.evaluate(() => window.stillHere), true);
  await ctx.close();
});
