// Every proxy, a page at a time, filtered on the server: status, role, location, how clients
// connect, clients against capacity, users assigned, heartbeat age, recent load, and the
// actions (web/proxy_actions.js). Each name opens the proxy's own page. The live refresh asks
// with the page's ETag and draws nothing while the answer is the same; when it changed, only
// the rows and cells that changed are redrawn.

import { getTagged, query } from '../api.js';
import { h, replace, liveTable, fullness, sparkline, agoTime, refreshAgo, number } from '../ui.js';
import { actionButtons } from '../proxy_actions.js';

export const title = 'Proxies';
const PAGE = 50;

const transport = (p) => [p.protocol, p.sni && `sni ${p.sni}`, p.front && `front ${p.front}`, p.cert_sha256 && 'pinned cert']
  .filter(Boolean).join(' · ') || '–';

export async function render(main) {
  const filters = { q: '', role: '' };
  const cursors = [null];
  let shown = null; // the ETag of what is drawn
  const count = h('span', { class: 'muted', id: 'proxy-count' });
  const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); filters.q = form.q.value; filters.role = form.role.value; cursors.length = 1; load(); } },
    h('label', {}, 'Search ', h('input', { name: 'q', type: 'search', placeholder: 'name, ip, country, city' })),
    h('label', {}, 'Role ', h('select', { name: 'role' }, ['', 'fallback', 'free', 'pro', 'standby', 'gateway', 'drained', 'retired'].map((r) => h('option', { value: r }, r || 'any')))),
    h('button', { type: 'submit' }, 'Filter'), count);
  const rows = liveTable([
    ['Name', (p) => h('a', { href: `#/proxies/${encodeURIComponent(p.name)}`, class: 'name' }, p.name)],
    ['Status', (p) => h('span', { class: `status ${p.role}` }, ['standby', 'drained', 'retired'].includes(p.role) ? p.role : 'up')],
    ['Role', (p) => p.role],
    ['Address', (p) => `${p.ip}:${p.port}`],
    ['Location', (p) => [p.city, p.country].filter(Boolean).join(', ') || '–'],
    ['Transport', transport],
    ['Clients', (p) => fullness(p.clients, p.capacity)],
    ['Users', (p) => h('span', { class: 'users-assigned', title: 'users assigned to it' }, number(p.users))],
    ['Heartbeat', (p) => agoTime(p.last_seen)],
    ['Load', (p) => sparkline((p.history || []).map((v) => v || 0))],
    ['', (p) => actionButtons(p, () => load())],
  ], (p) => p.name, 'No proxy matches.');
  const previous = h('button', { type: 'button', onclick: () => { cursors.pop(); load(); } }, '← Previous');
  const next = h('button', { type: 'button', onclick: () => { cursors.push(next.dataset.after); load(); } }, 'Next →');
  const list = h('div', { id: 'proxy-list' }, rows.element, h('div', { class: 'pager' }, previous, next));
  replace(main, h('h1', {}, title), form, list);

  async function load(live = false) {
    const after = cursors[cursors.length - 1];
    const { data: page, etag } = await getTagged(query('/api/v1/admin/proxies', { limit: PAGE, after, q: filters.q, role: filters.role, history: true }));
    if (live && etag && etag === shown) {
      refreshAgo(list);
      return;
    }
    shown = etag;
    count.textContent = `${number(page.matched_total)} proxies`;
    rows.update(page.proxies);
    previous.disabled = cursors.length < 2;
    next.disabled = !page.next_after;
    next.dataset.after = page.next_after || '';
  }
  await load();
  return () => load(true);
}
