// Every proxy, a page at a time, filtered on the server: status, role, location, how clients
// connect, clients against capacity, heartbeat age, recent load; drain, promote, retire, make a
// public gateway, and revoke a proxy's secret, each with confirmation; who was ever given a
// proxy (its exposure, with each user's inviter chain), for when it is blocked.

import { get, post, query } from '../api.js';
import { h, replace, table, fullness, sparkline, ago, notice, confirmThen, number, date } from '../ui.js';

export const title = 'Proxies';
const PAGE = 50;

export async function render(main) {
  const filters = { q: '', role: '' };
  const cursors = [null];
  const list = h('div', { id: 'proxy-list' });
  const count = h('span', { class: 'muted', id: 'proxy-count' });
  const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); filters.q = form.q.value; filters.role = form.role.value; cursors.length = 1; load(); } },
    h('input', { name: 'q', type: 'search', placeholder: 'name, ip, country, city' }),
    h('select', { name: 'role' }, ['', 'fallback', 'free', 'pro', 'standby', 'gateway', 'drained', 'retired'].map((r) => h('option', { value: r }, r || 'any role'))),
    h('button', { type: 'submit' }, 'Filter'), count);
  const exposure = h('section', { id: 'exposure' });
  replace(main, h('h1', {}, title), form, list, exposure);

  const userLink = (id) => h('a', { href: `#/users/${id}` }, `#${id}`);
  const hours = (s) => (s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
  async function showExposure(name, after = null) {
    try {
      const page = await get(query(`/api/v1/admin/proxies/${encodeURIComponent(name)}/exposure`, { limit: 100, after }));
      replace(exposure,
        h('h2', {}, `Who was given ${name}`),
        table([
          ['User', (u) => [userLink(u.user), ' ', u.email, ' ', h('span', { class: `status ${u.status}` }, u.status)]],
          ['Held', (u) => u.periods.map((p) => h('div', {}, `${date(p.from)} → ${p.until ? date(p.until) : 'now'} (${hours(p.seconds)})`))],
          ['Invited by', (u) => (u.inviters.length ? u.inviters.map((id) => [userLink(id), ' ']) : 'nobody')],
        ], page.users, 'Nobody was ever given this proxy.'),
        page.next_after ? h('button', { type: 'button', onclick: () => showExposure(name, page.next_after) }, 'Next →') : '');
      exposure.scrollIntoView();
    } catch (e) { notice(`${name}: ${e.message}`, 'error'); }
  }

  const act = (name, action, question) => confirmThen(question, async () => {
    try {
      await post(`/api/v1/admin/proxies/${encodeURIComponent(name)}/action`, { action });
      notice(`${name}: ${action} done`);
      await load();
    } catch (e) { notice(`${name}: ${e.message}`, 'error'); }
  });

  // Changes that are not rebalancer actions: the role for good, and revoking the secret.
  const call = (name, path, body, question, done) => confirmThen(question, async () => {
    try {
      await post(`/api/v1/admin/proxies/${encodeURIComponent(name)}/${path}`, body);
      notice(`${name}: ${done}`);
      await load();
    } catch (e) { notice(`${name}: ${e.message}`, 'error'); }
  });
  const transport = (p) => [p.protocol, p.sni && `sni ${p.sni}`, p.front && `front ${p.front}`, p.cert_sha256 && 'pinned cert']
    .filter(Boolean).join(' · ') || '–';

  async function load() {
    const after = cursors[cursors.length - 1];
    const page = await get(query('/api/v1/admin/proxies', { limit: PAGE, after, q: filters.q, role: filters.role, history: true }));
    count.textContent = `${number(page.matched_total)} proxies`;
    replace(list,
      table([
        ['Name', (p) => h('span', { class: 'name' }, p.name)],
        ['Status', (p) => h('span', { class: `status ${p.role}` }, ['standby', 'drained', 'retired'].includes(p.role) ? p.role : 'up')],
        ['Role', (p) => p.role],
        ['Address', (p) => `${p.ip}:${p.port}`],
        ['Location', (p) => [p.city, p.country].filter(Boolean).join(', ') || '–'],
        ['Transport', transport],
        ['Clients', (p) => fullness(p.clients, p.capacity)],
        ['Users', (p) => h('span', { class: 'users-assigned', title: 'users assigned to it' }, number(p.users))],
        ['Heartbeat', (p) => ago(p.last_seen)],
        ['Load', (p) => sparkline((p.history || []).map((v) => v || 0))],
        ['', (p) => h('span', { class: 'actions' },
          h('button', { type: 'button', class: 'exposure', onclick: () => showExposure(p.name) }, 'Who had it'),
          !['standby', 'drained', 'retired'].includes(p.role) ? h('button', { type: 'button', onclick: () => act(p.name, 'drain', `Drain ${p.name}? Its users move to other proxies, and nothing automatic uses it until you undrain it.`) }, 'Drain') : null,
          p.role === 'standby' ? h('button', { type: 'button', onclick: () => act(p.name, 'promote', `Promote ${p.name} to a fallback proxy?`) }, 'Promote') : null,
          p.role === 'drained' ? h('button', { type: 'button', onclick: () => act(p.name, 'undrain', `Undrain ${p.name}? It becomes a fallback proxy again.`) }, 'Undrain') : null,
          p.role === 'retired' ? h('button', { type: 'button', onclick: () => act(p.name, 'reactivate', `Reactivate ${p.name}? It becomes a standby the rebalancer may promote.`) }, 'Reactivate') : null,
          p.role !== 'gateway' ? h('button', { type: 'button', onclick: () => call(p.name, 'role', { role: 'gateway' }, `Make ${p.name} a public gateway? Anyone asking /json will see its address, and its users move elsewhere.`, 'now a gateway') }, 'Make gateway') : null,
          p.role !== 'retired' ? h('button', { type: 'button', class: 'danger', onclick: () => act(p.name, 'retire', `Retire ${p.name}? It is drained and its retire command runs.`) }, 'Retire') : null,
          h('button', { type: 'button', class: 'danger', onclick: () => call(p.name, 'revoke', {}, `Revoke ${p.name}'s secret? It leaves service now and its heartbeats are refused until you rotate its secret.`, 'secret revoked') }, 'Revoke'))],
      ], page.proxies, 'No proxy matches.'),
      h('div', { class: 'pager' },
        h('button', { type: 'button', disabled: cursors.length < 2, onclick: () => { cursors.pop(); load(); } }, '← Previous'),
        h('button', { type: 'button', disabled: !page.next_after, onclick: () => { cursors.push(page.next_after); load(); } }, 'Next →')));
  }
  await load();
  return load;
}
