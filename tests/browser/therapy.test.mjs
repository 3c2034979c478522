// Psychotherapy integration in a real browser: the demo therapist records an integration
// encounter for KC-1003 linked to yesterday's infusion, writes the psychotherapy note, and a
// nurse then opens the same encounter: the structured part is there, the note is not (nor
// through the API).
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

function yesterday() {
  const d = new Date();
  d.setDate(d.getDate() - 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

const NOTE = 'Felt the lake again; grief for her father came up, softer this time.';

test('a therapist writes an integration note for yesterday\'s session and a nurse cannot read it', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1600 } });
  await signIn(page, server.base, 'therapist');
  await page.goto(`${server.base}/patients/3/therapy`);
  // The demo clinic's window (its own choice): yesterday's dose is due for integration.
  assert.match(await page.textContent('#integration-window'), /within 3 days/);
  assert.match(await page.textContent('#integration'), /due by/);

  const option = page.locator('#session_id option', { hasText: `dosed ${yesterday()}` });
  const sessionId = await option.getAttribute('value');
  assert.ok(sessionId, 'yesterday\'s session is offered');
  await page.selectOption('#kind', 'integration');
  await page.fill('#duration_minutes', '50');
  await page.selectOption('#modality', 'individual');
  await page.selectOption('#session_id', sessionId);
  await page.fill('#themes', 'grief; connection');
  await page.fill('#homework', 'journal each morning');
  await page.click('#encounter-form button[type=submit]');
  await page.waitForURL(/\/therapy\/encounters\/\d+$/);
  const encounterUrl = page.url();
  assert.match(await page.textContent('#encounter'), new RegExp(`session ${sessionId}`));

  await page.fill('#note-text', NOTE);
  await page.click('#note-form button[type=submit]');
  await page.waitForSelector('.note-text');
  assert.equal((await page.textContent('.note-text')).trim(), NOTE);
  await page.screenshot({ path: resultPath('therapy-encounter.png') });
  await page.goto(`${server.base}/patients/3/therapy`);
  assert.match(await page.textContent(`#integration tr[data-session="${sessionId}"]`), /held/);
  await signOut(page);

  await signIn(page, server.base, 'nurse');
  const r = await page.goto(encounterUrl);
  assert.equal(r.status(), 200);
  assert.match(await page.textContent('#encounter'), /journal each morning/);
  assert.match(await page.textContent('#notes-closed'), /does not read psychotherapy notes/);
  assert.ok(!(await page.content()).includes('lake'), 'the note is not on the nurse\'s page');
  const eid = encounterUrl.split('/').pop();
  const api = await page.request.get(`${server.base}/api/v1/therapy/encounters/${eid}/notes`);
  assert.equal(api.status(), 403);
});
