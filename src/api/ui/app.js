// The desktop page: reads the node through the REST API (the source of truth) and follows
// `GET /api/1/events` to read again what changed, without reloading.

import { api, ApiFailure, followEvents, setToken } from './api.js';
import { formatAmount, readAmount } from './amount.js';
import { qrSvg } from './qr.js';

const $ = (id) => document.getElementById(id);
const view = { address: null, status: null, tokens: [], channels: [], details: new Map(), sent: [], received: [] };
/** Channels with an action running from this page: their buttons stay disabled meanwhile. */
const busy = new Set();

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const short = (a) => (a ? `${a.slice(0, 8)}…${a.slice(-4)}` : '–');

// ---- notifications: they stay until dismissed -------------------------------------------
let noteSeq = 0;
function notify(kind, text) {
  const id = `note-${++noteSeq}`;
  const box = el('div', { class: `note ${kind}`, id, role: kind === 'error' ? 'alert' : 'status', 'data-kind': kind },
    el('span', { class: 'text' }, text),
    el('button', { class: 'secondary dismiss', title: 'dismiss', onclick: () => box.remove() }, '×'));
  $('notifications').prepend(box);
  return box;
}

async function attempt(what, fn) {
  try {
    return await fn();
  } catch (e) {
    const note = notify('error', `${what} failed: ${e.message}`);
    // A missing token is shown by the login form; its note goes once the token works.
    if (e instanceof ApiFailure && e.status === 401) { showLogin(); note.dataset.auth = 'missing'; }
    return undefined;
  }
}

// ---- reading the node ---------------------------------------------------------------------
async function loadStatus() {
  view.status = await api('GET', 'status');
  const s = view.status;
  $('link-xmpp').textContent = `XMPP: ${s.xmpp_connected ? 'connected' : 'disconnected'}`;
  $('link-xmpp').className = s.xmpp_connected ? 'ok' : 'bad';
  const age = s.last_block_age_s === null || s.last_block_age_s === undefined ? 'never' : `${s.last_block_age_s} s ago`;
  $('link-chain').textContent = `chain: block ${s.block_number} (last word ${age})${s.chain_behind ? ` — behind: ${s.chain_behind}` : ''}`;
  $('link-chain').className = s.chain_behind ? 'warn' : 'ok';
  $('link-mode').textContent = s.no_internet ? `no-internet mode: ${s.no_internet_reason}` : 'online';
  $('link-mode').className = s.no_internet ? 'warn' : 'ok';
}

async function loadTokens() {
  view.tokens = await api('GET', 'tokens');
  $('tokens').replaceChildren(...view.tokens.map((t) => el('li', {}, el('code', {}, t))));
  for (const sel of document.querySelectorAll('.token-select')) {
    const keep = sel.value;
    sel.replaceChildren(...view.tokens.map((t) => el('option', { value: t }, t)));
    if (view.tokens.includes(keep)) sel.value = keep;
  }
}

async function loadChannels() {
  view.channels = await api('GET', 'channels');
  // Closed channels: the detail carries the node's block and when settling becomes possible.
  view.details.clear();
  await Promise.all(view.channels.filter((c) => c.state === 'closed').map(async (c) => {
    try { view.details.set(c.channel_identifier, await api('GET', `channels/${c.channel_identifier}`)); } catch (e) { /* shown without countdown */ }
  }));
  renderChannels();
}

async function loadPayments() {
  const [sent, received] = await Promise.all([api('GET', 'querysenttransfer'), api('GET', 'queryreceivedtransfer')]);
  view.sent = mergeRecords(sent, view.sent);
  view.received = mergeRecords(received, view.received);
  renderPayments();
}

const FINAL = new Set(['success', 'failed', 'canceled']);

/**
 * The records just read, merged with what events applied while the read was under way: a read
 * answered before a payment ended must not turn it back to pending (no event would come to
 * fix it), and a payment started after the read stays listed. A status never leaves a final one.
 */
function mergeRecords(fetched, local) {
  const seen = new Map(local.map((r) => [r.lock_secret_hash, r]));
  const out = fetched.map((r) => {
    const l = seen.get(r.lock_secret_hash);
    seen.delete(r.lock_secret_hash);
    return l && FINAL.has(l.status) && !FINAL.has(r.status) ? l : r;
  });
  return out.concat([...seen.values()]);
}

async function loadAll() {
  await attempt('reading the node', async () => {
    const a = await api('GET', 'address');
    view.address = a.our_address;
    $('our-address').textContent = view.address;
    $('login').hidden = true;
    for (const n of document.querySelectorAll('.note[data-auth]')) n.remove();
    $('main').hidden = false;
    await Promise.all([loadStatus(), loadTokens(), loadChannels(), loadPayments()]);
  });
}

// ---- channels -------------------------------------------------------------------------------
const GROUPS = [
  ['opened', 'Open'],
  ['pending', 'Waiting for the chain'],
  ['closed', 'Closed (settle window running)'],
];
const PENDING_TEXT = {
  withdrawing: 'withdraw waiting for the partner and the chain',
  cooperative_settling: 'cooperative settle waiting for the partner and the chain',
  closing: 'close sent to the chain',
  settling: 'settle sent to the chain',
};

function groupOf(state) {
  if (state === 'opened') return 'opened';
  if (state === 'closed') return 'closed';
  return 'pending';
}

function renderChannels() {
  const box = $('channels');
  // What the user is typing into a card survives the re-render an event causes.
  const typed = new Map();
  for (const input of box.querySelectorAll('.channel input')) {
    typed.set(`${input.closest('.channel').dataset.channel} ${input.className}`, input.value);
  }
  const focused = document.activeElement && box.contains(document.activeElement)
    ? `${document.activeElement.closest('.channel')?.dataset.channel} ${document.activeElement.className}` : null;
  box.replaceChildren();
  if (view.channels.length === 0) box.append(el('p', {}, 'No channels yet.'));
  for (const [key, title] of GROUPS) {
    const list = view.channels.filter((c) => groupOf(c.state) === key);
    if (list.length === 0) continue;
    box.append(el('h3', {}, `${title} (${list.length})`));
    for (const c of list) box.append(channelCard(c));
  }
  for (const input of box.querySelectorAll('.channel input')) {
    const key = `${input.closest('.channel').dataset.channel} ${input.className}`;
    if (typed.has(key)) input.value = typed.get(key);
    if (key === focused) input.focus();
  }
}

function channelCard(c) {
  const id = c.channel_identifier;
  const card = el('div', { class: 'channel', 'data-channel': id, 'data-state': c.state, 'data-partner': c.partner_address },
    el('div', {}, el('strong', {}, c.state), ' with ', el('code', {}, c.partner_address)),
    el('div', {}, 'token ', el('code', {}, short(c.token_address)), ` · settle timeout ${c.settle_timeout} blocks`),
    el('div', {},
      'ours ', el('strong', { class: 'balance', 'data-value': String(c.balance) }, formatAmount(c.balance)),
      ' (locked ', el('span', { class: 'locked' }, formatAmount(c.locked_amount)), ')',
      ' · partner ', el('strong', { class: 'partner-balance', 'data-value': String(c.partner_balance) }, formatAmount(c.partner_balance)),
      ' (locked ', formatAmount(c.partner_locked_amount), ')'));
  const actions = el('div', { class: 'actions' });
  const running = busy.has(id);
  if (c.state === 'opened') {
    const dep = el('input', { class: 'deposit-amount', placeholder: 'amount', inputmode: 'numeric' });
    const wd = el('input', { class: 'withdraw-amount', placeholder: 'amount', inputmode: 'numeric' });
    actions.append(
      dep, el('button', { class: 'deposit', disabled: running, onclick: () => channelAction(id, 'deposit', dep.value) }, 'Deposit'),
      wd, el('button', { class: 'withdraw', disabled: running, onclick: () => channelAction(id, 'withdraw', wd.value) }, 'Withdraw'),
      el('button', { class: 'secondary coop-settle', disabled: running, onclick: () => channelAction(id, 'cooperative settle') }, 'Settle with partner'),
      el('button', { class: 'danger close', disabled: running, onclick: () => channelAction(id, 'close') }, 'Close'));
  } else if (c.state === 'closed') {
    const d = view.details.get(id);
    if (d && d.settle_after_block !== undefined) {
      const left = d.settle_after_block - view.blockNow(d.block_number) + 1;
      if (left > 0) {
        actions.append(el('span', { class: 'countdown', 'data-blocks-left': left },
          `settle possible in ${left} block${left === 1 ? '' : 's'} (after block ${d.settle_after_block}; the partner may still submit proofs until block ${d.settle_block_number})`));
      } else {
        // The node settles by itself once the window has passed; the button is for one that
        // does not (or has not yet).
        actions.append(el('button', { class: 'settle', disabled: running, onclick: () => channelAction(id, 'settle') }, 'Settle'));
      }
    } else {
      actions.append(el('span', { class: 'countdown' }, 'settle window: reading…'));
    }
  } else {
    actions.append(el('span', { class: 'pending' }, PENDING_TEXT[c.state] || c.state));
  }
  if (running) actions.append(el('span', { class: 'pending' }, ' waiting for the chain…'));
  card.append(actions);
  return card;
}

view.blockNow = (fallback) => (view.status ? Math.max(view.status.block_number, fallback) : fallback);

async function channelAction(id, what, amountText) {
  let method = 'PATCH', path = `channels/${id}`, body;
  if (what === 'deposit' || what === 'withdraw') {
    const amount = readAmount(amountText);
    if (amount === null || amount === 0n) { notify('error', `${what}: give a positive whole amount`); return; }
    if (what === 'deposit') body = { balance: amount };
    else { method = 'PUT'; path = `withdraw/${id}`; body = { amount }; }
  } else if (what === 'close') {
    if (!confirm('Close this channel on chain? The partner has the settle window to answer.')) return;
    body = { state: 'closed', force: true };
  } else if (what === 'cooperative settle') body = { state: 'closed' };
  else if (what === 'settle') body = { state: 'settled' };
  busy.add(id);
  renderChannels();
  const pending = notify('info', `${what}: sent, waiting for the chain…`);
  const done = await attempt(what, () => api(method, path, body));
  pending.remove();
  busy.delete(id);
  if (done) {
    notify('success', `${what} done on channel ${short(id)}`);
    for (const input of document.querySelectorAll(`.channel[data-channel="${id}"] input`)) input.value = '';
  }
  await attempt('reading channels', loadChannels);
}

// ---- open a channel ---------------------------------------------------------------------------
async function openChannel(ev) {
  ev.preventDefault();
  const deposit = readAmount($('open-deposit').value);
  const settle = Number($('open-settle').value || '0');
  if (deposit === null) { notify('error', 'open: the deposit must be a whole amount'); return; }
  $('open-submit').disabled = true;
  const pending = notify('info', 'open: transaction sent, waiting for the chain…');
  const c = await attempt('opening the channel', () => api('PUT', 'channels', {
    partner_address: $('open-partner').value.trim(),
    token_address: $('open-token').value,
    balance: deposit,
    settle_timeout: settle,
  }));
  pending.remove();
  $('open-submit').disabled = false;
  if (c) notify('success', `channel opened with ${short(c.partner_address)}, deposit ${formatAmount(c.balance)}`);
  await attempt('reading channels', loadChannels);
}

// ---- pay: preview first, then confirm the very same request -------------------------------------
let quote = null;

function payRequestFromForm() {
  const amount = readAmount($('pay-amount').value);
  if (amount === null || amount === 0n) throw new Error('give a positive whole amount');
  const maxFeeText = $('pay-maxfee').value.trim();
  const maxFee = maxFeeText === '' ? null : readAmount(maxFeeText);
  if (maxFeeText !== '' && maxFee === null) throw new Error('the most fee must be a whole amount');
  return { token: $('pay-token').value, target: $('pay-target').value.trim(), amount, maxFee, direct: $('pay-direct').checked };
}

async function preview(ev) {
  ev.preventDefault();
  hideQuote();
  let req;
  try { req = payRequestFromForm(); } catch (e) { notify('error', `pay: ${e.message}`); return; }
  let q = `amount=${req.amount}`;
  if (req.maxFee !== null) q += `&fee=${req.maxFee}`;
  if (req.direct) q += '&is_direct=true';
  const p = await attempt('finding a route', () => api('GET', `paths/${req.token}/${req.target}?${q}`));
  if (!p) return;
  quote = { req, p };
  $('quote-path').replaceChildren(...['us', ...p.path].map((a, i) => el('span', { class: 'hop' }, i ? ' → ' : '', i ? el('code', {}, short(a)) : 'us')));
  $('quote-amount').textContent = formatAmount(p.amount);
  $('quote-fee').textContent = formatAmount(p.fee);
  $('quote-total').textContent = formatAmount(p.total);
  $('pay-quote').hidden = false;
}

function hideQuote() {
  quote = null;
  $('pay-quote').hidden = true;
}

async function confirmPay() {
  if (!quote) return;
  const { req, p } = quote;
  hideQuote();
  const body = { amount: req.amount, is_direct: req.direct };
  // The fee shown is the most the payment may take.
  body.fee = p.fee;
  const t = await attempt('paying', () => api('POST', `transfers/${req.token}/${req.target}`, body));
  if (t) notify('info', `payment of ${formatAmount(req.amount)} to ${short(req.target)} sent; it shows as pending until the payee holds it`);
  await attempt('reading payments', loadPayments);
}

/** `smartraiden:<target>?token=<token>&amount=<n>` into the pay form. */
function readPaymentRequest() {
  const m = /^smartraiden:(0x[0-9a-fA-F]{40})\?(.*)$/.exec($('pay-request').value.trim());
  if (!m) return;
  const q = new URLSearchParams(m[2]);
  $('pay-target').value = m[1];
  if (q.get('token') && view.tokens.some((t) => t.toLowerCase() === q.get('token').toLowerCase())) {
    $('pay-token').value = view.tokens.find((t) => t.toLowerCase() === q.get('token').toLowerCase());
  }
  if (q.get('amount')) $('pay-amount').value = q.get('amount');
  hideQuote();
}

// ---- payments --------------------------------------------------------------------------------
function renderPayments() {
  const rows = [...view.sent, ...view.received].sort((a, b) => (b.created_ms || 0) - (a.created_ms || 0));
  $('payments').tBodies[0].replaceChildren(...rows.map((r) => el('tr', { 'data-id': r.lock_secret_hash, 'data-status': r.status, 'data-direction': r.direction },
    el('td', {}, r.created_ms ? new Date(r.created_ms).toLocaleTimeString() : ''),
    el('td', {}, r.direction),
    el('td', {}, el('code', {}, short(r.partner_address))),
    el('td', { class: 'num' }, formatAmount(r.amount)),
    el('td', { class: 'num' }, formatAmount(r.fee)),
    el('td', { class: `status status-${r.status}` }, r.status),
    el('td', { class: 'reason' }, r.reason || ''))));
}

/**
 * Applies a transfer event to the lists as the node's history applies it to its records
 * (`storage::history::records_from`), so a long history is read once, not on every event;
 * the lists are read again on every (re)connection and `resync`.
 */
function applyTransferEvent(name, d) {
  const now = Date.now();
  const upsert = (list, record) => {
    const i = list.findIndex((r) => r.lock_secret_hash === record.lock_secret_hash);
    if (i >= 0) list[i] = record; else list.push(record);
  };
  if (name === 'transfer_started') {
    upsert(view.sent, {
      lock_secret_hash: d.lock_secret_hash, direction: 'sent', token_address: d.token_address,
      partner_address: d.target_address, amount: d.amount, fee: d.fee, status: 'pending',
      reason: null, created_ms: now, updated_ms: now,
    });
  } else if (name === 'payment_received') {
    upsert(view.received, {
      lock_secret_hash: d.lock_secret_hash, direction: 'received', token_address: d.token_address,
      partner_address: d.initiator_address, amount: d.amount, fee: 0n, status: 'success',
      reason: null, created_ms: now, updated_ms: now,
    });
  } else {
    const r = view.sent.find((x) => x.lock_secret_hash === d.lock_secret_hash);
    if (!r) { soon('payments'); return; }
    r.status = { transfer_succeeded: 'success', transfer_failed: 'failed', transfer_canceled: 'canceled' }[name];
    if (d.fee !== undefined) r.fee = d.fee;
    if (d.reason) r.reason = d.reason;
    r.updated_ms = now;
  }
  renderPayments();
}

// ---- receive: a payment request to show the payer ---------------------------------------------
function showRequest(ev) {
  ev.preventDefault();
  const amount = readAmount($('receive-amount').value);
  if (amount === null || amount === 0n) { notify('error', 'receive: give a positive whole amount'); return; }
  const text = `smartraiden:${view.address}?token=${$('receive-token').value}&amount=${amount}`;
  $('receive-text').textContent = text;
  $('receive-qr').replaceChildren(qrSvg(text, 4));
  $('receive-out').hidden = false;
}

// ---- live updates ----------------------------------------------------------------------------
let reload = null;
function soon(...what) {
  reload = reload || new Set();
  what.forEach((w) => reload.add(w));
  setTimeout(async () => {
    const todo = reload;
    reload = null;
    if (!todo) return;
    const jobs = [];
    if (todo.has('channels')) jobs.push(loadChannels());
    if (todo.has('payments')) jobs.push(loadPayments());
    if (todo.has('status')) jobs.push(loadStatus());
    if (todo.has('tokens')) jobs.push(loadTokens());
    await attempt('reading the node', () => Promise.all(jobs));
  }, 50);
}

function onEvent(name, d) {
  switch (name) {
    case 'ready':
    case 'resync':
      loadAll();
      break;
    case 'block':
      soon('status', ...(view.channels.some((c) => c.state !== 'opened') ? ['channels'] : []));
      break;
    case 'transfer_started':
      applyTransferEvent(name, d);
      soon('channels');
      break;
    case 'transfer_succeeded':
      notify('success', `payment ${short(d.lock_secret_hash)} succeeded (fee ${formatAmount(d.fee)})`);
      applyTransferEvent(name, d);
      soon('channels');
      break;
    case 'transfer_failed':
      notify('error', `payment ${short(d.lock_secret_hash)} failed: ${d.reason}`);
      applyTransferEvent(name, d);
      soon('channels');
      break;
    case 'transfer_canceled':
      notify('error', `payment ${short(d.lock_secret_hash)} canceled`);
      applyTransferEvent(name, d);
      soon('channels');
      break;
    case 'payment_received':
      notify('success', `received ${formatAmount(d.amount)} from ${short(d.initiator_address)}`);
      applyTransferEvent(name, d);
      soon('channels');
      break;
    case 'mediation_completed':
      soon('channels');
      break;
    case 'channel_changed':
      if (['opened', 'closed', 'settled', 'punished', 'withdraw'].includes(d.what)) {
        notify('info', `channel ${short(d.channel_identifier)}: ${d.what} on chain`);
      }
      soon('channels', 'tokens');
      break;
    case 'transaction_failed':
      notify('error', `transaction ${d.call} failed: ${d.reason}`);
      soon('channels');
      break;
    case 'channel_request_refused':
      notify('error', `channel ${short(d.channel_identifier)}: ${d.reason}`);
      soon('channels');
      break;
    default:
      break;
  }
}

function onStream(connected) {
  $('link-events').textContent = connected ? 'live updates: on' : 'live updates: reconnecting';
  $('link-events').className = connected ? 'ok' : 'bad';
}

// ---- login (with --api-token-file) -------------------------------------------------------------
function showLogin() {
  $('login').hidden = false;
  $('main').hidden = true;
}

function start() {
  // A token may come in the fragment (#token=…), which is never sent to any server.
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get('token')) { setToken(frag.get('token')); history.replaceState(null, '', location.pathname); }
  $('login-form').addEventListener('submit', (ev) => { ev.preventDefault(); setToken($('login-token').value.trim()); loadAll(); });
  $('open-form').addEventListener('submit', openChannel);
  $('pay-form').addEventListener('submit', preview);
  $('pay-form').addEventListener('input', hideQuote);
  $('pay-request').addEventListener('change', readPaymentRequest);
  $('pay-confirm').addEventListener('click', confirmPay);
  $('pay-cancel').addEventListener('click', hideQuote);
  $('receive-form').addEventListener('submit', showRequest);
  // Read the node at once: with a token and none given, this is what shows the login.
  loadAll();
  followEvents(onEvent, onStream);
}

start();
