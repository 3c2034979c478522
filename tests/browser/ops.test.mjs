// Operations in a real browser: a scheduler books an esketamine course onto a chair (and a
// clashing course is refused with its reasons); a nurse draws ketamine for a session and records
// the waste with a prescriber as witness, who signs with their own password; the session balances.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, signOut, resultPath, api } from './harness.mjs';

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

  // The roster: Monday's entry alone covers the esketamine session (a prescriber must be on
  // site), so it stays; Tuesday's, with no such booking, comes off.
  await page.goto(`${server.base}/schedule?date=${monday}`);
  await page.click('#on-site li:first-child button');
  await page.waitForSelector('#schedule-error');
  assert.match(await page.textContent('#schedule-error'), /only this entry covers/);
  const tuesday = new Date(`${monday}T12:00:00Z`);
  tuesday.setUTCDate(tuesday.getUTCDate() + 1);
  await page.goto(`${server.base}/schedule?date=${tuesday.toISOString().slice(0, 10)}`);
  const before = await page.locator('#on-site li').count();
  await page.click('#on-site li:first-child button');
  await page.waitForSelector('#schedule-message');
  assert.match(await page.textContent('#schedule-message'), /Roster entry removed/);
  assert.equal(await page.locator('#on-site li').count(), before - 1);
  await page.screenshot({ path: resultPath('ops-roster.png'), fullPage: true });
  await signOut(page);
  await page.close();
});

test('a nurse draws and records waste with a witness; the session balances', async () => {
  const page = await browser.newPage();
  // A real IV ketamine session for KC-1010: ordered by the prescriber, verified by the
  // pharmacist, scheduled by the nurse (a draw must name an existing session of that patient).
  // The administrator sets the ordering values for it, and puts the site's settings back after.
  await signIn(page, server.base, 'admin');
  await page.goto(`${server.base}/`);
  const current = await api(page, 'GET', '/api/v1/site-settings');
  assert.equal(current.status, 200, current.text);
  const original = structuredClone(current.json.settings);
  const settings = current.json.settings;
  Object.assign(settings.values, {
    'observation.ketamine_psychiatric_minutes': 60,
    'rounding.dose_mg_increment': 1,
    'rounding.pump_ml_per_h_increment': 0.1,
    'rounding.syringe_ml_increment': 0.1,
  });
  const put = await api(page, 'PUT', '/api/v1/site-settings', { settings, reason: 'browser test: IV ketamine order' });
  assert.equal(put.status, 200, put.text);
  await signOut(page);
  await signIn(page, server.base, 'prescriber');
  await page.goto(`${server.base}/`);
  const found = await api(page, 'GET', '/api/v1/patients?q=KC-1010');
  const patients = Array.isArray(found.json) ? found.json : found.json.patients ?? found.json.items;
  const pid = patients[0].id;
  const order = await api(page, 'POST', `/api/v1/patients/${pid}/orders`, {
    protocol_id: 'trd-adult-iv-ketamine' });
  assert.equal(order.status, 201, order.text);
  await signOut(page);
  await signIn(page, server.base, 'pharmacist');
  await page.goto(`${server.base}/`);
  const verified = await api(page, 'POST', `/api/v1/orders/${order.json.id}/verify`, {});
  assert.equal(verified.status, 200, verified.text);
  await signOut(page);
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/`);
  const created = await api(page, 'POST', `/api/v1/patients/${pid}/sessions`, { order_id: order.json.id, chair: 'Chair 9' });
  assert.equal(created.status, 201, created.text);
  const sid = String(created.json.id);
  await signOut(page);
  await signIn(page, server.base, 'admin');
  await page.goto(`${server.base}/`);
  const restored = await api(page, 'PUT', '/api/v1/site-settings', { settings: original, reason: 'browser test: settings as they were' });
  assert.equal(restored.status, 200, restored.text);
  await signOut(page);
  await signIn(page, server.base, 'nurse');

  await page.click('nav >> text=Ledger');
  assert.match(await page.textContent('#on-hand'), /Ketamine 50 mg\/mL/);

  // A session that does not exist, and another patient's session: refused, naming the field.
  await page.selectOption('#draw-container', '1');
  await page.fill('#draw-session', '9001');
  await page.fill('#draw-volume', '1');
  await page.click('#draw-form button[type=submit]');
  await page.waitForSelector('#ledger-error');
  assert.match(await page.textContent('#ledger-error'), /session_id/);
  await page.selectOption('#draw-container', '1');
  await page.fill('#draw-session', sid);
  await page.fill('#draw-patient', String(pid === 1 ? 2 : 1));
  await page.fill('#draw-volume', '1');
  await page.click('#draw-form button[type=submit]');
  await page.waitForSelector('#ledger-error');
  assert.match(await page.textContent('#ledger-error'), /patient_id/);
  // A racemic ketamine vial for the demo's esketamine session 1: refused, naming the container.
  await page.selectOption('#draw-container', '1');
  await page.fill('#draw-session', '1');
  await page.fill('#draw-patient', '');
  await page.fill('#draw-volume', '1');
  await page.click('#draw-form button[type=submit]');
  await page.waitForSelector('#ledger-error');
  assert.match(await page.textContent('#ledger-error'), /container.*esketamine/);

  // 1 mL of 50 mg/mL = 50 mg drawn for the session (its patient comes from the session).
  await page.selectOption('#draw-container', '1');
  await page.fill('#draw-session', sid);
  await page.fill('#draw-patient', '');
  await page.fill('#draw-volume', '1');
  await page.click('#draw-form button[type=submit]');
  await page.waitForSelector('#ledger-message');
  assert.match(await page.textContent('#ledger-message'), /recorded \(draw\)/);

  // 35 mg given: not balanced yet.
  await page.fill('#bal-session', sid);
  await page.fill('#bal-given', '35');
  await page.click('#balance-form button[type=submit]');
  assert.match(await page.textContent('#balance'), /15 mg drawn is not accounted for/);

  // The nurse cannot witness her own waste.
  await page.fill('#waste-session', sid);
  await page.fill('#waste-amount', '15');
  await page.fill('#witness-username', 'nurse');
  await page.fill('#witness-password', 'ketcare-demo');
  await page.click('#waste-form button[type=submit]');
  await page.waitForSelector('#ledger-error');
  assert.match(await page.textContent('#ledger-error'), /different person/);

  // The prescriber witnesses, typing their own password on the nurse's screen.
  await page.fill('#waste-session', sid);
  await page.fill('#waste-amount', '15');
  await page.fill('#waste-note', 'left in syringe after the infusion');
  await page.fill('#witness-username', 'prescriber');
  await page.fill('#witness-password', 'ketcare-demo');
  await page.click('#waste-form button[type=submit]');
  await page.waitForSelector('#ledger-message');
  assert.match(await page.textContent('#ledger-message'), /recorded \(waste\)/);
  assert.match(await page.textContent('#entries'), /Wasted 15 mg drawn for session \d+, witnessed by prescriber/);
  assert.doesNotMatch(await page.textContent('#entries'), /volume_ul|_ug|µL/);
  // On a tablet (768 px wide) the page does not scroll sideways: wide tables scroll in their box.
  await page.setViewportSize({ width: 768, height: 1024 });
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= 768, `the ledger fits a tablet (scrollWidth ${scrollWidth})`);
  // Filter the entries to the waste: only waste rows, and the filter stays chosen.
  await page.selectOption('#f-kind', 'waste');
  await page.click('#entries-filter button[type=submit]');
  await page.waitForSelector('#entries-range');
  assert.match(await page.textContent('#entries-range'), /Entries 1–1 of 1 matching/);
  assert.deepEqual(await page.$$eval('#entries tbody tr', (rows) => rows.map((r) => r.dataset.kind)), ['waste']);
  await page.setViewportSize({ width: 1280, height: 800 });

  await page.fill('#bal-session', sid);
  await page.fill('#bal-given', '35');
  await page.click('#balance-form button[type=submit]');
  assert.match(await page.textContent('#balance'), /balanced: 50 mg drawn = 35 mg given \+ 15 mg wasted/);
  await page.screenshot({ path: resultPath('ops-ledger.png'), fullPage: true });
  await signOut(page);
  await page.close();
});

test('a guardian consents with the minor\'s assent; a pharmacist receives and counts; the superbill', async () => {
  const page = await browser.newPage();
  // KC-2001, 16 years old, mother Helen Walker (the demo's 13th patient).
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/patients/13`);
  await page.click('a:has-text("Consent")');
  assert.match(await page.textContent('#consent-status'), /trd-adolescent-iv-ketamine-yale[\s\S]*Not valid: no consent/);
  await page.selectOption('#protocol_id', 'trd-adolescent-iv-ketamine-yale');
  await page.selectOption('#signer', { label: 'Helen Walker (mother)' });
  await page.click('#sign-consent button[type=submit]');
  await page.waitForSelector('#consent-error');
  assert.match(await page.textContent('#consent-error'), /assent/);
  await page.selectOption('#protocol_id', 'trd-adolescent-iv-ketamine-yale');
  await page.selectOption('#signer', { label: 'Helen Walker (mother)' });
  await page.check('#assent-given');
  await page.click('#sign-consent button[type=submit]');
  await page.waitForSelector('#consent-message');
  assert.match(await page.textContent('#consent-status'), /trd-adolescent-iv-ketamine-yale[\s\S]*Valid/);
  assert.match(await page.textContent('#signatures'), /Helen Walker \(mother\); the minor assented/);
  await signOut(page);

  // The pharmacist receives two 100 mg/mL vials against an invoice, then counts one short.
  await signIn(page, server.base, 'pharmacist');
  await page.click('nav >> text=Ledger');
  await page.selectOption('#product', 'ketamine-100');
  await page.fill('#ndc', '99999-0100-01');
  await page.fill('#lot', 'BT-1');
  await page.fill('#expiry', '2030-01-31');
  await page.fill('#quantity', '2');
  await page.fill('#invoice', 'INV-BT-1');
  await page.fill('#supplier', 'Wholesaler');
  await page.click('#receive-form button[type=submit]');
  await page.waitForSelector('#ledger-message');
  assert.match(await page.textContent('#ledger-message'), /recorded \(receive\)/);
  // The count is blind: empty boxes, no book on the form.
  await page.click('#count-link');
  const last = page.locator('#count-form input[name^=counted_]').last();
  assert.equal(await last.inputValue(), '');
  assert.doesNotMatch(await page.textContent('#count-form'), /mL left/);
  await page.fill('#period', 'close of business');
  await last.fill('4.5');
  await page.click('#count-form button[type=submit]');
  await page.waitForSelector('#discrepancies');
  assert.match(await page.textContent('#discrepancies'), /5 mL[\s\S]*4\.5 mL/);
  await page.fill('#discrepancies input[name=reason]', 'recounted: 5 mL, first count misread');
  await page.click('#discrepancies button[type=submit]');
  await page.waitForSelector('#no-discrepancies');
  await signOut(page);

  // The prescriber's superbill for a 40-minute infusion of 35 mg.
  await signIn(page, server.base, 'prescriber');
  await page.goto(`${server.base}/billing`);
  await page.fill('#session_id', '9001');
  await page.fill('#minutes', '40');
  await page.fill('#given_mg', '35');
  await page.selectOption('#template_id', 'iv-ketamine-induction-6');
  await page.click('#superbill-form button[type=submit]');
  await page.waitForSelector('#superbill');
  const bill = await page.textContent('#superbill');
  assert.match(bill, /96365/);
  assert.match(bill, /J3490/);
  assert.doesNotMatch(bill, /96366/);
  assert.match(await page.textContent('#total'), /not priced 96365, J3490/);
  // The demo clinic's observation time lets the course be planned; the unpriced codes are named.
  assert.match(await page.textContent('#estimate'), /Self-pay estimate for 6 sessions: the site has not priced 96365, J3490/);
  await page.screenshot({ path: resultPath('ops-superbill.png'), fullPage: true });
  await signOut(page);
  await page.close();
});
