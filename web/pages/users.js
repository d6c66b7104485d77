// Users, a page at a time: by id, or searched by email prefix on the server. A number in the
// search box opens that user.

import { get, query } from '../api.js';
import { h, replace, table, number, date } from '../ui.js';

export const title = 'Users';
const PAGE = 50;

export async function render(main) {
  const state = { q: '', cursors: [{}] };
  const list = h('div', { id: 'user-list' });
  const count = h('span', { class: 'muted' });
  const form = h('form', { class: 'filters', id: 'user-search', onsubmit: (e) => {
    e.preventDefault();
    const q = form.q.value.trim();
    if (/^\d+$/.test(q)) { location.hash = `#/users/${q}`; return; }
    state.q = q;
    state.cursors = [{}];
    load();
  } },
  h('input', { name: 'q', type: 'search', placeholder: 'email prefix or user id', autocomplete: 'off' }),
  h('button', { type: 'submit' }, 'Search'), count);
  replace(main, h('h1', {}, title), form, list);

  async function load() {
    const cursor = state.cursors[state.cursors.length - 1];
    const page = await get(query('/api/v1/admin/users', { limit: PAGE, q: state.q, ...cursor }));
    count.textContent = state.q ? `matching “${state.q}”` : `${number(page.users_total)} users`;
    const next = state.q ? { after_email: page.next_after_email } : { after: page.next_after };
    const hasNext = state.q ? !!page.next_after_email : !!page.next_after;
    replace(list,
      table([
        ['Id', (u) => h('a', { href: `#/users/${u.id}` }, String(u.id))],
        ['Email', (u) => h('a', { href: `#/users/${u.id}`, class: 'email' }, u.email)],
        ['Status', (u) => h('span', { class: `status ${u.status}` }, u.status)],
        ['Pro until', (u) => (u.pro_until && u.pro_until * 1000 > Date.now() ? date(u.pro_until) : '–')],
        ['Invited by', (u) => (u.invited_by ? h('a', { href: `#/users/${u.invited_by}` }, String(u.invited_by)) : '–')],
        ['Proxies', (u) => u.proxies.join(', ') || '–'],
        ['Joined', (u) => date(u.created_at)],
      ], page.users, 'No user matches.'),
      h('div', { class: 'pager' },
        h('button', { type: 'button', disabled: state.cursors.length < 2, onclick: () => { state.cursors.pop(); load(); } }, '← Previous'),
        h('button', { type: 'button', disabled: !hasNext, onclick: () => { state.cursors.push(next); load(); } }, 'Next →')));
  }
  await load();
}
