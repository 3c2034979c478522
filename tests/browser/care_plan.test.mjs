// The care plan and the patient's own view in a real browser: a nurse writes a symptom goal
// (PHQ-9 at most 4) and an adjunct for a patient whose course the scheduler booked, sends a
// PHQ-9 link; the patient, on a phone, answers it, opens their own page, sees their score,
// chart, next appointment and plan, and tells the team how the goal is going; the nurse sees it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, signOut, resultPath, bookCourse } from './harness.mjs';

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

test('a patient on a phone answers their link, then sees their chart, next appointment and plan', async () => {
  const staff = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  await signIn(staff, server.base, 'scheduler');
  await bookCourse(staff, 1);
  await signOut(staff);

  // The nurse writes the plan: a refused target names its field; then a goal and an adjunct.
  await signIn(staff, server.base, 'nurse');
  await staff.goto(`${server.base}/patients/1/care-plan`);
  await staff.selectOption('#goal_category', 'symptom');
  await staff.selectOption('#instrument', 'phq9');
  await staff.fill('#target_at_most', '40');
  await staff.fill('#description', 'Mood back in the mild range');
  await staff.fill('#owner', 'Maria and Dr Adams');
  await staff.click('#item-form button[type=submit]');
  await staff.waitForSelector('#form-error');
  assert.match(await staff.textContent('#form-error'), /target_at_most.*0 to 27/);
  await staff.fill('#target_at_most', '4');
  await staff.click('#item-form button[type=submit]');
  await staff.waitForSelector('.plan-item');
  await staff.check('#item-adjunct');
  await staff.selectOption('#adjunct_category', 'lifestyle');
  await staff.fill('#description', 'A 20-minute walk on most days');
  await staff.fill('#owner', 'Maria');
  await staff.click('#item-form button[type=submit]');
  await staff.waitForFunction(() => document.querySelectorAll('.plan-item').length === 2);
  assert.match(await staff.textContent('.plan-item'), /target PHQ-9 4 or less; no score yet/);

  // The PHQ-9 link, sent from the measures page.
  await staff.goto(`${server.base}/patients/1/measures`);
  await staff.check('#send-link input[value=phq9]');
  await staff.click('#send-link button');
  const url = await staff.inputValue('#new-link-url');

  // The patient, on a phone, without signing in.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  await p.goto(url);
  for (let i = 1; i <= 9; i++) await p.check(`input[name="phq9.${i}"][value="${i === 9 ? 0 : 1}"]`);
  await p.click('#submit');
  await p.waitForSelector('#own-view');
  await p.click('#own-view');
  await p.waitForSelector('#appointments');
  const appointments = await p.locator('.appointment').allTextContents();
  assert.ok(appointments.length >= 1, 'the booked course is shown');
  assert.match(appointments[0], /from 09:00 to/);
  assert.match(await p.textContent('#latest'), /PHQ-9.*8/);
  assert.match(await p.textContent('#due'), /Nothing to answer now/);
  assert.match(await p.textContent('#plan'), /Mood back in the mild range/);
  assert.match(await p.textContent('#plan'), /not yet \(8 on/);
  assert.match(await p.textContent('#adjuncts'), /20-minute walk/);
  assert.match(await p.textContent('#crisis-resources'), /emergency/);
  const drawn = await p.$eval('#own-chart', (img) => img.complete && img.naturalWidth > 0);
  assert.ok(drawn, 'the score chart is drawn');
  const scrollWidth = await p.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= 390, `page fits the phone (scrollWidth ${scrollWidth})`);
  const body = await p.content();
  for (const hidden of ['MRN', 'nurse', 'esketamine']) assert.ok(!body.includes(hidden), `${hidden} is not shown`);
  await p.screenshot({ path: resultPath('own-view-phone.png'), fullPage: true });

  await p.check('.own-progress input[value=partly]');
  await p.fill('.own-progress textarea[name=note]', 'walked twice this week');
  await p.click('.own-progress button[type=submit]');
  await p.waitForSelector('#saved');
  assert.match(await p.textContent('#plan'), /partly: walked twice this week/);
  await phone.close();

  // The team sees it on the care plan and the chart.
  await staff.goto(`${server.base}/patients/1/care-plan`);
  assert.match(await staff.textContent('.plan-item'), /through the patient's link · partly: walked twice this week/);
  await staff.screenshot({ path: resultPath('care-plan-staff.png'), fullPage: true });
  await staff.goto(`${server.base}/patients/1`);
  assert.match(await staff.textContent('#chart-care-plan'), /Mood back in the mild range/);
  await staff.close();
});
