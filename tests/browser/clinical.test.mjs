// The clinical core in a real browser: the administrator sets the values the reference leaves to
// the site; a prescriber sees each value's source, is stopped by a hard limit, passes a soft limit
// only with a reason; a nurse verifies as the second clinician.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, signOut, resultPath, fillTrdScreening } from './harness.mjs';

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

// The demo clinic's own choices for this test, entered as an administrator would.
const SITE = [
  ['observation.ketamine_psychiatric_minutes', '120'],
  ['rounding.dose_mg_increment', '1'],
  ['rounding.pump_ml_per_h_increment', '0.1'],
  ['rounding.syringe_ml_increment', '0.1'],
  ['eligibility.ketamine_bp_systolic_max_mmhg', '160'],
  ['eligibility.ketamine_bp_diastolic_max_mmhg', '100'],
  ['eligibility.trd_adequate_trial_min_weeks', '6'],
];

test('prescriber doses a demo patient; hard limit stops, soft limit needs a reason, nurse verifies', async () => {
  const page = await browser.newPage();

  // The demo clinic ships its own settings, shown as its choice on every page; an
  // administrator changes them through typed inputs.
  await signIn(page, server.base, 'admin');
  assert.match(await page.textContent('#demo-banner'), /Demo clinic/);
  await page.click('nav >> text=Settings');
  assert.match(await page.textContent('#demo-settings'), /not a recommendation/);
  for (const [key, value] of SITE) {
    await page.fill('#key', key);
    await page.fill('#value', value);
    await page.fill('#reason', 'demo clinic policy');
    await page.click('button:has-text("Save new version")');
    await page.waitForURL(new RegExp(`${server.base}/settings`));
  }
  const row = page.locator('tr[data-key="rounding.syringe_ml_increment"]');
  assert.match(await row.textContent(), /0\.1 mL/);
  // A typed input per setting: a misspelt key cannot be chosen, and an impossible value is refused.
  const gate = page.locator('tr[data-key="session.alarm.systolic_high_mmhg"]');
  assert.equal(await gate.locator('input[type=number]').getAttribute('max'), '480');
  await page.fill('#key', 'session.alarm.systolc_high_mmhg');
  await page.fill('#value', '170');
  await page.fill('#reason', 'typo');
  await page.click('button:has-text("Save new version")');
  assert.match(await page.textContent('#settings-error'), /systolc_high_mmhg.*not a setting ketcare reads/);
  await page.screenshot({ path: resultPath('settings-registry.png'), fullPage: false });
  await signOut(page);

  await signIn(page, server.base, 'prescriber');
  await page.goto(`${server.base}/protocols/trd-adult-iv-ketamine`);
  assert.match(await page.textContent('#readiness'), /Ready/);
  assert.match(await page.textContent('#values'), /R17/);
  assert.match(await page.textContent('#values'), /set by the site/);

  // Maria Alvarez, 68 kg: 0.5 mg/kg = 34 mg; 3.4 mL of 10 mg/mL in 50 mL over 40 min = 75 mL/h.
  await page.click('nav >> text=Patients');
  await page.fill('#q', 'Alvarez');
  await page.click('button:has-text("Search")');
  await page.click('text=Alvarez, Maria');
  const patientUrl = page.url();

  // Screening: a raised baseline BP is a relative finding the prescriber may override with a reason.
  await page.click('text=Screen for eligibility');
  await fillTrdScreening(page, 170, 82);
  await page.click('button:has-text("Screen")');
  await page.waitForURL(/\/screenings\/\d+$/);
  assert.match(await page.textContent('#decision'), /needs_prescriber_review/);
  assert.match(await page.textContent('#findings'), /Baseline BP 170\/82 mmHg is above 160\/100/);
  const bpForm = page.locator('form:has(input[name=finding_id][value="baseline-bp"])');
  await bpForm.locator('input[name=reason]').fill('BP re-checked 150/80 after rest; benefit outweighs risk');
  await bpForm.locator('button').click();
  assert.match(await page.textContent('#findings'), /overridden by prescriber/);
  await page.screenshot({ path: resultPath('screening.png'), fullPage: true });

  await page.goto(patientUrl);
  await page.click('text=Calculate a dose');
  const doseUrl = page.url();
  await page.selectOption('#protocol', 'trd-adult-iv-ketamine');
  // The chart's weight, with its date, is shown; it is not typed into the order.
  assert.match(await page.textContent('#fact-weight'), /68 kg, measured/);
  assert.equal(await page.locator('#weight_kg').count(), 0);

  // A hard limit refuses, naming the limit and its source.
  await page.fill('#amount_mg_per_kg', '1.5');
  await page.click('button:has-text("Calculate and check")');
  assert.match(await page.textContent('#dose-refusal'), /hard limit/);
  // The refused form keeps what was typed.
  assert.equal(await page.inputValue('#amount_mg_per_kg'), '1.5');

  await page.fill('#amount_mg_per_kg', '');
  await page.selectOption('#concentration_mg_per_ml', '10');
  await page.fill('#final_volume_ml', '50');
  // First the whole calculation and every limit check; nothing is signed yet.
  await page.click('button:has-text("Calculate and check")');
  assert.match(await page.locator('#preview-numbers').innerText(), /pump rate\s+75 mL\/h/);
  await page.screenshot({ path: resultPath('dose-preview.png'), fullPage: true });
  await page.click('#sign-order');
  await page.waitForURL(/\/orders\/\d+$/);
  const numbers = await page.locator('#numbers').innerText();
  assert.match(numbers, /infusion: dose\s+34 mg/);
  assert.match(numbers, /volume to draw\s+3\.4 mL/);
  assert.match(numbers, /pump rate\s+75 mL\/h/);
  assert.match(await page.textContent('#order-state'), /waiting for a second clinician/);
  assert.equal(await page.locator('text=Verify as second clinician').count(), 0, 'the author cannot verify');
  const firstOrder = page.url();

  // A soft limit (1.0 mg/kg, above the usual titration ceiling) needs a recorded reason.
  await page.goto(doseUrl);
  await page.selectOption('#protocol', 'trd-adult-iv-ketamine');
  await page.fill('#step', '4');
  await page.click('button:has-text("Calculate and check")');
  assert.match(await page.textContent('#preview-soft'), /R20/);
  await page.click('#sign-order');
  await page.waitForURL(/\/orders\/\d+$/);
  assert.match(await page.textContent('#order-state'), /needs a reason to pass a soft limit/);
  assert.match(await page.textContent('#soft'), /R20/);
  await page.fill('#reason', 'partial response at 0.75 mg/kg');
  await page.click('button:has-text("Override soft limits")');
  assert.match(await page.textContent('#order-state'), /waiting for a second clinician/);
  assert.match(await page.textContent('#override-record'), /prescriber/);
  await page.screenshot({ path: resultPath('order.png'), fullPage: true });
  await signOut(page);

  // The nurse verifies as the second clinician.
  await signIn(page, server.base, 'nurse');
  await page.goto(firstOrder);
  await page.click('button:has-text("Verify as second clinician")');
  assert.match(await page.textContent('#order-state'), /verified/);
  assert.match(await page.textContent('#verification'), /nurse/);
  await page.close();
});
