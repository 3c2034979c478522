// The foundation in a real browser: a nurse registers a minor with a guardian and finds them; the
// administrator sees that access in the audit log; a prescriber finds a demo patient.
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

test('nurse registers a minor with a guardian, finds them, and the audit page shows the access', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'nurse');
  await page.waitForURL(`${server.base}/`);
  assert.match(await page.textContent('h1'), /Welcome, Nina Nurse/);

  await page.click('nav >> text=Patients');
  await page.click('text=New patient');
  // A first try with a missing name shows the message beside the field.
  await page.fill('#mrn', 'BR-7001');
  await page.fill('#family_name', 'Okoro');
  await page.fill('#date_of_birth', '2013-04-09');
  await page.selectOption('#sex', 'male');
  await page.click('button:has-text("Save")');
  assert.equal(await page.textContent('#given_name-error'), 'required');
  assert.equal(await page.inputValue('#mrn'), 'BR-7001', 'the form keeps what was typed');

  await page.fill('#given_name', 'Tobi');
  await page.fill('#weight_value', '44');
  await page.fill('#weight_measured_on', '2026-11-01');
  await page.fill('#indications', 'Treatment-resistant depression');
  await page.click('button:has-text("Save")');
  await page.waitForURL(/\/patients\/\d+$/);
  const patientUrl = page.url();
  const patientId = patientUrl.split('/').pop();
  assert.equal(await page.textContent('#band'), 'adolescent');
  assert.match(await page.textContent('main'), /minor and has no guardian/);

  await page.fill('#guardian_name', 'Ada Okoro');
  await page.selectOption('#guardian_relationship', 'mother');
  await page.fill('#guardian_phone', '+1 555 0142');
  await page.click('button:has-text("Add guardian")');
  await page.waitForURL(patientUrl);
  assert.match(await page.textContent('#guardians'), /Ada Okoro\s*mother/);

  await page.click('nav >> text=Patients');
  await page.fill('#q', 'okoro');
  await page.click('button:has-text("Search")');
  await page.click('text=Okoro, Tobi');
  await page.waitForURL(patientUrl);
  await page.screenshot({ path: resultPath('patient.png'), fullPage: true });
  await signOut(page);

  await signIn(page, server.base, 'admin');
  await page.click('text=Audit log');
  await page.fill('#f-patient', patientId);
  await page.click('button:has-text("Filter")');
  const log = await page.locator('#audit').innerText();
  for (const action of ['patient.create', 'guardian.add', 'patient.read', 'patient.listed']) {
    assert.match(log, new RegExp(`nurse\\s+nurse\\s+\\S+\\s+${action.replace('.', '\\.')}`), `${action} by nurse`);
  }
  assert.match(await page.textContent('#chain-status'), /Chain intact/);
  await page.screenshot({ path: resultPath('audit.png'), fullPage: true });
  await page.close();
});

test('a new user signs in as the demo prescriber and finds a demo patient', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'prescriber', 'wrong password');
  assert.match(await page.textContent('#login-error'), /Wrong username or password/);
  await signIn(page, server.base, 'prescriber');
  await page.click('nav >> text=Patients');
  await page.fill('#q', 'Alvarez');
  await page.click('button:has-text("Search")');
  await page.click('text=Alvarez, Maria');
  assert.equal(await page.textContent('#band'), 'adult');
  assert.match(await page.textContent('main'), /Treatment-resistant depression/);
  await page.close();
});

test('the researcher role sees no identified patient data', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'researcher');
  assert.equal(await page.locator('nav >> text=Patients').count(), 0);
  const r = await page.goto(`${server.base}/patients`);
  assert.equal(r.status(), 403);
  await page.close();
});
