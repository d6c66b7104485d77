// The fleet at a glance: proxies by role, users, load against capacity, money, queue, mirror;
// the proxies blocked somewhere (docs/BLOCKING.md); charts of fleet load (30 s slots, the last
// hour) and sign-ups per day (two weeks).

import { get } from '../api.js';
import { h, replace, number, svg, table, date } from '../ui.js';

export const title = 'Dashboard';

function card(label, value, detail, id) {
  return h('div', { class: 'card', id }, h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value), detail ? h('div', { class: 'detail' }, detail) : null);
}

function money(revenue) {
  const entries = Object.entries(revenue);
  if (!entries.length) return '0';
  return entries.map(([currency, amount]) => `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`).join(' · ');
}

function chart(points, { width = 560, height = 140, bars = false, label }) {
  const box = h('figure', { class: 'chart' }, h('figcaption', {}, label));
  if (!points.length) {
    box.append(h('p', { class: 'empty' }, 'No data yet.'));
    return box;
  }
  const max = Math.max(1, ...points.map(([, v]) => v));
  const step = width / Math.max(1, points.length - (bars ? 0 : 1));
  const y = (v) => height - 16 - (v / max) * (height - 28);
  const shapes = bars
    ? points.map(([, v], i) => svg('rect', { x: (i * step + 1).toFixed(1), y: y(v).toFixed(1), width: Math.max(1, step - 2).toFixed(1), height: (height - 16 - y(v)).toFixed(1) }))
    : [svg('polyline', { points: points.map(([, v], i) => `${(i * step).toFixed(1)},${y(v).toFixed(1)}`).join(' '), fill: 'none' })];
  box.append(svg('svg', { viewBox: `0 0 ${width} ${height}`, class: bars ? 'bars' : 'line' },
    svg('text', { x: 2, y: 10 }, document.createTextNode(number(max))), ...shapes));
  return box;
}

export async function render(main) {
  const warnings = h('ul', { class: 'warnings', id: 'warnings' });
  const cards = h('div', { class: 'cards', id: 'summary' });
  const charts = h('div', { class: 'charts' });
  const blocked = h('div', { id: 'blocked-list' });
  replace(main, h('h1', {}, title), warnings, cards, h('h2', {}, 'Blocked'), blocked, charts);

  const draw = async () => {
    const s = await get('/api/v1/admin/summary');
    const roles = Object.entries(s.proxies).map(([role, c]) => `${role} ${number(c.proxies)}`).join(' · ');
    const full = s.capacity ? Math.round((s.clients / s.capacity) * 100) : 0;
    const lag = s.mirror.enabled ? `${number(s.mirror.changes_behind)} behind · ${s.mirror.state}` : 'off';
    replace(warnings, ...s.warnings.map((text) => h('li', {}, text)));
    replace(cards,
      card('Proxies up', number(s.proxies_total), roles || 'none registered', 'card-proxies'),
      card('Proxies down (24 h)', number(s.proxies_down.expired + s.proxies_down.unregistered),
        `${number(s.proxies_down.expired)} went silent · ${number(s.proxies_down.unregistered)} unregistered`, 'card-down'),
      card('Users', number(s.users_total), `${number(s.users_pro)} pro · ${number(s.users_total - s.users_pro)} free · ${number(s.users_unplaced)} waiting for a proxy`, 'card-users'),
      card('Clients carried', `${number(s.clients)} / ${number(s.capacity)}`, `${full}% of capacity`, 'card-load'),
      card('Revenue this month', money(s.revenue_this_month), `${number(s.payments_this_month)} payments`, 'card-revenue'),
      card('Queue', number(s.queue.ready + s.queue.leased), `${number(s.queue.dead)} dead letters`, 'card-queue'),
      card('Storage', s.storage.storage_failed ? 'failed: restart' : s.storage.writes_refused ? 'full: writes refused' : 'ok',
        `${number(Math.floor(s.storage.free_bytes / 1048576))} MB free · writes refused under ${number(Math.floor(s.storage.min_free_bytes / 1048576))} MB`, 'card-storage'),
      card('Redis mirror', lag, s.mirror.last_error
        || (s.mirror.last_resync_reason ? `last full copy: ${s.mirror.last_resync_reason}` : ''), 'card-mirror'));
    const { verdicts } = await get('/api/v1/admin/blocking?state=blocked&limit=100');
    replace(blocked, table([
      ['Proxy', (v) => v.proxy], ['Country', (v) => v.country], ['Since', (v) => date(v.since)],
      ['Reporters', (v) => number(v.score.reporters)],
      ['Failing', (v) => `${Math.round(v.score.failure_share * 100)}%`],
    ], verdicts, 'No proxy is known to be blocked anywhere.'));
  };
  const drawCharts = async () => {
    const series = await get('/api/v1/admin/summary/series?days=14');
    replace(charts,
      chart(series.fleet_clients, { label: 'Clients reported by the fleet (last hour, 30 s slots)' }),
      chart(series.signups_per_day, { bars: true, label: 'Sign-ups per day (14 days)' }));
  };
  await Promise.all([draw(), drawCharts()]);
  let ticks = 0;
  return async () => {
    await draw();
    if (++ticks % 15 === 0) await drawCharts();
  };
}
