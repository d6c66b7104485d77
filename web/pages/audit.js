// Who did what to what, when, with which parameters: every admin action, newest first,
// searchable by actor, action, target or parameter (secrets are masked before they are stored).

import { get, query } from '../api.js';
import { h, replace, table } from '../ui.js';

// To the second, in UTC: entries a second apart are told apart.
const when = (ms) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';

export const title = 'Audit log';

export async function render(main) {
  const state = { q: '', cursors: [null] };
  const list = h('div', { id: 'audit-list' });
  const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); state.q = form.q.value.trim(); state.cursors = [null]; load(); } },
    h('label', {}, 'Search', h('input', { name: 'q', type: 'search', placeholder: 'who, what, target or parameter', size: 30 })), h('button', { type: 'submit' }, 'Search'));
  replace(main, h('h1', {}, title), form, list);

  async function load() {
    const page = await get(query('/admin/api/audit', { limit: 50, q: state.q, before: state.cursors[state.cursors.length - 1] }));
    replace(list, table([
      ['When', (e) => when(e.at_ms)], ['Who', (e) => e.actor], ['What', (e) => h('code', {}, e.action)],
      ['Target', (e) => e.target || '–'], ['Parameters', (e) => (e.params ? h('code', { class: 'params' }, e.params) : '–')],
      ['Count', (e) => (e.count > 1 ? String(e.count) : '')],
      ['Result', (e) => h('span', { class: `status s${String(e.status)[0]}xx` }, String(e.status))], ['From', (e) => e.client_ip || '–'],
    ], page.entries, 'Nothing recorded.'),
    h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: state.cursors.length < 2, onclick: () => { state.cursors.pop(); load(); } }, '← Newer'),
      h('button', { type: 'button', disabled: !page.next_before, onclick: () => { state.cursors.push(page.next_before); load(); } }, 'Older →')));
  }
  await load();
  return load;
}
