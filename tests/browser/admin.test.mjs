// The admin UI in headless Chromium against a real `wxbridge demo` (simulated WeCom, SQLite), at a desktop
// (1280x800) and a phone (375x812, touch) viewport: sign-in (one-time link, admin token), a sync whose live
// progress reaches the end, both-way directory lookups, a message to a role seen in the delivery log, and the
// "Sign in with WeCom" flow through the simulator's login page. Screenshots of every step go to
// ci-artifacts/screenshots/. Builds nothing: WXBRIDGE_BIN (default target/debug/wxbridge) must exist.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, access } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = path.resolve(repo, process.env.WXBRIDGE_BIN || 'target/debug/wxbridge');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SHOTS = path.join(repo, 'ci-artifacts', 'screenshots');
const MEMBERS = Number(process.env.WXBRIDGE_DEMO_MEMBERS || 3000);
const DEPARTMENTS = Number(process.env.WXBRIDGE_DEMO_DEPARTMENTS || 120);
const STEP_TIMEOUT = 60_000;

const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
};

const env = {
  demo: null, // the child process
  stdout: '',
  base: '',
  sim: '',
  link: '',
  adminToken: '',
  tenant: 'demo',
  dataDir: '',
  browser: null,
};

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the demo and resolves once it printed its one-time admin link (the bridge listens by then). */
function startDemo(port) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [
      'demo', '--data-dir', env.dataDir, '--port', String(port),
      '--members', String(MEMBERS), '--departments', String(DEPARTMENTS),
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'warn' } });
    env.demo = child;
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        reject(new Error(`wxbridge demo printed no admin link within 180 s; output so far:\n${env.stdout.slice(-4000)}`));
      }
    }, 180_000);
    const onData = (chunk) => {
      env.stdout += chunk.toString('utf8');
      const m = env.stdout.match(/(https?:\/\/[^\s]+\/admin\/login\/link\?token=[A-Za-z0-9_\-]+)/);
      if (m && !done && /wxbridge demo is running/.test(env.stdout)) {
        done = true;
        clearTimeout(timer);
        env.link = m[1];
        const sim = env.stdout.match(/simulator:\s+(http:\/\/[0-9.:]+)/);
        env.sim = sim ? sim[1] : '';
        const tok = env.stdout.match(/\b(wxa_[A-Za-z0-9_\-]+)/);
        env.adminToken = tok ? tok[1] : '';
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`wxbridge demo exited (${code ?? signal}) before printing an admin link:\n${env.stdout.slice(-4000)}`));
      }
    });
  });
}

async function stopDemo() {
  const child = env.demo;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** A fresh browser context at one viewport, recording page errors, console errors and CSRF-less writes. */
async function openContext(name) {
  const context = await env.browser.newContext({ ...VIEWPORTS[name], baseURL: env.base, locale: 'en-US' });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    const url = new URL(r.url());
    const api = url.pathname.startsWith('/api/') || url.pathname.startsWith('/admin/api/');
    const write = !['GET', 'HEAD'].includes(r.method());
    const login = url.pathname.startsWith('/admin/api/login/');
    if (url.origin === env.base && api && write && !login && !r.headers()['x-csrf-token']) {
      problems.push(`${r.method()} ${url.pathname} without X-CSRF-Token`);
    }
  });
  let shot = 0;
  const snap = async (step) => {
    shot += 1;
    await page.screenshot({ path: path.join(SHOTS, `${name}-${String(shot).padStart(2, '0')}-${step}.png`), fullPage: true });
  };
  return { context, page, problems, snap };
}

/** The page's own fetch (same cookie); GETs need no CSRF header. */
async function getJson(page, url) {
  return page.evaluate(async (u) => {
    const r = await fetch(u, { credentials: 'same-origin' });
    if (!r.ok) throw new Error(`${u}: ${r.status} ${await r.text()}`);
    return r.json();
  }, url);
}

/** On the phone the navigation sits behind the menu button. */
async function goTo(page, name, label) {
  if (name === 'phone') {
    await page.getByRole('button', { name: 'Menu' }).tap();
  }
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
}

async function signedInAs(page, name, kindText) {
  await page.waitForSelector('.main h1');
  if (name === 'phone') {
    await page.getByRole('button', { name: 'Menu' }).tap();
  }
  const op = page.locator('.nav-footer .operator');
  await op.waitFor({ state: 'visible' });
  const text = await op.innerText();
  assert.match(text, kindText, `operator block: ${text}`);
  if (name === 'phone') await page.locator('.scrim').click({ position: { x: 350, y: 400 } });
}

/** The simulator answers every `user/list` after `ms` (0: at once), so a sync lasts long enough to watch. */
async function simLatency(ms) {
  assert.ok(env.sim, 'the demo printed its simulator URL');
  const r = await fetch(`${env.sim}/_sim/concurrency_limits`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ api: '/cgi-bin/user/list', max: 1000, latency_ms: ms }),
  });
  assert.equal(r.status, 200, await r.text());
}

/** Starts a run from the Sync page and follows its live progress until the `finished` event. */
async function watchSync(page, snap, dry) {
  await simLatency(150);
  try {
    const before = page.url();
    await page.locator(dry ? '#start-dry-run' : '#start-sync').click();
    await page.waitForURL((u) => /\/sync\/run\/\d+$/.test(u.hash) && u.href !== before);
    // Live: the members phase is seen part-way (the bar between 1 and 99 %) before the run finishes.
    await page.waitForFunction(() => {
      const bar = document.querySelector('#run-progress');
      const now = bar && Number(bar.getAttribute('aria-valuenow'));
      return document.querySelector('#run-phase').textContent === 'members' && now > 0 && now < 100
        && !document.querySelector('#run-box .card[data-finished]');
    }, null, { polling: 'raf' });
    assert.match(await page.locator('#run-done').innerText(), /^\d[\d,]* \/ \d[\d,]* \(\d+%\)$/);
    await snap(dry ? 'dry-run-progress' : 'sync-progress');
  } finally {
    await simLatency(0);
  }
  const card = page.locator('#run-box .card');
  await page.waitForSelector('#run-box .card[data-finished]', { timeout: 120_000 });
  const status = await card.getAttribute('data-finished');
  assert.equal(status, 'succeeded', `sync ended ${status}: ${await card.innerText()}`);
  assert.equal(await page.locator('#run-progress').getAttribute('aria-valuenow'), '100');
  const result = await page.locator('#run-result').innerText();
  if (dry) assert.match(result, /Diff summary \(dry run: nothing was written\)/);
  else assert.match(result, /Result/);
  await snap(dry ? 'dry-run-finished' : 'sync-finished');
  return Number(page.url().match(/run\/(\d+)/)[1]);
}

async function scenario(name, signIn) {
  const { context, page, problems, snap } = await openContext(name);
  try {
    const kind = await signIn(page, snap);
    await signedInAs(page, name, kind);
    await page.waitForSelector('.stats');
    await snap('dashboard');
    const me = await getJson(page, '/admin/api/me');
    env.tenant = me.tenants[0].key;
    const T = env.tenant;

    // Sync: a dry run with its diff, then a real run, both followed live to `finished`.
    await goTo(page, name, 'Sync');
    await page.waitForSelector('#start-sync');
    const dryId = await watchSync(page, snap, true);
    const runId = await watchSync(page, snap, false);
    assert.ok(runId > dryId);
    const history = page.locator('table tbody tr', { hasText: `#${runId}` });
    await history.first().waitFor();
    assert.match(await history.first().innerText(), /succeeded/);

    // Directory: WeCom department 1 -> its role -> a member -> their WeCom userid -> back to the same user.
    await goTo(page, name, 'Directory');
    await page.fill('#lookup-department', '1');
    await page.locator('#lookup-department-form button').click();
    await page.waitForURL(/\/directory\/role\/\d+/);
    await page.waitForSelector('#role-name');
    assert.equal((await page.locator('#role-department').innerText()).split(/\s/)[0], '1');
    const rootRole = Number(page.url().match(/role\/(\d+)/)[1]);
    await page.locator('#members-sub').check();
    await page.waitForURL(/sub=1/);
    const firstMember = page.locator('#directory-detail table tbody tr a').first();
    await firstMember.waitFor();
    await snap('role-with-members');
    const memberName = (await firstMember.innerText()).trim();
    await firstMember.click();
    await page.waitForURL(/\/directory\/user\/\d+/);
    await page.waitForSelector('#user-name');
    assert.equal((await page.locator('#user-name').innerText()).trim(), memberName);
    const userId = Number(page.url().match(/user\/(\d+)/)[1]);
    const userid = (await page.locator('.wecom-userid').first().innerText()).trim();
    assert.ok(userid.length > 0);
    await snap('member-detail');
    await page.fill('#lookup-userid', userid);
    await page.locator('#lookup-user-form button').click();
    await page.waitForFunction((id) => location.hash.endsWith(`/directory/user/${id}`) && document.querySelector('#user-name'), userId);
    assert.equal((await page.locator('#user-name').innerText()).trim(), memberName);
    // Search by name finds them too.
    await page.fill('#search-input', memberName);
    await page.locator('#search-form button').click();
    await page.waitForURL(/\/directory\/search/);
    await page.locator('#directory-detail a', { hasText: memberName }).first().waitFor();
    await snap('search');
    // An unknown userid is an error shown to the user, not a navigation.
    await page.fill('#lookup-userid', 'no-such-user-xyz');
    await page.locator('#lookup-user-form button').click();
    await page.locator('.alert-error', { hasText: 'no-such-user-xyz' }).waitFor();

    // Messages: to a leaf role (expanded to its members), seen as sent in the delivery log with the userids.
    const tree = await getJson(page, `/admin/api/tenants/${encodeURIComponent(T)}/roles/tree`);
    const parents = new Set(tree.roles.map((r) => r.parent_id).filter((p) => p !== null));
    const leaf = tree.roles.find((r) => !parents.has(r.id) && r.member_count > 0 && r.member_count <= 20 && r.id !== rootRole);
    assert.ok(leaf, 'the demo organisation has a small leaf role');
    const members = await getJson(page, `/api/v1/tenants/${encodeURIComponent(T)}/roles/${leaf.id}/members`);
    const expected = [];
    for (const m of members.members) {
      const u = await getJson(page, `/api/v1/tenants/${encodeURIComponent(T)}/users/${m.user.id}`);
      for (const w of u.wecom) expected.push(w.userid);
    }
    assert.ok(expected.length > 0);
    await goTo(page, name, 'Messages');
    await page.waitForSelector('#compose-form');
    await page.selectOption('#msg-app', 'main'); // the demo's app that sees the whole organisation
    await page.fill('#msg-pick', leaf.name);
    const pick = page.locator(`#msg-pick-results .pick-item[data-kind="role"][data-id="${leaf.id}"]`);
    await pick.click();
    const chip = page.locator(`#msg-recipients .chip[data-kind="role"][data-id="${leaf.id}"]`);
    await chip.waitFor();
    await chip.locator('input.chip-sub').uncheck();
    const text = `Browser test (${name}) ${new Date().toISOString()}`;
    await page.fill('#msg-content', text);
    await snap('compose');
    await page.locator('#msg-send').click();
    const accepted = await page.locator('#msg-result .alert-success').innerText();
    const messageId = Number(accepted.match(/#(\d+)/)[1]);
    const row = page.locator('tr.msg-row', { hasText: `#${messageId}` });
    await page.waitForSelector(`tr.msg-row.msg-sent >> text=#${messageId}`, { timeout: 60_000 });
    const rowText = await row.innerText();
    for (const uid of expected) assert.ok(rowText.includes(uid), `delivery log row lists ${uid}: ${rowText}`);
    await snap('delivery-log');

    // Setup and account graph render without errors.
    await goTo(page, name, 'Setup');
    await page.locator('.card-title', { hasText: 'Callback URLs' }).waitFor();
    await snap('setup');
    await goTo(page, name, 'Account graph');
    await page.locator('.card-title', { hasText: 'Merges' }).waitFor();
    await page.waitForFunction(() => !document.querySelector('.main .loading'));
    await snap('account-graph');

    assert.deepEqual(problems, []);
  } catch (e) {
    await snap('failure').catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

async function wecomLogin(name) {
  const { context, page, problems, snap } = await openContext(name);
  try {
    await page.goto('/admin/');
    const button = page.locator('a.wecom-login').first();
    await button.waitFor();
    await snap('signin-page');
    await button.click();
    // The simulator's WeCom login page (another origin): pick a member.
    await page.waitForURL((u) => !u.href.startsWith(env.base));
    const pick = page.locator('button[name="pick"]').first();
    await pick.waitFor();
    await snap('wecom-sim-page');
    await pick.click();
    await page.waitForURL((u) => u.href.startsWith(`${env.base}/admin/`) && u.hash.startsWith('#/t/'));
    await signedInAs(page, name, /WeCom/);
    await snap('wecom-signed-in');
    assert.deepEqual(problems, []);
  } catch (e) {
    await snap('failure-wecom').catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

describe('admin UI in headless Chromium', { timeout: 600_000 }, () => {
  before(async () => {
    await access(BIN).catch(() => {
      throw new Error(`${BIN} does not exist: build it first (cargo build -p wxbridge) or set WXBRIDGE_BIN`);
    });
    await mkdir(SHOTS, { recursive: true });
    env.dataDir = await mkdtemp(path.join(tmpdir(), 'wxbridge-browser-'));
    const port = await freePort();
    env.base = `http://127.0.0.1:${port}`;
    await startDemo(port);
    env.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    if (env.browser) await env.browser.close().catch(() => {});
    await stopDemo();
    if (env.dataDir) await rm(env.dataDir, { recursive: true, force: true });
  });

  test('desktop: one-time link sign-in, live sync, lookups, message to a role', async () => {
    await scenario('desktop', async (page, snap) => {
      await page.goto(env.link);
      await page.waitForURL((u) => u.pathname === '/admin/' && u.hash.length > 1);
      await snap('signed-in-by-link');
      return /one-time link/;
    });
  });

  test('the one-time link works once', async () => {
    const { context, page, snap } = await openContext('desktop');
    try {
      await page.goto(env.link);
      const body = await page.locator('body').innerText();
      assert.match(body, /(already used|no longer valid|expired|not valid)/i, body);
      await snap('used-link');
      const me = await page.evaluate(async () => (await fetch('/admin/api/me')).status);
      assert.equal(me, 401);
    } finally {
      await context.close();
    }
  });

  test('phone: admin token (or WeCom) sign-in, live sync, lookups, message to a role', async () => {
    await scenario('phone', async (page, snap) => {
      await page.goto('/admin/');
      if (env.adminToken) {
        await page.fill('#admin-token', 'wxa_wrong');
        await page.locator('#token-form button[type=submit]').tap();
        await page.locator('#token-form .alert-error').waitFor();
        await snap('token-refused');
        await page.fill('#admin-token', env.adminToken);
        await page.locator('#token-form button[type=submit]').tap();
      } else {
        await page.locator('a.wecom-login').first().tap();
        await page.locator('button[name="pick"]').first().tap();
      }
      await page.waitForURL((u) => u.hash.startsWith('#/t/') || u.hash === '#/tenants');
      await snap('signed-in');
      return env.adminToken ? /admin token/ : /WeCom/;
    });
  });

  for (const name of Object.keys(VIEWPORTS)) {
    test(`${name}: Sign in with WeCom through the simulated login page`, async () => {
      await wecomLogin(name);
    });
  }
});
