// Two ketcare processes on one PostgreSQL database: the nurse watches the suite served by one,
// a monitor sends its reading to the other over MLLP, and the dashboard shows it live (the
// processes share live events through PostgreSQL LISTEN/NOTIFY).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKetcare, freshPostgres, openBrowser, signIn, resultPath, sendOru } from './harness.mjs';

let a;
let b;
let browser;

before(async () => {
  const databaseUrl = freshPostgres();
  a = await startKetcare({ mllp: true, databaseUrl });
  b = await startKetcare({ demo: false, databaseUrl });
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await b?.stop();
  await a?.stop();
});

test("a monitor's reading sent to one process appears on the suite another process serves", async () => {
  const page = await browser.newPage();
  await signIn(page, b.base, 'nurse');
  await page.goto(`${b.base}/suite`);
  await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'live');
  const chair2 = page.locator('tr', { hasText: 'Chair 2' });
  const sid2 = await chair2.getAttribute('data-session');

  const ack = await sendOru(a.mllpPort, 'TWO-1', 'KC-1002', [
    ['150021', 'MDC_PRESS_BLD_NONINV_SYS', 142], ['150022', 'MDC_PRESS_BLD_NONINV_DIA', 88], ['150456', 'MDC_PULS_OXIM_SAT_O2', 95]]);
  assert.match(ack, /MSA\|AA\|TWO-1/, 'process A acknowledged the reading');
  await page.waitForFunction((id) => document.getElementById(`chair-${id}`)?.getAttribute('data-last-control-id') === 'TWO-1', sid2, { timeout: 5000 });
  assert.match(await chair2.locator('.latest').textContent(), /BP 142\/88/);
  await page.screenshot({ path: resultPath('suite-two-processes.png'), fullPage: true });

  // The session page on B shows the reading A stored (the record, not only the event).
  await page.goto(`${b.base}/sessions/${sid2}`);
  assert.match(await page.textContent('body'), /142\/88/);
  await page.close();
});
