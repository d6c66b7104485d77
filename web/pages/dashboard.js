// The fleet at a glance. On top, what needs the operator (the server's `attention` list: the
// store, proxies down, over capacity or blocked, dead letters, users without a proxy, the
// mirror, mail, unencrypted backups), each linked to the page to act on it. Then proxies by
// role, users, load against capacity, money, queue, storage, mirror; the proxies down and the
// proxies blocked somewhere (docs/BLOCKING.md); charts of fleet load (30 s slots, the last
// hour) and sign-ups per day (two weeks), on time axes.

import { get, getTagged } from '../api.js';
import { h, replace, number, table, date, agoTime, refreshAgo, timeChart } from '../ui.js';

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

export async function render(main) {
  const warnings = h('ul', { class: 'warnings', id: 'warnings' });
  const cards = h('div', { class: 'cards', id: 'summary' });
  const charts = h('div', { class: 'charts' });
  const blocked = h('div', { id: 'blocked-list' });
  const down = h('div', { id: 'down-list' });
  replace(main, h('h1', {}, title), warnings, cards, h('h2', {}, 'Proxies down'), down, h('h2', {}, 'Blocked'), blocked, charts);
  const proxyLink = (name) => h('a', { href: `#/proxies/${encodeURIComponent(name)}` }, name);
  let shown = null;
  // Whether `data` differs from what `box` shows (and remembers it).
  const drawn = new WeakMap();
  const once = (box, data) => {
    const signature = JSON.stringify(data);
    if (drawn.get(box) === signature) return false;
    drawn.set(box, signature);
    return true;
  };

  const draw = async () => {
    const { data: s, etag } = await getTagged('/api/v1/admin/summary');
    refreshAgo(down);
    if (etag && etag === shown) return;
    shown = etag;
    const roles = Object.entries(s.proxies).map(([role, c]) => `${role} ${number(c.proxies)}`).join(' · ');
    const full = s.capacity ? Math.round((s.clients / s.capacity) * 100) : 0;
    const lag = s.mirror.enabled ? `${number(s.mirror.changes_behind)} behind · ${s.mirror.state}` : 'off';
    // Each part is redrawn only when its own data changed (free disk space alone changes the
    // summary's ETag every few seconds), so a link is not replaced under the pointer.
    if (once(warnings, s.attention)) {
      replace(warnings, ...s.attention.map((a) => h('li', { class: `attention ${a.kind}` },
        a.link ? h('a', { href: a.link }, a.text) : a.text)));
    }
    if (once(down, s.proxies_down.proxies)) replace(down, table([
      ['Proxy', (p) => proxyLink(p.name)],
      ['How', (p) => (p.how === 'expired' ? 'went silent' : p.how)],
      ['When', (p) => [date(p.at), ' (', agoTime(p.at), ')']],
      ['Last address', (p) => `${p.ip}:${p.port}`],
    ], s.proxies_down.proxies, 'No proxy went down in the last 24 hours.'));
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
      card('Mail (since start)', s.mail.failing_in_a_row ? 'failing' : 'ok',
        `${number(s.mail.sent)} sent · ${number(s.mail.failed)} failed tries`, 'card-mail'),
      card('Redis mirror', lag, s.mirror.last_error
        || (s.mirror.last_resync_reason ? `last full copy: ${s.mirror.last_resync_reason}` : ''), 'card-mirror'));
    const { verdicts } = await get('/api/v1/admin/blocking?state=blocked&limit=100');
    if (once(blocked, verdicts)) replace(blocked, table([
      ['Proxy', (v) => proxyLink(v.proxy)], ['Country', (v) => v.country], ['Since', (v) => date(v.since)],
      ['Reporters', (v) => number(v.score.reporters)],
      ['Failing', (v) => `${Math.round(v.score.failure_share * 100)}%`],
    ], verdicts, 'No proxy is known to be blocked anywhere.'));
  };
  const drawCharts = async () => {
    const series = await get('/api/v1/admin/summary/series?days=14');
    replace(charts,
      timeChart(series.fleet_clients, { label: 'Clients reported by the fleet (last hour, 30 s slots)' }),
      timeChart(series.signups_per_day, { bars: true, label: 'Sign-ups per day (14 days)' }));
  };
  await Promise.all([draw(), drawCharts()]);
  let ticks = 0;
  return async () => {
    await draw();
    if (++ticks % 15 === 0) await drawCharts();
  };
}
