// Small DOM helpers. Text always goes in as text nodes, never as HTML, so nothing the server
// stores (emails, proxy names) can inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  for (const child of children.flat(Infinity)) if (child) el.append(child);
  return el;
}

export function replace(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

export const fmt = new Intl.NumberFormat('en');
export const number = (n) => (n === undefined || n === null ? '–' : fmt.format(n));

export function ago(unixSeconds) {
  if (!unixSeconds) return '–';
  const secs = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  if (secs < 60) return `${secs} s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
  return `${Math.floor(secs / 86400)} d ago`;
}

export const date = (unixSeconds) => (unixSeconds ? new Date(unixSeconds * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : '–');
export const dateMs = (ms) => (ms ? date(ms / 1000) : '–');

/// A table from rows; `columns` are [heading, row => cell content].
export function table(columns, rows, empty = 'Nothing here.') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  // In its own scrolling box: a wide table scrolls there, not the whole page (narrow screens).
  return h('div', { class: 'table-scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map(([title]) => h('th', {}, title)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row))))))));
}

/// clients / capacity as a bar, coloured by fullness.
export function fullness(clients, capacity) {
  const ratio = capacity ? Math.min(1, (clients || 0) / capacity) : 0;
  const level = ratio > 0.9 ? 'hot' : ratio > 0.7 ? 'warm' : 'ok';
  const fill = h('span', { class: `fill ${level}` });
  // CSSOM, not a style attribute: the page's CSP allows no inline style.
  fill.style.width = `${Math.round(ratio * 100)}%`;
  return h('span', { class: 'bar', title: `${clients ?? 0} of ${capacity ?? '?'} clients` },
    fill, h('span', { class: 'label' }, `${clients ?? 0} / ${capacity ?? '?'}`));
}

/// A sparkline of values (oldest first).
export function sparkline(values, width = 120, height = 24) {
  if (!values.length) return h('span', { class: 'muted' }, '–');
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / max) * (height - 2) - 1).toFixed(1)}`).join(' ');
  return svg('svg', { class: 'spark', width, height, viewBox: `0 0 ${width} ${height}` },
    svg('polyline', { points, fill: 'none', 'stroke-width': '1.5' }));
}

/// Asks before an action; returns what `act` returned, or null when cancelled.
export async function confirmThen(question, act) {
  if (!window.confirm(question)) return null;
  return act();
}

export function notice(text, kind = 'ok') {
  const area = document.getElementById('notices');
  if (!area) return;
  const el = h('div', { class: `notice ${kind}`, role: 'status' }, text);
  area.append(el);
  setTimeout(() => el.remove(), 6000);
}

/// Previous / next links for cursor pages.
export function pager({ onPrev, onNext, hasPrev, hasNext }) {
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: !hasPrev, onclick: onPrev }, '← Newer'),
    h('button', { type: 'button', disabled: !hasNext, onclick: onNext }, 'Older →'));
}
