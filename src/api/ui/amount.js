// Token amounts as exact integers (BigInt) end to end: the API writes them as JSON integers
// (or decimal strings beyond u128), which JSON.parse would round above 2^53; the API reads
// decimal strings, so the page always sends strings.

/** Fields that carry token amounts in the API's JSON. */
const AMOUNT_KEYS = new Set([
  'balance', 'partner_balance', 'locked_amount', 'partner_locked_amount',
  'amount', 'fee', 'total',
]);

function toBig(value, source) {
  if (typeof value === 'string' && /^[0-9]+$/.test(value)) return BigInt(value);
  if (typeof value === 'number') {
    if (source !== undefined && /^[0-9]+$/.test(source)) return BigInt(source);
    // Without the source text (older browsers) a number beyond 2^53 was already rounded by
    // JSON.parse; parseExact below quotes long integers before parsing so this stays exact.
    return BigInt(Math.trunc(value));
  }
  return value;
}

/** Whether JSON.parse hands revivers the source text (exact without the fallback). */
const HAS_SOURCE = (() => {
  try {
    let seen = false;
    JSON.parse('1', (k, v, ctx) => { seen = ctx !== undefined && ctx.source === '1'; return v; });
    return seen;
  } catch (e) { return false; }
})();

/** Parses API JSON, turning every amount field into a BigInt without rounding. */
export function parseExact(text) {
  if (!HAS_SOURCE) {
    // Quote integers too long for a double, outside strings.
    let out = '', inString = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        out += c;
        if (c === '\\') { out += text[++i] ?? ''; } else if (c === '"') { inString = false; }
        continue;
      }
      if (c === '"') { inString = true; out += c; continue; }
      if (c >= '0' && c <= '9') {
        let j = i;
        while (j < text.length && /[0-9.eE+-]/.test(text[j])) j++;
        const num = text.slice(i, j);
        out += (/^[0-9]{16,}$/.test(num)) ? `"${num}"` : num;
        i = j - 1;
        continue;
      }
      out += c;
    }
    text = out;
  }
  return JSON.parse(text, function (key, value, ctx) {
    if (AMOUNT_KEYS.has(key)) return toBig(value, ctx && ctx.source);
    return value;
  });
}

/** Reads a user's amount: digits only, as a BigInt; null when it is not one. */
export function readAmount(text) {
  const t = String(text).trim().replace(/[_\s]/g, '');
  if (!/^[0-9]+$/.test(t)) return null;
  return BigInt(t);
}

/** An amount for people: exact, grouped by thousands. */
export function formatAmount(a) {
  if (a === undefined || a === null) return '–';
  const s = BigInt(a).toString();
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
