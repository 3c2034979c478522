// Shared harness: starts ketcare on a free port with a fresh demo database, and opens Debian's
// Chromium through playwright-core (which downloads no browser of its own).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// A fresh, empty PostgreSQL database (through psql, as the Rust tests' server's administrator):
// its URL. The server started on it migrates it.
export function freshPostgres() {
  const admin = process.env.KETCARE_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `ketcare_browser_${process.pid}_${Date.now()}`;
  execFileSync('psql', [admin, '-qc', `CREATE DATABASE ${name}`]);
  return admin.replace(/\/[^/]*$/, `/${name}`);
}

// Starts `ketcare serve` (with the demo clinic unless `demo` is false) on a fresh SQLite file,
// or on `databaseUrl`.
export async function startKetcare({ mllp = false, args = [], demo = true, databaseUrl = null } = {}) {
  const bin = process.env.KETCARE_BIN;
  if (!bin) throw new Error('KETCARE_BIN must name the ketcare binary (scripts/browser-test sets it)');
  const data = mkdtempSync(join(tmpdir(), 'ketcare-browser-'));
  const port = await freePort();
  const mllpPort = mllp ? await freePort() : null;
  const extra = [...(mllp ? ['--mllp', `127.0.0.1:${mllpPort}`] : []), ...args];
  const db = databaseUrl ? ['--database-url', databaseUrl] : [];
  const child = spawn(bin, ['serve', ...(demo ? ['--demo'] : []), '--data', data, ...db, '--addr', `127.0.0.1:${port}`, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'KETCARE_DATABASE_URL')),
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (child.exitCode !== null) throw new Error(`ketcare exited early:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    mllpPort,
    output: () => output,
    async stop() {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

// The next Monday's date (never today), as YYYY-MM-DD.
export function nextMonday() {
  const d = new Date();
  d.setDate(d.getDate() + ((8 - d.getDay()) % 7 || 7));
  return d.toISOString().slice(0, 10);
}

// As the signed-in scheduler: books patient `patientId` an esketamine course from next Monday at
// 09:00 in Chair 1.
export async function bookCourse(page, patientId) {
  await page.click('nav >> text=Schedule');
  await page.fill('#patient_id', String(patientId));
  await page.selectOption('#template_id', 'esketamine-trd');
  await page.fill('#first_day', nextMonday());
  await page.fill('#time', '09:00');
  await page.selectOption('#chair_id', { label: 'Chair 1' });
  await page.click('#book-course button[type=submit]');
  await page.waitForSelector('#schedule-message');
}

// A local SMTP server that keeps every message it is given (nothing leaves the machine): the
// site's relay in tests of email delivery. `next()` resolves with the next message, parsed.
export async function startMailCatcher() {
  const { SMTPServer } = await import('smtp-server');
  const { simpleParser } = await import('mailparser');
  const received = [];
  const waiting = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream).then((mail) => {
        const w = waiting.shift();
        if (w) w(mail); else received.push(mail);
        callback();
      }, callback);
    },
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port,
    next(timeoutMs = 30000) {
      if (received.length) return Promise.resolve(received.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message reached the SMTP server')), timeoutMs);
        waiting.push((m) => { clearTimeout(timer); resolve(m); });
      });
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

export async function openBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

export async function signIn(page, base, username, password = 'ketcare-demo') {
  await page.goto(`${base}/login`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
}

export async function signOut(page) {
  await page.click('form.signout button');
  await page.waitForURL(/\/login/);
}

// Where a test's screenshots go (tests/browser/test-results/, ignored by git).
export function resultPath(name) {
  const dir = fileURLToPath(new URL('./test-results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

// Sends one HL7 v2 ORU^R01 (OBX numeric fields [code, name, value]) over MLLP, as a bedside
// monitor would, and resolves with the raw ACK.
export function sendOru(port, controlId, mrn, fields) {
  const obx = fields.map(([code, name, value], i) => `OBX|${i + 1}|NM|${code}^${name}^MDC||${value}|||||F`).join('\r');
  const msg = `MSH|^~\\&|SIM|SUITE|KETCARE|SITE|20260101090000||ORU^R01|${controlId}|P|2.6\rPID|||${mrn}^^^H^MR\r${obx}\r`;
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(msg), Buffer.from([0x1c, 0x0d])])));
    let data = '';
    sock.on('data', (d) => {
      data += d.toString();
      if (data.endsWith('\x1c\r')) { sock.end(); resolve(data); }
    });
    sock.on('error', reject);
  });
}

// Prints the page to a PDF. Chromium's PDF stream read (`IO.read`) fails now and then on a busy
// machine; the page is unchanged between tries, so a retry prints the same document.
export async function printPdf(page, path, tries = 3) {
  for (let i = 1; ; i += 1) {
    try {
      return await page.pdf({ path });
    } catch (e) {
      if (i >= tries || !String(e).includes('IO.read')) throw e;
    }
  }
}

// On a scheduled session's page: checks the patient in and completes the pre-assessment (the
// checklist and a baseline of BP 124/78, HR 72, SpO2 98 %), ready to verify the dose.
export async function preAssess(page) {
  await page.click('#check-in');
  await page.click('#begin-pre-assessment');
  for (const id of ['fasting_confirmed', 'escort_home', 'eligibility_reconfirmed']) {
    await page.selectOption(`#${id}`, 'yes');
  }
  await page.selectOption('#pregnancy', 'not_pregnant');
  await page.selectOption('#suicide_risk', 'negative');
  await page.click('#save-checklist');
  await page.fill('#b-sys', '124');
  await page.fill('#b-dia', '78');
  await page.fill('#b-hr', '72');
  await page.fill('#b-spo2', '98');
  await page.click('#save-baseline');
}

// On a patient's screening form: an adult with treatment-resistant depression for racemic
// ketamine, not pregnant, two adequate antidepressant trials, baseline BP as given.
export async function fillTrdScreening(page, systolic, diastolic) {
  await page.selectOption('#indication', 'trd');
  await page.selectOption('#drug', 'racemic_ketamine');
  await page.selectOption('#pregnancy', 'not_pregnant');
  await page.fill('#systolic', String(systolic));
  await page.fill('#diastolic', String(diastolic));
  await page.fill('input[name=trial0_drug]', 'sertraline');
  await page.fill('input[name=trial0_dose]', '150');
  await page.fill('input[name=trial0_weeks]', '8');
  await page.fill('input[name=trial1_drug]', 'bupropion');
  await page.fill('input[name=trial1_dose]', '300');
  await page.fill('input[name=trial1_weeks]', '8');
}

// A JSON API call with the signed-in browser session (and its CSRF token on unsafe requests).
export async function api(page, method, path, body) {
  return page.evaluate(async ({ method, path, body }) => {
    const csrf = document.querySelector('input[name=csrf_token]')?.value ?? '';
    const r = await fetch(path, {
      method,
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, text, json };
  }, { method, path, body });
}

// The site's values an IV ketamine session reads, as these tests' clinic sets them (the site's
// choice for the tests, not defaults).
export const IV_POLICY = {
  'eligibility.ketamine_bp_systolic_max_mmhg': 160,
  'eligibility.ketamine_bp_diastolic_max_mmhg': 100,
  'eligibility.trd_adequate_trial_min_weeks': 6,
  'observation.ketamine_psychiatric_minutes': 1,
  'rounding.dose_mg_increment': 1,
  'rounding.pump_ml_per_h_increment': 0.1,
  'rounding.syringe_ml_increment': 0.1,
  'session.ketamine.bp_gate_systolic_mmhg': 140,
  'session.ketamine.bp_gate_diastolic_mmhg': 90,
};

// The administrator sets the site's values an IV ketamine session reads (the ketamine BP limits,
// the adequate-trial weeks, the shortest minimum observation, rounding) plus `extra` — the site's
// choice for these tests, not defaults — and signs out.
export async function setIvPolicy(page, base, extra = {}) {
  await signIn(page, base, 'admin');
  await page.goto(`${base}/`);
  const current = await api(page, 'GET', '/api/v1/site-settings');
  if (current.status !== 200) throw new Error(current.text);
  const settings = current.json.settings;
  Object.assign(settings.values, IV_POLICY, extra);
  const put = await api(page, 'PUT', '/api/v1/site-settings', { settings, reason: 'browser test clinic policy' });
  if (put.status !== 200) throw new Error(put.text);
  await signOut(page);
}

// A prescriber orders IV ketamine (trd-adult-iv-ketamine, 10 mg/mL in 50 mL) for patient `mrn`, a
// pharmacist verifies it, and the nurse (left signed in) records the patient's consent and
// schedules the session in `chair` in the browser. Returns the patient, the order as created and
// the session id; the page is on the session.
export async function scheduleIvSession(page, base, mrn, chair) {
  await signIn(page, base, 'prescriber');
  await page.goto(`${base}/`);
  const found = await api(page, 'GET', `/api/v1/patients?q=${mrn}`);
  if (found.status !== 200) throw new Error(found.text);
  const patients = Array.isArray(found.json) ? found.json : found.json.patients ?? found.json.items;
  const pid = patients[0].id;
  const order = await api(page, 'POST', `/api/v1/patients/${pid}/orders`, {
    protocol_id: 'trd-adult-iv-ketamine',
    preparation: { concentration_mg_per_ml: 10, final_volume_ml: 50 } });
  if (order.status !== 201) throw new Error(order.text);
  await signOut(page);
  await signIn(page, base, 'pharmacist');
  await page.goto(`${base}/`);
  const verified = await api(page, 'POST', `/api/v1/orders/${order.json.id}/verify`, {});
  if (verified.status !== 200) throw new Error(verified.text);
  await signOut(page);
  await signIn(page, base, 'nurse');
  await page.goto(`${base}/`);
  const consent = await api(page, 'POST', `/api/v1/patients/${pid}/consents`, {
    protocol_id: 'trd-adult-iv-ketamine', signer: { kind: 'patient' } });
  if (consent.status !== 201) throw new Error(consent.text);
  await page.goto(`${base}/patients/${pid}/sessions/new`);
  await page.selectOption('#order_id', String(order.json.id));
  await page.fill('#chair', chair);
  await page.click('form.record button[type=submit]');
  await page.waitForURL(/\/sessions\/\d+(#[\w-]+)?$/);
  const sid = Number(new URL(page.url()).pathname.split('/').pop());
  return { pid, order: order.json, sid };
}
