// A racemic IV ketamine session in a real browser, from check-in to discharge: the administrator
// sets the site settings the session reads (SpO2 alarm threshold, the shortest minimum
// observation); a prescriber orders and a pharmacist verifies the dose (API); the nurse schedules
// and runs the session in the browser, a monitor streams a low SpO2 over MLLP, the alarm reaches
// the suite live, she acknowledges and resolves it, stops the infusion, waits out the observation,
// completes the discharge checklist, discharges, confirms the mg the record computes as given,
// signs and opens the printable signed record.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, resultPath, sendOru, printPdf, preAssess, api, setIvPolicy, scheduleIvSession } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startKetcare({ mllp: true });
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// The computed pump rate (mL/h) of the order's infusion.
function findNum(v, key) {
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === key && typeof x === 'number') return x;
      const inner = findNum(x, key);
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}

function pumpRate(v) {
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'rate_ml_per_h' && typeof x?.value === 'number') return x.value;
      const inner = pumpRate(x);
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}

test('nurse runs an IV ketamine session to discharge with a streamed SpO2 alarm and prints the signed record', async () => {
  const page = await browser.newPage();

  // The administrator sets the site's values: the SpO2 alarm, the ketamine BP gate, the ordering
  // settings and the shortest minimum observation (1 min) — the site's choice, not a default.
  await setIvPolicy(page, server.base, { 'session.alarm.spo2_low_percent': 92 });

  // The patient (KC-1010, treatment-resistant depression, no session yet): a prescriber orders,
  // a pharmacist verifies, and the nurse schedules the session in the browser with the patient's
  // consent on file (the session reads it from the consent record).
  const { pid, order, sid } = await scheduleIvSession(page, server.base, 'KC-1010', 'Chair 7');
  const rate = pumpRate(order);
  assert.ok(rate > 0, `a pump rate in the order: ${JSON.stringify(order)}`);
  assert.match(await page.textContent('h1'), /Chair 7/);
  if (await page.locator('#attach-dose').count()) await page.click('#attach-dose');

  // Check-in, checklist, baseline, dose, start.
  await preAssess(page);
  assert.equal(await page.locator('#checklist-missing').count(), 0, await page.textContent('main'));
  await page.click('#verify-dose');
  assert.match(await page.textContent('#phase'), /Dose verified/);
  assert.equal(await page.inputValue('#rate'), String(rate), 'the start form holds the ordered rate');
  await page.click('#start');
  assert.match(await page.textContent('#phase'), /Running/);

  // A monitor streams a low SpO2 for this patient over MLLP; the alarm reaches the suite live.
  await page.goto(`${server.base}/suite`);
  await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'live');
  const chair = page.locator(`#chair-${sid}`);
  const ack = await sendOru(server.mllpPort, 'SIM-SPO2-1', 'KC-1010', [
    ['150456', 'MDC_PULS_OXIM_SAT_O2', 88], ['147842', 'MDC_ECG_HEART_RATE', 90]]);
  assert.match(ack, /MSA\|AA\|SIM-SPO2-1/);
  await page.waitForFunction((id) => document.getElementById(`chair-${id}`)?.getAttribute('data-last-control-id') === 'SIM-SPO2-1', sid, { timeout: 5000 });
  await chair.locator('.alarm', { hasText: /SpO2|desaturation|oxygen/i }).first().waitFor({ timeout: 5000 });
  await chair.locator('.alarm button', { hasText: 'Acknowledge' }).first().click();
  await page.waitForURL(/\/sessions\/\d+(#[\w-]+)?$/);
  assert.match(await page.textContent('#alarms'), /acknowledged by/);
  const open = page.locator('#alarms .alarm', { has: page.locator('button', { hasText: 'Resolve' }) });
  while (await open.count()) {
    await open.first().locator('input[name=note]').fill('chin lift, oxygen; SpO2 97');
    await open.first().locator('button', { hasText: 'Resolve' }).click();
    await page.waitForURL(/\/sessions\/\d+(#[\w-]+)?$/);
  }
  await page.fill('#v-sys', '128');
  await page.fill('#v-dia', '80');
  await page.fill('#v-spo2', '97');
  await page.click('#save-vitals');

  // Stop, observe, score, discharge checklist; discharge waits for the site's minimum observation.
  // The record keeps whole seconds: the infusion runs at least two of them, so the mg it
  // computes as given is more than nothing however fast the steps above went.
  await page.waitForTimeout(2100);
  await page.click('#stop');
  assert.match(await page.textContent('#phase'), /Observation/);
  assert.match(await page.textContent('#discharge-missing'), /minimum observation not elapsed/);
  await page.selectOption('#score-kind', 'moaas');
  await page.fill('#score-value', '5');
  await page.click('#save-score');
  await page.selectOption('#score-kind', 'cadss');
  await page.fill('#score-value', '2');
  await page.click('#save-score');
  await page.selectOption('#dissociation_resolved', 'yes');
  await page.selectOption('#escort_present', 'yes');
  await page.click('#save-discharge');
  const missing = await page.textContent('#discharge-missing');
  assert.match(missing, /minimum observation not elapsed/);
  assert.match(missing, /observation\.ketamine_psychiatric_minutes/);
  for (let i = 0; i < 90 && await page.locator('#discharge-missing').count(); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    await page.reload();
  }
  assert.equal(await page.locator('#discharge-ok').count(), 1, await page.textContent('main'));
  await page.click('#ready');
  await page.click('#discharge');
  assert.match(await page.textContent('#phase'), /Discharged/);
  // What the record computes as given (rate × running time × the order's concentration) was
  // drawn from a 10 mg/mL vial, the strength the order was prepared from (the ledger refuses
  // another strength), in whole µL, the rest wasted before a witness; the nurse confirms the
  // computed mg, so the ledger balances.
  const session = await api(page, 'GET', `/api/v1/sessions/${sid}`);
  assert.equal(session.status, 200, session.text);
  const givenMg = session.json.delivered.mg;
  assert.ok(givenMg > 0, `the mg given from the record: ${session.text}`);
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
  await page.reload();
  assert.equal(await page.inputValue('#given-mg'), String(givenMg));
  await page.click('#confirm-given');
  await page.click('#sign');
  assert.match(await page.textContent('#signed'), /Signed by/);

  // The printable signed record shows the signature and the streamed vital.
  await page.click('#print-link');
  const record = await page.textContent('#record');
  assert.match(record, /Treatment session record/);
  assert.match(record, /SpO2 88 %/);
  assert.match(record, /chin lift, oxygen; SpO2 97/);
  // It stands on its own: date of birth, drawn/given/wasted, discharge checklist, full names.
  assert.match(await page.textContent('#record-born'), /^\d{4}-\d{2}-\d{2}$/);
  assert.match(await page.textContent('#record-figures'), /Drawn \(ledger\)\s*[\d.]+ mg/);
  assert.match(await page.textContent('#record-discharge'), /Escort present\s*yes/);
  assert.match(await page.textContent('#record-staff'), /Nina Nurse \(nurse\)/);
  assert.match(await page.textContent('#signature'), /Signed by .*nurse/i);
  assert.equal(await page.locator('#unsigned').count(), 0);
  await page.emulateMedia({ media: 'print' });
  await printPdf(page, resultPath('session-discharge-record.pdf'));
  await page.screenshot({ path: resultPath('session-discharge-record.png'), fullPage: true });
});
