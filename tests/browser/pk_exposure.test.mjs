// Exposure beside response and the TCI panel in a real browser. The demo clinic has no signed
// session, so /pk/exposure first says so; five IV ketamine sessions of different lengths are then
// run to their signed records through the API (the site's shortest observation, 1 min), and the
// page shows them as points with the least-squares line and its band, each session's Cmax the
// same as its timeline's. The simulate page's TCI panel advises a schedule and refuses an
// impossible target beside its field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startKetcare, openBrowser, signIn, resultPath, api, IV_POLICY } from './harness.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

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

// No serious or critical WCAG 2 A/AA violation on the page as it is now (axe-core).
async function assertAccessible(page, what) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] },
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} at ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
  assert.deepEqual(bad, [], what);
}

async function as(username) {
  // The checker is injected by the test browser only (the pages' CSP allows no inline script).
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 1600 }, bypassCSP: true });
  const page = await ctx.newPage();
  await signIn(page, server.base, username);
  await page.goto(`${server.base}/`);
  return page;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function ok(page, method, path, body, status = 200) {
  const r = await api(page, method, path, body);
  assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
  return r.json;
}

test('exposure beside response: empty on the demo, then five signed sessions with a fitted line', async () => {
  const admin = await as('admin');
  const current = await ok(admin, 'GET', '/api/v1/site-settings');
  const settings = current.settings;
  Object.assign(settings.values, IV_POLICY);
  await ok(admin, 'PUT', '/api/v1/site-settings', { settings, reason: 'browser test clinic policy' });

  const nurse = await as('nurse');
  const prescriber = await as('prescriber');
  const pharmacist = await as('pharmacist');

  // The demo clinic has signed no session yet: the page says so.
  await nurse.goto(`${server.base}/pk/exposure`);
  assert.match(await nurse.textContent('#exposure-empty'), /No signed session/);
  assert.match(await nurse.textContent('#exposure-descriptive'), /not a dosing recommendation/);
  await nurse.screenshot({ path: resultPath('pk-exposure-demo-empty.png'), fullPage: true });
  // The simulate page links it for a nurse.
  await nurse.goto(`${server.base}/simulate`);
  assert.equal(await nurse.locator('#exposure-link a[href="/pk/exposure"]').count(), 1);

  // Five adults with treatment-resistant depression; infusions of different lengths.
  const plans = [
    { mrn: 'KC-1001', seconds: 20, systolic: 126, cadss: 4 },
    { mrn: 'KC-1002', seconds: 35, systolic: 131, cadss: 7 },
    { mrn: 'KC-1004', seconds: 50, systolic: 129, cadss: 12 },
    { mrn: 'KC-1010', seconds: 65, systolic: 136, cadss: 14 },
    { mrn: 'KC-1012', seconds: 80, systolic: 138, cadss: 19 },
  ];
  const run = async (plan, i) => {
    const found = await ok(nurse, 'GET', `/api/v1/patients?q=${plan.mrn}`);
    const list = Array.isArray(found) ? found : found.patients ?? found.items;
    const pid = list[0].id;
    const order = await ok(prescriber, 'POST', `/api/v1/patients/${pid}/orders`, {
      protocol_id: 'trd-adult-iv-ketamine',
      preparation: { concentration_mg_per_ml: 10, final_volume_ml: 50 } }, 201);
    await ok(pharmacist, 'POST', `/api/v1/orders/${order.id}/verify`, {});
    await ok(nurse, 'POST', `/api/v1/patients/${pid}/consents`, {
      protocol_id: 'trd-adult-iv-ketamine', signer: { kind: 'patient' } }, 201);
    const s = await ok(nurse, 'POST', `/api/v1/patients/${pid}/sessions`, { order_id: order.id, chair: `Chair E${i}` }, 201);
    const sid = s.id;
    const cmd = (c) => ok(nurse, 'POST', `/api/v1/sessions/${sid}/commands`, c);
    for (const c of [
      { command: 'check_in' },
      { command: 'begin_pre_assessment' },
      { command: 'update_checklist', fasting_confirmed: true, pregnancy: 'not_pregnant', escort_home: true,
        eligibility_reconfirmed: true, suicide_risk: 'negative' },
      { command: 'set_baseline', vitals: { systolic: 120, diastolic: 78, heart_rate: 72, spo2: 98 } },
      { command: 'verify_dose' },
      { command: 'start' },
    ]) await cmd(c);
    await sleep(plan.seconds * 500);
    await ok(nurse, 'POST', `/api/v1/sessions/${sid}/vitals`, { systolic: plan.systolic, diastolic: 82, heart_rate: 80, spo2: 98 }, 201);
    await cmd({ command: 'score', kind: 'moaas', value: 4 });
    await cmd({ command: 'score', kind: 'cadss', value: plan.cadss });
    await sleep(plan.seconds * 500);
    await cmd({ command: 'stop', reason: 'browser test' });
    // Scores after dosing (lower: the page keeps the peak CADSS).
    await cmd({ command: 'score', kind: 'moaas', value: 5 });
    await cmd({ command: 'score', kind: 'cadss', value: 1 });
    await cmd({ command: 'confirm_discharge', dissociation_resolved: true, escort_present: true });
    return { pid, sid, cmd };
  };
  const runs = await Promise.all(plans.map(run));
  // The site's minimum observation (1 min) after the last stop.
  await sleep(62_000);
  for (const { pid, sid, cmd } of runs) {
    await cmd({ command: 'ready_for_discharge' });
    await cmd({ command: 'discharge' });
    const session = await ok(nurse, 'GET', `/api/v1/sessions/${sid}`);
    const givenMg = session.delivered.mg;
    const givenUg = Math.round(givenMg * 1000);
    const ledger = await ok(nurse, 'GET', '/api/v1/ledger');
    const vial = ledger.containers.find((c) => c.product === 'ketamine-10' && c.status !== 'empty');
    assert.ok(vial, 'a 10 mg/mL vial in stock');
    const ul = Math.ceil(givenUg / 10);
    await ok(nurse, 'POST', '/api/v1/ledger/events', { event: {
      kind: 'draw', container: vial.id, session_id: sid, patient_id: pid, volume_ul: ul } }, 201);
    if (ul * 10 > givenUg) {
      await ok(nurse, 'POST', '/api/v1/ledger/events', {
        event: { kind: 'waste', session_id: sid, amount_ug: ul * 10 - givenUg, witness: null, note: 'left in the line' },
        witnesses: [{ username: 'prescriber', password: 'ketcare-demo' }] }, 201);
    }
    await cmd({ command: 'record_given', given_mg: givenMg });
    await cmd({ command: 'sign' });
  }

  // The API: one group of five, each Cmax the same as its timeline's curve, a fitted line.
  const r = await ok(nurse, 'GET', '/api/v1/pk/exposure-response?protocol=trd-adult-iv-ketamine');
  assert.equal(r.groups.length, 1, JSON.stringify(r));
  const g = r.groups[0];
  assert.equal(g.sessions.length, 5);
  for (const s of g.sessions) {
    const t = await ok(nurse, 'GET', `/api/v1/sessions/${s.session_id}/timeline`);
    assert.equal(s.cmax_ng_ml, Math.max(...t.concentration.given[0].ng_ml));
  }
  assert.ok(g.cadss.ols, JSON.stringify(g.cadss));
  assert.ok(g.systolic_rise.ols, JSON.stringify(g.systolic_rise));

  // The page: two named scatters with points, line and band, and the table.
  await nurse.goto(`${server.base}/pk/exposure`);
  const cadss = nurse.locator('figure[id$="-cadss"] svg[role="img"]');
  await cadss.waitFor();
  assert.match(await cadss.getAttribute('aria-label'), /Peak CADSS against predicted Cmax/);
  assert.equal(await cadss.locator('circle.point').count(), 5);
  assert.equal(await cadss.locator('line.fit').count(), 1);
  assert.equal(await cadss.locator('polygon.band').count(), 1);
  assert.equal(await nurse.locator('table.exposure-table tbody tr').count(), 5);
  await assertAccessible(nurse, '/pk/exposure with sessions');
  await nurse.locator('section.exposure-group').first().screenshot({ path: resultPath('pk-exposure-group.png') });
  await nurse.screenshot({ path: resultPath('pk-exposure.png'), fullPage: true });

  // Not for the scheduler or the pharmacist.
  const scheduler = await as('scheduler');
  const denied = await api(scheduler, 'GET', '/api/v1/pk/exposure-response');
  assert.equal(denied.status, 403);
  const deniedPh = await api(pharmacist, 'GET', '/api/v1/pk/exposure-response');
  assert.equal(deniedPh.status, 403);
});

test('the TCI panel on the simulate page advises a schedule and refuses beside the field', async () => {
  const page = await as('nurse');
  await page.goto(`${server.base}/simulate`);
  await page.fill('#tci-target_ng_ml', '150');
  await page.fill('#tci-duration_min', '30');
  await page.click('#tci-run');
  await page.waitForSelector('#tci-schedule');
  assert.match(await page.textContent('#tci-schedule caption'), /never drives a pump/);
  assert.ok(await page.locator('#tci-schedule tbody tr').count() > 1);
  assert.match(await page.locator('#tci-chart svg').getAttribute('aria-label'), /Advisory TCI/);
  await assertAccessible(page, 'the TCI panel with a schedule');
  await page.locator('#tci-panel').screenshot({ path: resultPath('pk-tci.png') });

  // Held at a tiny maximum rate: the warning.
  await page.fill('#tci-target_ng_ml', '5000');
  await page.fill('#tci-max_rate_mg_per_kg_min', '0.001');
  await page.click('#tci-run');
  await page.waitForSelector('#tci-warnings');
  assert.match(await page.textContent('#tci-warnings'), /target not reached/);
  assert.ok(await page.locator('#tci-schedule tr.at-max').count() >= 1);

  // A target above the cited maximum: refused beside the field.
  await page.fill('#tci-target_ng_ml', '20000');
  await page.fill('#tci-max_rate_mg_per_kg_min', '');
  await page.click('#tci-run');
  await page.waitForSelector('#tci-target_ng_ml-error');
  assert.match(await page.textContent('#tci-target_ng_ml-error'), /above the highest accepted target/);
  assert.equal(await page.getAttribute('#tci-target_ng_ml', 'aria-invalid'), 'true');
  await assertAccessible(page, 'the TCI panel with a refusal');
  await page.locator('#tci-panel').screenshot({ path: resultPath('pk-tci-refused.png') });
});
