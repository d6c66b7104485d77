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

/// `ago` that a live page keeps true between redraws (`refreshAgo`).
export const agoTime = (unixSeconds) => h('time', { class: 'ago', 'data-at': unixSeconds || '' }, ago(unixSeconds));
export function refreshAgo(root) {
  for (const el of root.querySelectorAll('time.ago')) el.textContent = ago(Number(el.dataset.at));
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

/// A table that a live page updates in place: `update(rows)` keeps one row per `key`, adds and
/// removes rows, and replaces only the cells whose content changed, so a heartbeat redraws its
/// time and load but a button under the pointer stays the same button. (A cell whose markup is
/// the same does the same: its buttons are built from the same row fields.)
export function liveTable(columns, key, empty = 'Nothing here.') {
  const body = h('tbody');
  const tableBox = h('div', { class: 'table-scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map(([title]) => h('th', {}, title)))), body));
  const none = h('p', { class: 'empty' }, empty);
  const box = h('div', { class: 'live-table' });
  const drawn = new Map(); // key -> <tr>
  const update = (rows, emptyText = empty) => {
    none.textContent = emptyText;
    const wanted = new Set();
    let previous = null;
    for (const row of rows) {
      const id = String(key(row));
      wanted.add(id);
      let tr = drawn.get(id);
      const cells = columns.map(([, cell]) => h('td', {}, cell(row)));
      if (!tr) {
        tr = h('tr', { 'data-key': id }, cells);
        drawn.set(id, tr);
      } else {
        cells.forEach((td, i) => {
          const old = tr.children[i];
          if (old.innerHTML !== td.innerHTML) old.replaceWith(td);
        });
      }
      // In the order of `rows`: a row moves only when it is out of place.
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (expected !== tr) body.insertBefore(tr, expected);
      previous = tr;
    }
    for (const [id, tr] of drawn) {
      if (!wanted.has(id)) {
        tr.remove();
        drawn.delete(id);
      }
    }
    const showing = rows.length ? tableBox : none;
    if (box.firstChild !== showing) box.replaceChildren(showing);
  };
  return { element: box, update };
}

const hhmm = (unixSeconds) => new Date(unixSeconds * 1000).toISOString().slice(11, 16);
const dayMonth = (unixSeconds) => new Date(unixSeconds * 1000).toISOString().slice(5, 10);

/// A chart over time: `points` are [unix seconds, value] oldest first. The x axis is time
/// (ticks in UTC), the y axis runs from 0 to the largest value; one point is drawn as a dot.
/// `bars` draws one bar a point, evenly spaced (days); `format` writes the y labels.
export function timeChart(points, { label, bars = false, format = number, width = 560, height = 160 }) {
  const box = h('figure', { class: 'chart' }, h('figcaption', {}, label));
  if (!points.length) {
    box.append(h('p', { class: 'empty' }, 'No data yet.'));
    return box;
  }
  const left = 44; const bottom = 18; const top = 8; const right = 8;
  const plotW = width - left - right; const plotH = height - top - bottom;
  const n = points.length;
  const t0 = points[0][0]; const span = Math.max(1, points[n - 1][0] - t0);
  const slot = plotW / n;
  // Where point i is drawn: its slot's middle for bars, its time for a line.
  const x = (i) => left + (bars ? (i + 0.5) * slot : n === 1 ? plotW / 2 : ((points[i][0] - t0) / span) * plotW);
  const max = Math.max(0, ...points.map(([, v]) => v || 0)) || 1;
  const y = (v) => top + plotH - ((v || 0) / max) * plotH;
  const shapes = bars
    ? points.map(([t, v], i) => svg('rect', { x: (x(i) - slot / 2 + 1).toFixed(1), y: y(v).toFixed(1),
      width: Math.max(1, slot - 2).toFixed(1), height: (top + plotH - y(v)).toFixed(1) },
    svg('title', {}, document.createTextNode(`${dayMonth(t)}: ${format(v)}`))))
    : n === 1
      ? [svg('circle', { cx: x(0).toFixed(1), cy: y(points[0][1]).toFixed(1), r: 3, class: 'point' })]
      : [svg('polyline', { points: points.map(([, v], i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '), fill: 'none' })];
  // Axes: 0 and the largest value on the left; the first, last and two middle points' times.
  const axes = [
    svg('line', { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, class: 'axis' }),
    svg('line', { x1: left, y1: top, x2: left, y2: top + plotH, class: 'axis' }),
    svg('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' }, document.createTextNode(format(max))),
    svg('text', { x: left - 4, y: top + plotH, 'text-anchor': 'end' }, document.createTextNode(format(0))),
  ];
  const when = bars || span > 2 * 86400 ? dayMonth : hhmm;
  const ticks = [...new Set([0, Math.round((n - 1) / 3), Math.round((2 * (n - 1)) / 3), n - 1])];
  ticks.forEach((i) => {
    const anchor = n === 1 || bars ? 'middle' : i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
    axes.push(svg('line', { x1: x(i).toFixed(1), y1: top + plotH, x2: x(i).toFixed(1), y2: top + plotH + 3, class: 'axis' }));
    axes.push(svg('text', { x: x(i).toFixed(1), y: height - 4, 'text-anchor': anchor }, document.createTextNode(when(points[i][0]))));
  });
  box.append(svg('svg', { viewBox: `0 0 ${width} ${height}`, class: bars ? 'bars' : 'line', role: 'img', 'aria-label': label },
    ...axes, ...shapes), h('p', { class: 'axis-note' }, 'times in UTC'));
  return box;
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

/// A message in the band above the page. The band sits in the page's flow (it pushes the page
/// down rather than covering it) and lets clicks through, so no control is ever hidden under it.
export function notice(text, kind = 'ok') {
  const area = document.getElementById('notices');
  if (!area) return;
  const el = h('div', { class: `notice ${kind}`, role: 'status' }, text);
  area.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 12000 : 6000);
}

/// Previous / next links for cursor pages.
export function pager({ onPrev, onNext, hasPrev, hasNext }) {
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: !hasPrev, onclick: onPrev }, '← Newer'),
    h('button', { type: 'button', disabled: !hasNext, onclick: onNext }, 'Older →'));
}
