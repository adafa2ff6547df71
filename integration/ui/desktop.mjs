// Drives the desktop page of a real local testnet in Debian's Chromium (playwright-core, no
// browser download), as tests/desktop_ui.rs asks: open a channel, deposit, a page of another
// origin that cannot change the node, a mediated payment with its fee preview turning to
// success and the balance moving without a reload, a failed payment with its reason, close
// with the settle countdown, settle. A screenshot per screen goes to cfg.shots.
//
// Input: the JSON in $DESKTOP_TEST: {url, rpc, token, node2, node3, fee, settleTimeout,
// punishBlocks, shots}, or {mode: "login", url, apiToken, address, shots} for a node started
// with --api-token-file. Exit 0 when every step held; otherwise the failed step on stderr.

import http from 'node:http';
import { createRequire } from 'node:module';
import { qrMatrix } from '../../src/api/ui/qr.js';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const cfg = JSON.parse(process.env.DESKTOP_TEST);
const started = Date.now();
const log = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${text}`);
const WAIT = { timeout: 60_000 };

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function rest(path) {
  const r = await fetch(`${cfg.url}/api/1/${path}`);
  check(r.ok, `GET ${path}: ${r.status}`);
  return r.json();
}

async function mine(blocks) {
  const r = await fetch(cfg.rpc, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'anvil_mine', params: [`0x${blocks.toString(16)}`] }),
  });
  check(r.ok, `anvil_mine: ${r.status}`);
}

/** A page of another origin (another port on this machine) that tries to move the tokens. */
function foreignServer() {
  const page = `<!doctype html><title>foreign</title><script>
    const api = ${JSON.stringify(cfg.url)};
    const results = [];
    const open = JSON.stringify({ partner_address: ${JSON.stringify(cfg.node3)}, token_address: ${JSON.stringify(cfg.token)}, balance: 5 });
    const pay = JSON.stringify({ amount: 7, is_direct: true });
    (async () => {
      for (const [method, path, body, mode, type] of [
        ['PUT', '/api/1/channels', open, 'cors', 'application/json'],
        ['PUT', '/api/1/channels', open, 'no-cors', 'text/plain'],
        ['POST', '/api/1/transfers/${cfg.token}/${cfg.node2}', pay, 'cors', 'application/json'],
        ['POST', '/api/1/transfers/${cfg.token}/${cfg.node2}', pay, 'no-cors', 'text/plain'],
        // Requests a browser sends without asking (no preflight): only the node's guard stops them.
        ['GET', '/api/1/switch/true', undefined, 'no-cors', 'text/plain'],
        ['POST', '/api/1/stop', '', 'no-cors', 'text/plain'],
      ]) {
        try {
          const r = await fetch(api + path, { method, mode, body, headers: { 'Content-Type': type } });
          results.push(method + ' ' + mode + ' ' + r.type + ' ' + r.status);
        } catch (e) {
          results.push(method + ' ' + mode + ' refused: ' + e.message);
        }
      }
      document.body.textContent = results.join('\\n');
      document.title = 'done';
    })();
  </script>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const card = (addr) => `.channel[data-partner="${addr}"]`;

async function main() {
  // The QR encoder against a matrix made by another encoder (python-qrcode 8.0, mask 3).
  const fixture = JSON.parse(await (await import('node:fs/promises')).readFile(new URL('./qr-fixture.json', import.meta.url)));
  const mine3 = qrMatrix(fixture.text, fixture.mask).map((r) => r.map((b) => (b ? 1 : 0)).join(''));
  check(JSON.stringify(mine3) === JSON.stringify(fixture.modules), 'the QR matrix equals the reference encoder\'s');

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    page.on('dialog', (d) => d.accept());
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    const shot = async (name) => {
      await page.screenshot({ path: `${cfg.shots}/${name}.png`, fullPage: true });
      log(`screenshot ${name}`);
    };

    await page.goto(`${cfg.url}/ui/`);
    await page.waitForSelector('#link-events.ok', WAIT);
    await page.waitForSelector('#main:not([hidden])', WAIT);
    await page.waitForSelector(`#tokens code:text-is("${cfg.token}")`, WAIT);
    await page.evaluate(() => { window.__sameDocument = true; });
    await shot('1-overview');

    log('open a channel with node 2 from the page');
    await page.click('#open-details summary');
    await page.selectOption('#open-token', cfg.token);
    await page.fill('#open-partner', cfg.node2);
    await page.fill('#open-deposit', '100');
    await page.fill('#open-settle', String(cfg.settleTimeout));
    await page.click('#open-submit');
    await page.waitForSelector(`${card(cfg.node2)}[data-state="opened"] .balance[data-value="100"]`, WAIT);

    log('deposit 50 more');
    await page.fill(`${card(cfg.node2)} .deposit-amount`, '50');
    await page.click(`${card(cfg.node2)} button.deposit`);
    await page.waitForSelector(`${card(cfg.node2)} .balance[data-value="150"]`, WAIT);
    await shot('2-channel-opened');

    log('a page of another origin tries to open a channel and to pay');
    const foreign = await foreignServer();
    const other = await browser.newPage();
    await other.goto(`http://127.0.0.1:${foreign.address().port}/`);
    await other.waitForFunction(() => document.title === 'done', null, WAIT);
    log(`  its requests: ${(await other.textContent('body')).replace(/\n/g, '; ')}`);
    await other.close();
    foreign.close();
    const channels = await rest('channels');
    check(channels.length === 1, `the foreign page opened no channel: ${JSON.stringify(channels)}`);
    check(String(channels[0].balance) === '150', `the foreign page paid nothing: ${JSON.stringify(channels[0])}`);
    check((await rest('querysenttransfer')).length === 0, 'the foreign page sent no transfer');
    const status = await rest('status');
    check(status.no_internet === false, 'the foreign page did not switch the node to no-internet mode');

    log('pay node 3 through node 2: preview the route and fee, then confirm');
    await page.selectOption('#pay-token', cfg.token);
    await page.fill('#pay-target', cfg.node3);
    await page.fill('#pay-amount', '30');
    await page.click('#pay-preview');
    await page.waitForSelector('#pay-quote:not([hidden])', WAIT);
    check(await page.locator('#quote-path .hop').count() === 3, 'the route is us → node 2 → node 3');
    check((await page.textContent('#quote-fee')) === String(cfg.fee), `the fee shown is node 2's fee (${await page.textContent('#quote-fee')})`);
    check((await page.textContent('#quote-total')) === String(30 + cfg.fee), 'the total is amount + fee');
    await shot('3-fee-preview');
    await page.evaluate(() => {
      window.__statuses = [];
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) if (n.dataset && n.dataset.status) window.__statuses.push(n.dataset.status);
      }).observe(document.querySelector('#payments tbody'), { childList: true });
    });
    await page.click('#pay-confirm');
    await page.waitForSelector('#payments tr[data-direction="sent"][data-status="success"]', WAIT);
    const seen = await page.evaluate(() => window.__statuses);
    check(seen.indexOf('pending') >= 0 && seen.indexOf('pending') < seen.lastIndexOf('success'), `the payment showed pending, then success (${seen})`);
    await page.waitForSelector(`${card(cfg.node2)} .balance[data-value="${150 - 30 - cfg.fee}"]`, WAIT);
    check(await page.evaluate(() => window.__sameDocument === true), 'no reload: the success and the balance came live');
    await shot('4-payment-succeeded');

    log('a payment node 2 cannot forward fails, with its reason');
    await page.fill('#pay-amount', '50');
    await page.click('#pay-preview');
    await page.waitForSelector('#pay-quote:not([hidden])', WAIT);
    await page.click('#pay-confirm');
    const failed = page.locator('#payments tr[data-direction="sent"][data-status="failed"]');
    await failed.waitFor(WAIT);
    const reason = await failed.locator('.reason').textContent();
    check(reason.length > 0, 'the failed payment shows its reason');
    log(`  reason shown: ${reason}`);
    await page.waitForSelector('.note.error:has-text("failed")', WAIT);
    check(await page.locator('#payments tr[data-status="success"]').count() === 1, 'the first payment still shows success');
    await shot('5-payment-failed');

    log('close the channel: the settle countdown runs with the blocks');
    await page.click(`${card(cfg.node2)} button.close`);
    const countdown = page.locator(`${card(cfg.node2)}[data-state="closed"] .countdown[data-blocks-left]`);
    await countdown.waitFor(WAIT);
    const left = Number(await countdown.getAttribute('data-blocks-left'));
    check(left > cfg.settleTimeout - 5, `the countdown starts near the settle window (${left} blocks)`);
    await shot('6-closed-countdown');
    await mine(10);
    await page.waitForFunction(([sel, before]) => {
      const e = document.querySelector(sel);
      return e && Number(e.dataset.blocksLeft) <= before - 10;
    }, [`${card(cfg.node2)} .countdown[data-blocks-left]`, left], WAIT);
    check(await page.locator('.note.error:has-text("failed")').count() >= 1, 'the failure notification stays until dismissed');
    // Two blocks short of the end (the partner's balance-proof update may add one meanwhile).
    const now = Number(await countdown.getAttribute('data-blocks-left'));
    await mine(now - 2);
    await page.waitForFunction((sel) => {
      const e = document.querySelector(sel);
      return e && Number(e.dataset.blocksLeft) <= 2;
    }, `${card(cfg.node2)} .countdown[data-blocks-left]`, WAIT);
    await shot('7-settle-window-ending');
    log('past the window the node settles the channel by itself');
    await mine(3);
    await page.waitForSelector(card(cfg.node2), { state: 'detached', ...WAIT });
    await page.waitForSelector('.note.info:has-text("settled on chain")', WAIT);
    await page.locator('.note.error .dismiss').first().click();
    log('a payment request to show a payer');
    await page.selectOption('#receive-token', cfg.token);
    await page.fill('#receive-amount', '12345678901234567890123');
    await page.click('#receive-form button');
    await page.waitForSelector('#receive-qr svg', WAIT);
    const request = await page.textContent('#receive-text');
    check(request.endsWith('amount=12345678901234567890123'), `the request carries the exact amount: ${request}`);
    await shot('8-settled-and-payment-request');
    // Pasted into a pay form, the request fills it exactly (here our own: the node refuses).
    await page.fill('#pay-request', request);
    await page.dispatchEvent('#pay-request', 'change');
    check((await page.inputValue('#pay-amount')) === '12345678901234567890123', 'the pasted amount is exact');
    check((await page.inputValue('#pay-target')).toLowerCase() === request.slice(12, 54).toLowerCase(), 'the pasted target');
    await page.click('#pay-preview');
    await page.waitForSelector('.note.error:has-text("cannot pay ourselves")', WAIT);
    check(await page.isHidden('#pay-quote'), 'no route shown for a refused payment');
    // The list built live from events is the one the node's history gives after a reload.
    const live = await page.$$eval('#payments tbody tr', (rows) => rows.map((r) => `${r.dataset.id} ${r.dataset.status} ${r.querySelector('.reason').textContent}`));
    await page.reload();
    await page.waitForSelector('#link-events.ok', WAIT);
    await page.waitForFunction((n) => document.querySelectorAll('#payments tbody tr').length === n, live.length, WAIT);
    const stored = await page.$$eval('#payments tbody tr', (rows) => rows.map((r) => `${r.dataset.id} ${r.dataset.status} ${r.querySelector('.reason').textContent}`));
    check(JSON.stringify([...live].sort()) === JSON.stringify([...stored].sort()), `live list ${JSON.stringify(live)} = stored ${JSON.stringify(stored)}`);
    log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
  }
}

/** A node started with --api-token-file: the page asks for the token, refuses a wrong one, works with it. */
async function login() {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${cfg.url}/ui/`);
    await page.waitForSelector('#login:not([hidden])', WAIT);
    check(await page.isHidden('#main'), 'nothing of the node shows before the token');
    await page.fill('#login-token', 'not the token');
    await page.click('#login-form button');
    await page.waitForSelector('.note.error:has-text("API token")', WAIT);
    check(await page.isHidden('#main'), 'a wrong token shows nothing');
    await page.fill('#login-token', cfg.apiToken);
    await page.click('#login-form button');
    await page.waitForSelector('#main:not([hidden])', WAIT);
    await page.waitForSelector(`#our-address:text-is("${cfg.address}")`, WAIT);
    await page.waitForSelector('#link-events.ok', WAIT);
    check(await page.locator('.note.error').count() === 0, 'the token notes went with the login');
    await page.screenshot({ path: `${cfg.shots}/9-logged-in-with-token.png`, fullPage: true });
    log('logged in with the API token; live updates on');
  } finally {
    await browser.close();
  }
}

(cfg.mode === 'login' ? login() : main()).catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
