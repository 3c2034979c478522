// Treatment sessions in a real browser: a vital streamed by a simulated monitor over MLLP (a raw
// TCP socket) reaches the suite dashboard live; the nurse acknowledges an alarm from the
// dashboard; she runs the scheduled esketamine session from check-in through the checklist to the
// first device and an early stop, and opens the printable record.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, resultPath, sendOru, printPdf } from './harness.mjs';

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

test('nurse sees a streamed vital live, acknowledges an alarm, runs a session and opens its record', async () => {
  const page = await browser.newPage();
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/suite`);
  await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'live');
  const chair2 = page.locator('tr', { hasText: 'Chair 2' });
  const sid2 = await chair2.getAttribute('data-session');

  // A monitor streams a vital for the patient dosing on Chair 2: ACK AA, and the dashboard shows it.
  const ack = await sendOru(server.mllpPort, 'SIM-1', 'KC-1002', [
    ['150021', 'MDC_PRESS_BLD_NONINV_SYS', 131], ['150022', 'MDC_PRESS_BLD_NONINV_DIA', 83], ['150456', 'MDC_PULS_OXIM_SAT_O2', 96]]);
  assert.match(ack, /MSA\|AA\|SIM-1/);
  await page.waitForFunction((id) => document.getElementById(`chair-${id}`)?.getAttribute('data-last-control-id') === 'SIM-1', sid2, { timeout: 2000 });
  assert.match(await chair2.locator('.latest').textContent(), /BP 131\/83/);

  // The patient on Chair 3 had her last device an hour ago and no BP since: the ~40 min BP check
  // (R2, R4) is raised by the session rules and pushed to the dashboard; she acknowledges it.
  const chair3 = page.locator('tr', { hasText: 'Chair 3' });
  await chair3.locator('.alarm').first().waitFor({ timeout: 20000 });
  assert.match(await chair3.locator('.alarm').first().textContent(), /blood pressure/i);
  await chair3.locator('.alarm button', { hasText: 'Acknowledge' }).first().click();
  await page.waitForURL(/\/sessions\/\d+(#[\w-]+)?$/);
  assert.match(await page.textContent('#alarms'), /acknowledged by/);

  // Chair 1: the scheduled esketamine session, from check-in to the first device.
  await page.goto(`${server.base}/suite`);
  await page.goto(`${server.base}/patients`);
  const sid1 = Number(sid2) - 1;
  await page.goto(`${server.base}/sessions/${sid1}`);
  await page.click('#check-in');
  await page.click('#begin-pre-assessment');
  for (const id of ['fasting_confirmed', 'escort_home', 'eligibility_reconfirmed',
    'setting_certified', 'patient_enrolled', 'prescriber_on_site', 'pulse_oximeter_on_site']) {
    await page.selectOption(`#${id}`, 'yes');
  }
  await page.selectOption('#pregnancy', 'not_pregnant');
  await page.selectOption('#suicide_risk', 'negative');
  await page.fill('#concomitant_sedating', 'none');
  await page.fill('#concomitant_bp_raising', 'none');
  await page.click('#save-checklist');
  await page.fill('#b-sys', '126');
  await page.fill('#b-dia', '80');
  await page.fill('#b-hr', '70');
  await page.fill('#b-spo2', '98');
  await page.click('#save-baseline');
  assert.equal(await page.locator('#checklist-missing').count(), 0);
  await page.click('#verify-dose');
  assert.match(await page.textContent('#phase'), /Dose verified/);
  await page.click('#start');
  assert.match(await page.textContent('#phase'), /Running/);
  // The second device too soon is refused with the cited wait.
  await page.click('#give-device');
  assert.match(await page.textContent('#error'), /wait 5 min between devices/);
  await page.fill('#stop-reason', 'patient declined the second device');
  await page.click('#stop');
  assert.match(await page.textContent('#phase'), /Observation/);
  assert.match(await page.textContent('#discharge-missing'), /minimum observation not elapsed/);

  // The printable record.
  await page.click('#print-link');
  assert.match(await page.textContent('#record'), /Treatment session record/);
  assert.match(await page.textContent('#record'), /REMS Patient Monitoring Form/);
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('header.top').isVisible(), false);
  await printPdf(page, resultPath('session-record.pdf'));
  await page.screenshot({ path: resultPath('session-record.png'), fullPage: true });
});
