// Users, a page at a time: by id; by email prefix (the email index, fast); or through filters
// (text in the email, a device's name or the id, status, Pro, level, proxy), which the server applies
// while reading users in id order, a bounded number per page. A number alone opens that user.

import { get, query } from '../api.js';
import { h, replace, table, number, date } from '../ui.js';

export const title = 'Users';
const PAGE = 50;

const choice = (name, label, options) => h('label', {}, label,
  h('select', { name }, options.map(([value, text]) => h('option', { value }, text))));

export async function render(main) {
  const state = { params: {}, cursors: [{}] };
  const list = h('div', { id: 'user-list' });
  const count = h('span', { class: 'muted', id: 'user-count' });
  const form = h('form', { class: 'filters', id: 'user-search', onsubmit: (e) => {
    e.preventDefault();
    const q = form.q.value.trim();
    if (/^\d+$/.test(q) && !filtered()) { location.hash = `#/users/${q}`; return; }
    state.params = filtered()
      ? { contains: q, status: form.status.value, pro: form.pro.value, level: form.level.value, proxy: form.proxy.value.trim() }
      : { q };
    state.cursors = [{}];
    load();
  } },
  h('label', {}, 'Search', h('input', { name: 'q', type: 'search', placeholder: 'email prefix, token start, or text with a filter', autocomplete: 'off' })),
  choice('status', 'Status', [['', 'any'], ['active', 'active'], ['pending', 'pending'], ['disabled', 'disabled'], ['lapsed', 'lapsed']]),
  choice('pro', 'Pro', [['', 'any'], ['true', 'Pro'], ['false', 'free']]),
  choice('level', 'Level', [['', 'any'], ['0', '0'], ['1', '1'], ['2', '2'], ['3', '3'], ['4', '4']]),
  h('label', {}, 'Proxy', h('input', { name: 'proxy', placeholder: 'proxy name', autocomplete: 'off', size: 12 })),
  h('label', {}, h('input', { name: 'anywhere', type: 'checkbox' }), 'text anywhere (email, device, id digits or token start)'),
  h('button', { type: 'submit' }, 'Search'), count);
  // Any filter, the text-anywhere box, or the start of a token (`pfu_`/`pfd_` and hex digits:
  // no email starts so) turns the search into the filtered one.
  const tokenStart = () => /^pf[ud]_[0-9a-f]{4,64}$/i.test(form.q.value.trim());
  const filtered = () => form.anywhere.checked || tokenStart() || form.status.value || form.pro.value || form.level.value || form.proxy.value.trim();
  replace(main, h('h1', {}, title), form, list);

  async function load() {
    const cursor = state.cursors[state.cursors.length - 1];
    const page = await get(query('/api/v1/admin/users', { limit: PAGE, ...state.params, ...cursor }));
    const byEmail = !!state.params.q;
    const byFilter = 'contains' in state.params;
    count.textContent = byEmail ? `matching “${state.params.q}”`
      : byFilter ? `${page.users.length} on this page${page.next_after ? ` (read up to user ${page.next_after})` : ' (all read)'}`
      : `${number(page.users_total)} users`;
    const next = byEmail ? { after_email: page.next_after_email } : { after: page.next_after };
    const hasNext = byEmail ? !!page.next_after_email : !!page.next_after;
    replace(list,
      table([
        ['Id', (u) => h('a', { href: `#/users/${u.id}` }, String(u.id))],
        ['Email', (u) => h('a', { href: `#/users/${u.id}`, class: 'email' }, u.email)],
        ['Status', (u) => h('span', { class: `status ${u.status}` }, u.status)],
        ['Pro until', (u) => (u.pro_until && u.pro_until * 1000 > Date.now() ? date(u.pro_until) : '–')],
        ['Invited by', (u) => (u.invited_by ? h('a', { href: `#/users/${u.invited_by}` }, String(u.invited_by)) : '–')],
        ['Proxies', (u) => u.proxies.join(', ') || '–'],
        ['Joined', (u) => date(u.created_at)],
      ], page.users, byFilter && page.next_after ? 'None on this page: go on with Next.' : 'No user matches.'),
      h('div', { class: 'pager' },
        h('button', { type: 'button', disabled: state.cursors.length < 2, onclick: () => { state.cursors.pop(); load(); } }, '← Previous'),
        h('button', { type: 'button', disabled: !hasNext, onclick: () => { state.cursors.push(next); load(); } }, 'Next →')));
  }
  await load();
}
