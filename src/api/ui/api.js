// The node's REST API and its event stream, as the page uses them. Every answer is parsed
// with exact amounts; every failure becomes an ApiFailure with the SPEC §6 error message.

import { parseExact } from './amount.js';

let token = sessionStorage.getItem('smartraiden-token') || null;

/** Remembers the API token for this browser tab (sent as a bearer token). */
export function setToken(t) {
  token = t || null;
  if (token) sessionStorage.setItem('smartraiden-token', token);
  else sessionStorage.removeItem('smartraiden-token');
}

/** A refused or failed request, with the node's own explanation. */
export class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

/** `method /api/1/path` with an optional JSON body (amounts given as strings). */
export async function api(method, path, body) {
  let r;
  try {
    r = await fetch(`/api/1/${path}`, {
      method,
      headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body, (k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    });
  } catch (e) {
    throw new ApiFailure(0, `the node does not answer (${e.message})`);
  }
  const text = await r.text();
  let value = null;
  try { value = text ? parseExact(text) : null; } catch (e) { value = null; }
  if (!r.ok) {
    const message = value && value.error_message ? value.error_message : `HTTP ${r.status} ${text.slice(0, 200)}`;
    throw new ApiFailure(r.status, message);
  }
  return value;
}

/**
 * Follows `GET /api/1/events` (read with fetch, so the bearer token travels in a header) and
 * calls `on(name, data)` per event; `onState(connected)` when the stream opens or drops. It
 * reconnects by itself; every (re)connection starts with a `ready` event.
 */
export function followEvents(on, onState) {
  let stopped = false;
  async function once() {
    const r = await fetch('/api/1/events', { headers: headers({ Accept: 'text/event-stream' }) });
    if (!r.ok || !r.body) throw new ApiFailure(r.status, `events: HTTP ${r.status}`);
    onState(true);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trimStart();
        }
        if (data) {
          let parsed = null;
          try { parsed = parseExact(data); } catch (e) { parsed = null; }
          on(name, parsed);
        }
      }
    }
  }
  (async () => {
    let delay = 500;
    while (!stopped) {
      try { await once(); delay = 500; } catch (e) { /* reconnect below */ }
      onState(false);
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();
  return () => { stopped = true; };
}
