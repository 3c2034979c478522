// A questionnaire link by email, end to end and on the machine only: ketcare's outbox worker
// hands the message to a local SMTP server (the site's relay, set on the settings page); the
// patient opens the link read out of the received mail on a phone, answers, and sees their own
// chart and next appointment. The nurse sees the message as sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, startMailCatcher, openBrowser, signIn, signOut, resultPath, bookCourse } from './harness.mjs';

let server;
let browser;
let mail;

before(async () => {
  mail = await startMailCatcher();
  // The worker drains the outbox every second, so the test need not wait its default 15.
  server = await startKetcare({ args: ['--outbox-seconds', '1'] });
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await mail?.close();
});

async function setSetting(page, key, value) {
  const row = page.locator(`tr[data-key="${key}"]`);
  await row.locator('input[name=value]').fill(String(value));
  await row.locator('input[name=reason]').fill('email through the clinic relay');
  await row.locator('button:has-text("Save")').click();
  await page.waitForURL(new RegExp(`/settings#setting-${key.replaceAll('.', '\\.')}$`));
}

test('a patient on a phone opens the emailed link, answers, then sees their chart and next appointment', async () => {
  const staff = await browser.newPage({ viewport: { width: 1200, height: 1400 } });

  // The administrator points the site at its relay (here the local SMTP server).
  await signIn(staff, server.base, 'admin');
  await staff.click('nav >> text=Settings');
  for (const [key, value] of [
    ['outreach.public_url', server.base],
    ['outreach.smtp_host', '127.0.0.1'],
    ['outreach.smtp_port', mail.port],
    ['outreach.smtp_security', 'none'],
    ['outreach.email_from', 'clinic@example.org'],
  ]) {
    await setSetting(staff, key, value);
  }
  await signOut(staff);

  // The scheduler books a course, so the patient has a next appointment.
  await signIn(staff, server.base, 'scheduler');
  await bookCourse(staff, 1);
  await signOut(staff);

  // The nurse records the patient's address and their consent to email, then sends a PHQ-9.
  await signIn(staff, server.base, 'nurse');
  await staff.goto(`${server.base}/patients/1/edit`);
  await staff.fill('#email', 'patient@example.org');
  await staff.click('form.record button[type=submit]');
  await staff.waitForURL(/\/patients\/1$/);
  await staff.goto(`${server.base}/patients/1/contact`);
  await staff.selectOption('#contact-who', '');
  await staff.selectOption('#contact-channel', 'email');
  await staff.check('#contact-consent');
  await staff.click('#contact-form button[type=submit]');
  await staff.waitForSelector('#contacts td.reach');
  assert.match(await staff.textContent('#contacts tr:nth-child(2) .reach'), /sent by message/);
  await staff.goto(`${server.base}/patients/1/measures`);
  await staff.check('#send-link input[value=phq9]');
  await staff.click('#send-link button');
  await staff.waitForSelector('#new-link-sent');

  // The message as the relay received it: a greeting and the link, nothing about the care.
  const received = await mail.next();
  assert.equal(received.to.text, 'patient@example.org');
  assert.equal(received.from.text, 'clinic@example.org');
  assert.equal(received.subject, 'A form is waiting for you');
  for (const hidden of ['PHQ', 'ketamine', 'depress', 'Okafor']) {
    assert.ok(!received.text.includes(hidden), `${hidden} is not in the message`);
  }
  const url = received.text.match(/https?:\/\/\S+\/q\/\S+/)?.[0];
  assert.ok(url?.startsWith(server.base), `the message carries the link: ${received.text}`);

  // The patient, on a phone, without signing in.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  await p.goto(url);
  await p.screenshot({ path: resultPath('emailed-link-phone.png'), fullPage: true });
  for (let i = 1; i <= 9; i++) await p.check(`input[name="phq9.${i}"][value="${i === 9 ? 0 : 2}"]`);
  await p.click('#submit');
  await p.waitForSelector('#own-view');
  await p.screenshot({ path: resultPath('emailed-link-answered-phone.png'), fullPage: true });
  await p.click('#own-view');
  await p.waitForSelector('#appointments');
  const appointments = await p.locator('.appointment').allTextContents();
  assert.ok(appointments.length >= 1, 'the booked course is shown');
  assert.match(appointments[0], /from 09:00 to/);
  assert.match(await p.textContent('#latest'), /PHQ-9.*16/);
  const drawn = await p.$eval('#own-chart', (img) => img.complete && img.naturalWidth > 0);
  assert.ok(drawn, 'the score chart is drawn');
  const scrollWidth = await p.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= 390, `page fits the phone (scrollWidth ${scrollWidth})`);
  await p.screenshot({ path: resultPath('emailed-link-own-view-phone.png'), fullPage: true });
  await p.locator('#own-chart').screenshot({ path: resultPath('emailed-link-chart-phone.png') });
  await phone.close();

  // The nurse sees the message sent and the link answered.
  await staff.goto(`${server.base}/patients/1/measures`);
  const row = staff.locator('#links tr[data-link]').first();
  assert.match(await row.locator('.message').textContent(), /email sent/);
  assert.match(await row.locator('.status').textContent(), /completed|answered/i);
  await staff.goto(`${server.base}/patients/1/contact`);
  assert.match(await staff.textContent('#message-list tr[data-message] .state'), /^sent$/);
  await staff.screenshot({ path: resultPath('contact-messages.png'), fullPage: true });
  await staff.close();
});
