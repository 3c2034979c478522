// The pump rate and the mg given come from the record, in a real browser: a session cannot be
// scheduled for an order not yet verified; the start form is pre-filled with the verified order's
// rate; ten times that rate is refused even with a reason (a hard limit), another rate within the
// limits is refused without a reason and accepted with one, flagged on the page and the printed
// record; the infusion is stopped early, the patient transferred, and the nurse confirms the mg
// the administration record computes (not the whole order) before the record is signed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, signOut, resultPath, preAssess, api, setIvPolicy } from './harness.mjs';

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

test('a rate other than the order is refused without a reason, flagged with one; an early stop signs with the mg actually given', async () => {
  const page = await browser.newPage();

  // The site's values the order and the session read (the site's choice, not defaults).
  await setIvPolicy(page, server.base);

  // A prescriber orders 0.5 mg/kg for 64 kg = 32 mg: 3.2 mL of 10 mg/mL in 50 mL over 40 min
  // = 75 mL/h.
  await signIn(page, server.base, 'prescriber');
  await page.goto(`${server.base}/`);
  const found = await api(page, 'GET', '/api/v1/patients?q=KC-1010');
  assert.equal(found.status, 200, found.text);
  const patients = Array.isArray(found.json) ? found.json : found.json.patients ?? found.json.items;
  const pid = patients[0].id;
  const order = await api(page, 'POST', `/api/v1/patients/${pid}/orders`, {
    protocol_id: 'trd-adult-iv-ketamine',
    preparation: { concentration_mg_per_ml: 10, final_volume_ml: 50 } });
  assert.equal(order.status, 201, order.text);
  const oid = order.json.id;
  await signOut(page);

  // Not verified yet: the nurse cannot schedule a session for it.
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/patients/${pid}/sessions/new`);
  await page.selectOption('#order_id', String(oid));
  await page.fill('#chair', 'Chair 8');
  await page.click('form.record button[type=submit]');
  assert.match(await page.textContent('main'), /order_id: dose order \d+ is pending verification/);
  await signOut(page);

  await signIn(page, server.base, 'pharmacist');
  await page.goto(`${server.base}/`);
  const verified = await api(page, 'POST', `/api/v1/orders/${oid}/verify`, {});
  assert.equal(verified.status, 200, verified.text);
  await signOut(page);

  // The nurse schedules (consent on file) and runs the pre-assessment.
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/`);
  const consent = await api(page, 'POST', `/api/v1/patients/${pid}/consents`, {
    protocol_id: 'trd-adult-iv-ketamine', signer: { kind: 'patient' } });
  assert.equal(consent.status, 201, consent.text);
  await page.goto(`${server.base}/patients/${pid}/sessions/new`);
  await page.selectOption('#order_id', String(oid));
  await page.fill('#chair', 'Chair 8');
  await page.click('form.record button[type=submit]');
  await page.waitForURL(/\/sessions\/\d+(#[\w-]+)?$/);
  const sid = Number(new URL(page.url()).pathname.split('/').pop());
  await preAssess(page);
  await page.click('#verify-dose');
  assert.match(await page.textContent('#phase'), /Dose verified/);

  // The rate box holds the verified order's rate.
  assert.equal(await page.inputValue('#rate'), '75');

  // 750 mL/h (3.75 mg/kg over 40 min, over the hard 1.0 mg/kg): refused even with a reason.
  await page.fill('#rate', '750');
  await page.fill('#rate-reason', 'pump programmed by the prescriber');
  await page.click('#start');
  assert.match(await page.textContent('#error'), /crosses a hard limit/);
  assert.match(await page.textContent('#error'), /max-mg-per-kg-hard/);
  assert.match(await page.textContent('#phase'), /Dose verified/);

  // 80 mL/h is within the limits but not the order's: refused without a reason…
  await page.fill('#rate', '80');
  await page.click('#start');
  assert.match(await page.textContent('#error'), /rate_reason: 80 mL\/h is not the verified order's 75 mL\/h/);
  assert.match(await page.textContent('#phase'), /Dose verified/);

  // …and accepted with one, flagged with who, when, why, ordered and given.
  await page.fill('#rate', '80');
  await page.fill('#rate-reason', 'prescriber at the chair asked for 80 mL/h');
  await page.click('#start');
  assert.match(await page.textContent('#phase'), /Running/);
  const flag = await page.textContent('#rate-deviations');
  assert.match(flag, /NOT the ordered rate: given 80 mL\/h, ordered 75 mL\/h/);
  assert.match(flag, /prescriber at the chair asked for 80 mL\/h \(nurse,/);

  // The rate-change form holds the ordered rate too: another rate needs a reason, back to the
  // order's does not.
  assert.equal(await page.inputValue('#new-rate'), '75');
  await page.fill('#new-rate', '90');
  await page.click('#change-rate');
  assert.match(await page.textContent('#error'), /rate_reason: 90 mL\/h is not the verified order's 75 mL\/h/);
  await page.click('#change-rate');
  assert.equal(await page.locator('#error').count(), 0);
  assert.match(await page.textContent('#administrations'), /rate changed to 75 mL\/h/);

  // Stopped early after a few seconds, then escalated and transferred.
  await new Promise((r) => setTimeout(r, 3000));
  await page.fill('#stop-reason', 'patient asked to stop');
  await page.click('#stop');
  assert.match(await page.textContent('#phase'), /Observation/);
  await page.fill('#esc', 'agitation');
  await page.click('#escalate');
  assert.match(await page.textContent('#phase'), /Escalated/);
  await page.fill('#dest', 'Emergency department');
  await page.click('button:has-text("Transfer")');
  assert.match(await page.textContent('#phase'), /Transferred/);

  // The record computes what ran: a fraction of a milligram, not the order's 32 mg.
  const session = await api(page, 'GET', `/api/v1/sessions/${sid}`);
  assert.equal(session.status, 200, session.text);
  const givenMg = session.json.delivered.mg;
  assert.ok(givenMg > 0 && givenMg < 2, `mg given from the record: ${session.text}`);
  assert.equal(await page.inputValue('#given-mg'), String(givenMg));
  assert.match(await page.textContent('#given'), /not yet \(signing needs it\)/);

  // Drawn from a 10 mg/mL vial, the strength the order was prepared from (the ledger refuses
  // another), in whole µL, the rest wasted before a witness.
  const givenUg = Math.round(givenMg * 1000);
  const ledger = await api(page, 'GET', '/api/v1/ledger');
  assert.equal(ledger.status, 200, ledger.text);
  const vial = ledger.json.containers.find((c) => c.product === 'ketamine-10' && c.status !== 'empty');
  assert.ok(vial, `a 10 mg/mL vial in stock: ${ledger.text}`);
  const ul = Math.ceil(givenUg / 10);
  const draw = await api(page, 'POST', '/api/v1/ledger/events', { event: {
    kind: 'draw', container: vial.id, session_id: sid, patient_id: pid, volume_ul: ul } });
  assert.equal(draw.status, 201, draw.text);
  if (ul * 10 > givenUg) {
    const waste = await api(page, 'POST', '/api/v1/ledger/events', {
      event: { kind: 'waste', session_id: sid, amount_ug: ul * 10 - givenUg, witness: null, note: 'left in the line' },
      witnesses: [{ username: 'prescriber', password: 'ketcare-demo' }] });
    assert.equal(waste.status, 201, waste.text);
  }

  // Signing waits for the nurse's confirmation of the computed mg (and for any alarm the
  // session's time rules raised to be resolved).
  await page.reload();
  const open = page.locator('#alarms .alarm', { has: page.locator('button', { hasText: 'Resolve' }) });
  while (await open.count()) {
    await open.first().locator('input[name=note]').fill('vitals taken in the emergency department');
    await open.first().locator('button', { hasText: 'Resolve' }).click();
    await page.waitForURL(/\/sessions\/\d+(#[\w-]+)?$/);
  }
  await page.click('#sign');
  assert.match(await page.textContent('#error'), /the mg given is not confirmed/);
  await page.click('#confirm-given');
  assert.match(await page.textContent('#given'), new RegExp(`${String(givenMg).replace('.', '\\.')} mg by nurse`));
  await page.click('#sign');
  assert.equal(await page.locator('#error').count(), 0, await page.locator('#error').count() ? await page.textContent('#error') : '');
  assert.match(await page.textContent('#signed'), /Signed by/);

  // The printed record shows the flagged rate and the mg actually given.
  await page.click('#print-link');
  const record = await page.textContent('#record');
  assert.match(record, /NOT the ordered rate: given 80 mL\/h, ordered 75 mL\/h/);
  assert.match(record, new RegExp(`${String(givenMg).replace('.', '\\.')} mg given; infusion ran`));
  assert.match(record, new RegExp(`${String(givenMg).replace('.', '\\.')} mg by nurse`));
  assert.doesNotMatch(await page.textContent('#record-given'), /32 mg/);
  await page.screenshot({ path: resultPath('session-rate-and-given-record.png'), fullPage: true });
});
