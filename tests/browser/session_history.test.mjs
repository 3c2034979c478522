// Sessions with measures and PK in a real browser: a nurse opens a demo esketamine session,
// follows "Predicted concentration" to the curve of the devices it gave, and finds the session
// marked on the patient's score chart data; the session page shows the session timeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, openBrowser, signIn, resultPath } from './harness.mjs';

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

test('nurse sees the predicted curve of what a session gave, and the session on the chart', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1600 } });
  await signIn(page, server.base, 'nurse');
  // The demo's third session: two esketamine devices given, in observation.
  await page.goto(`${server.base}/sessions/3`);
  assert.match(await page.textContent('#phase'), /Observation/);
  assert.match(await page.textContent('#pre-measures'), /Questionnaires before this session/);
  await page.click('#predicted-link');
  await page.waitForURL(`${server.base}/sessions/3/predicted`);
  await page.waitForSelector('#predicted-chart svg');
  assert.match(await page.textContent('#predicted-summary'), /esketamine intranasal, 56 mg given/);
  const events = await page.textContent('#predicted-events');
  assert.match(events, /\+0 min: 28 mg intranasal/);
  assert.match(events, /\+5 min: 28 mg intranasal/);
  assert.match(await page.textContent('#predicted-key'), /Cmax/);
  assert.match(await page.textContent('#pk-advisory'), /./);

  const r = await page.request.get(`${server.base}/api/v1/patients/3/trajectory`);
  assert.equal(r.status(), 200);
  const t = await r.json();
  const m = t.markers.find((x) => x.session_id === 3);
  assert.ok(m, JSON.stringify(t.markers));
  assert.equal(m.drug, 'esketamine');
  assert.equal(m.route, 'intranasal');
  assert.equal(m.dose_mg, 56);
});

test('the session page shows the timeline: concentration, vitals, markers, as SVG with its name', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1600 } });
  await signIn(page, server.base, 'nurse');
  await page.goto(`${server.base}/sessions/3`);
  const svg = page.locator('#timeline svg[role="img"]');
  await svg.waitFor();
  assert.match(await svg.getAttribute('aria-label'), /Session timeline: predicted plasma concentration/);
  assert.match(await page.textContent('#timeline'), /never drives/);
  assert.match(await page.textContent('#timeline'), /esketamine intranasal/);
  await page.locator('#timeline').screenshot({ path: resultPath('session-timeline.png') });
  const r = await page.request.get(`${server.base}/api/v1/sessions/3/timeline`);
  assert.equal(r.status(), 200);
  const t = await r.json();
  assert.deepEqual(t.administrations.map((a) => a.kind), ['device', 'device']);
  assert.ok(t.concentration.given[0].ng_ml.length > 0);
  await page.goto(`${server.base}/sessions/3/record`);
  await page.locator('#record-timeline svg[role="img"]').waitFor();
});
