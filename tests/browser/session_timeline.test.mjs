// The session timeline in a real browser: an IV ketamine session runs while a simulated monitor
// streams vitals over MLLP (a raw TCP socket); the session page's timeline puts the predicted
// concentration and the streamed vitals on one axis and redraws itself live; when the nurse
// changes the pump rate the predicted curve changes; the printable record carries the timeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, resultPath, preAssess, sendOru, api, setIvPolicy, scheduleIvSession } from './harness.mjs';

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

// The given curve's value at the end of its axis (the current rate carried forward).
function lastGiven(t) {
  const s = t.concentration.given[0];
  return s.ng_ml[s.ng_ml.length - 1];
}

test('the timeline shows the curve and MLLP vitals on one axis, follows a rate change, and prints', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1600 } });

  // The site's values the order and the session read (the site's choice, not defaults).
  await setIvPolicy(page, server.base);

  // 0.5 mg/kg for 64 kg = 32 mg: 3.2 mL of 10 mg/mL in 50 mL over 40 min = 75 mL/h. Ordered,
  // verified, scheduled; the nurse pre-assesses and starts the pump at the ordered rate.
  const { sid } = await scheduleIvSession(page, server.base, 'KC-1010', 'Chair 9');
  await preAssess(page);
  await page.click('#verify-dose');
  await page.click('#start');
  assert.match(await page.textContent('#phase'), /Running/);
  const svg = page.locator('#timeline svg[role="img"]');
  await svg.waitFor();
  const svgStart = await svg.innerHTML();

  // The monitor streams a reading for this patient: ACK AA only after it is stored.
  const ack = await sendOru(server.mllpPort, 'TL-1', 'KC-1010', [
    ['150021', 'MDC_PRESS_BLD_NONINV_SYS', 133], ['150022', 'MDC_PRESS_BLD_NONINV_DIA', 84],
    ['147842', 'MDC_ECG_HEART_RATE', 77], ['150456', 'MDC_PULS_OXIM_SAT_O2', 97]]);
  assert.match(ack, /MSA\|AA\|TL-1/);

  // The open page redraws its timeline on the live event; the monitor's reading is on the same
  // axis as the predicted curve.
  await page.waitForFunction((old) => document.querySelector('#timeline svg[role="img"]')?.innerHTML !== old,
    svgStart, { timeout: 20000 });
  assert.match(await svg.getAttribute('aria-label'), /Session timeline: predicted plasma concentration/);
  // "If stopped now" exists once the pump has run (the record counts whole seconds): read the
  // timeline until it has it.
  let before;
  for (let i = 0; i < 50; i++) {
    before = await api(page, 'GET', `/api/v1/sessions/${sid}/timeline`);
    assert.equal(before.status, 200, before.text);
    if (before.json.concentration?.if_stopped_now) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const monitor = before.json.vitals.filter((v) => v.source === 'monitor');
  assert.equal(monitor.length, 1, JSON.stringify(before.json.vitals));
  assert.equal(monitor[0].systolic, 133);
  assert.equal(monitor[0].diastolic, 84);
  assert.equal(monitor[0].heart_rate, 77);
  assert.equal(monitor[0].spo2, 97);
  assert.ok(before.json.concentration.given[0].ng_ml.length > 0);
  assert.ok(before.json.concentration.as_ordered, 'a projection as ordered while the pump runs');
  assert.ok(before.json.concentration.if_stopped_now, 'a projection if stopped now');
  // Curve and vitals share the axis: the reading lies within the curve's minutes.
  const given = before.json.concentration.given[0];
  assert.ok(monitor[0].t_min >= given.t_min[0] && monitor[0].t_min <= given.t_min[given.t_min.length - 1]);
  const svgBefore = await svg.innerHTML();
  // At the ordered rate, where the current rate leads is the "as ordered" line itself.
  assert.doesNotMatch(svgBefore, /if the current rate continues/);
  await page.locator('#timeline').screenshot({ path: resultPath('session-timeline-running.png') });

  // The nurse halves the rate (not the order's: with a reason). The predicted curve of what is
  // given changes — the current rate is carried forward — and the page redraws.
  await page.fill('#new-rate', '37.5');
  await page.fill('#new-rate-reason', 'patient dizzy, prescriber asked to halve the rate');
  await page.click('#change-rate');
  assert.equal(await page.locator('#error').count(), 0);
  assert.match(await page.textContent('#administrations'), /rate changed to 37.5 mL\/h/);
  const after = await api(page, 'GET', `/api/v1/sessions/${sid}/timeline`);
  assert.equal(after.status, 200, after.text);
  assert.ok(after.json.administrations.some((a) => a.kind === 'rate_change'), JSON.stringify(after.json.administrations));
  assert.ok(lastGiven(after.json) < lastGiven(before.json) * 0.9,
    `the curve falls with the halved rate: ${lastGiven(before.json)} → ${lastGiven(after.json)}`);
  await svg.waitFor();
  assert.notEqual(await svg.innerHTML(), svgBefore);
  // Drawn beside "as ordered": where the halved rate leads.
  assert.match(await svg.innerHTML(), /if the current rate continues/);
  await page.locator('#timeline').screenshot({ path: resultPath('session-timeline-rate-changed.png') });

  // The printable record carries the timeline.
  await page.goto(`${server.base}/sessions/${sid}/record`);
  const printed = page.locator('#record-timeline svg[role="img"]');
  await printed.waitFor();
  assert.match(await printed.getAttribute('aria-label'), /Session timeline/);
  await page.locator('#record-timeline').screenshot({ path: resultPath('session-record-timeline.png') });
});
