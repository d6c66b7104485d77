// One user: trust-graph parent and children, Pro status, devices, payments, assignment history
// and the config the client is served now, invitations and their quota; disable, gift Pro days,
// move to a proxy, revoke an invitation, set the invitation quota.

import { get, post, put, del, query } from '../api.js';
import { h, replace, table, date, notice, confirmThen, number } from '../ui.js';

export const title = 'User';

const link = (id) => h('a', { href: `#/users/${id}` }, `#${id}`);
const money = (amount, currency) => `${(amount / 100).toFixed(2)} ${String(currency).toUpperCase()}`;

export async function render(main, { id }) {
  const body = h('div', { id: 'user-detail' });
  replace(main, body);

  async function load() {
    const d = await get(`/api/v1/admin/users/${encodeURIComponent(id)}`);
    const u = d.user;
    const inv = await get(`/api/v1/admin/users/${u.id}/invitations?limit=50`);
    // The tree below, one level and one page at a time (each row says how many it invited).
    const tree = h('div', { id: 'invitee-tree' });
    const cursors = [null];
    async function loadTree() {
      const page = await get(query(`/api/v1/admin/users/${u.id}/invitees`, { limit: 50, after: cursors[cursors.length - 1] }));
      replace(tree,
        h('p', {}, `${number(page.total)} invited directly`),
        table([
          ['User', (c) => [link(c.id), ' ', c.email]], ['Status', (c) => h('span', { class: `status ${c.status}` }, c.status)],
          ['Joined', (c) => date(c.joined_at)], ['Invited in turn', (c) => number(c.invited)],
        ], page.invitees, 'Nobody yet.'),
        h('div', { class: 'pager' },
          h('button', { type: 'button', disabled: cursors.length < 2, onclick: () => { cursors.pop(); loadTree(); } }, '← Previous'),
          h('button', { type: 'button', disabled: !page.next_after, onclick: () => { cursors.push(page.next_after); loadTree(); } }, 'Next →')));
    }
    const q = inv.quota;
    const quotaForm = h('form', { class: 'inline', id: 'quota-form', onsubmit: async (e) => {
      e.preventDefault();
      const raw = quotaForm.per_period.value.trim();
      const per_period = raw === '' ? null : Number(raw);
      try {
        await put(`/api/v1/admin/users/${u.id}/invitation_quota`, { per_period });
        notice(per_period === null ? `${u.email} has the default quota again` : `${u.email} may send ${per_period} invitations per period`);
        await load();
      } catch (err) { notice(err.message, 'error'); }
    } },
    h('input', { name: 'per_period', type: 'number', min: 0, max: 1000, placeholder: 'default', value: q.overridden ? q.per_period : '' }),
    h('button', { type: 'submit' }, 'Set quota'));
    const revoke = (i) => (i.state === 'open'
      ? h('button', { type: 'button', class: 'danger revoke-invitation', onclick: () => confirmThen(`Revoke the invitation of ${i.email}?`, async () => {
        try { await del(`/api/v1/admin/invitations/${encodeURIComponent(i.code)}`); notice(`Invitation of ${i.email} revoked`); await load(); } catch (err) { notice(err.message, 'error'); }
      }) }, 'Revoke')
      : '');
    const giftForm = h('form', { class: 'inline', id: 'gift-form', onsubmit: async (e) => {
      e.preventDefault();
      const days = Number(giftForm.days.value);
      try {
        await post(`/api/v1/admin/users/${u.id}/pro`, { days });
        notice(`Gave ${days} Pro days to ${u.email}`);
        await load();
      } catch (err) { notice(err.message, 'error'); }
    } },
    h('input', { name: 'days', type: 'number', min: 1, max: 3650, value: 30, required: true }),
    h('button', { type: 'submit' }, 'Gift Pro days'));
    const moveForm = h('form', { class: 'inline', id: 'move-form', onsubmit: async (e) => {
      e.preventDefault();
      const proxies = moveForm.proxies.value.split(/[\s,]+/).filter(Boolean);
      try {
        await put(`/api/v1/admin/users/${u.id}/proxies`, { proxies });
        notice(`${u.email} now uses ${proxies.join(', ')}`);
        await load();
      } catch (err) { notice(err.message, 'error'); }
    } },
    h('input', { name: 'proxies', placeholder: 'proxy names, comma separated', value: u.proxies.join(', '), required: true }),
    h('button', { type: 'submit' }, 'Move'));
    // Trust (docs/BLOCKING.md): the operator vouches for or demotes a user by setting its level.
    const trustForm = h('form', { class: 'inline', id: 'trust-form', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const t = await put(`/api/v1/admin/users/${u.id}/trust`, { level: Number(trustForm.level.value) });
        notice(`${u.email} is now at trust level ${t.level}`);
        await load();
      } catch (err) { notice(err.message, 'error'); }
    } },
    h('label', {}, 'Trust level ', h('input', { name: 'level', type: 'number', min: 0, max: 4, value: d.trust.level, required: true })),
    h('button', { type: 'submit' }, 'Set level'));
    const clearSuspicion = d.suspicion.score > 0 || d.trust.probation_until
      ? h('button', { type: 'button', id: 'clear-suspicion', onclick: async () => {
        try { await post(`/api/v1/admin/users/${u.id}/suspicion/clear`); notice(`${u.email} cleared`); await load(); } catch (err) { notice(err.message, 'error'); }
      } }, 'Clear suspicion')
      : '';
    // Cutting the branch: the account and everyone it brought in, one operation.
    const branch = d.children.length
      ? h('button', { type: 'button', class: 'danger', id: 'disable-branch', onclick: () => confirmThen(`Disable ${u.email} and everyone below them in the invitation tree?`, async () => {
        try {
          const r = await post(`/api/v1/admin/users/${u.id}/disable?subtree=true`);
          notice(`${r.affected.length} accounts disabled`);
          await load();
        } catch (err) { notice(err.message, 'error'); }
      }) }, 'Disable with invitees')
      : '';
    // A pending or lapsed account follows its invitation: it is revoked, not disabled.
    const member = u.status === 'active' || u.status === 'disabled';
    const disable = !member
      ? h('p', { id: 'pending-note' }, u.status === 'pending'
        ? 'Made by an invitation not yet accepted: it holds its proxies and its config was sent with the invitation. Revoke the invitation to release them.'
        : 'Its invitation expired or was revoked unused: its proxies were released.')
      : u.status === 'active'
      ? h('button', { type: 'button', class: 'danger', id: 'disable-user', onclick: () => confirmThen(`Disable ${u.email}? Their tokens stop working.`, async () => {
        try { await post(`/api/v1/admin/users/${u.id}/disable`); notice(`${u.email} disabled`); await load(); } catch (err) { notice(err.message, 'error'); }
      }) }, 'Disable')
      : h('button', { type: 'button', id: 'enable-user', onclick: async () => {
        try { await post(`/api/v1/admin/users/${u.id}/enable`); notice(`${u.email} enabled`); await load(); } catch (err) { notice(err.message, 'error'); }
      } }, 'Enable');

    replace(body,
      h('h1', {}, u.email, ' ', h('span', { class: `status ${u.status}` }, u.status)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Id'), h('dd', {}, String(u.id)),
        h('dt', {}, 'Joined'), h('dd', {}, date(u.created_at)),
        h('dt', {}, 'Invited by'), h('dd', {}, d.parent ? link(d.parent) : 'nobody (a root of the trust graph)'),
        h('dt', {}, 'Invited'), h('dd', {}, d.children.length ? d.children.map((c) => [link(c), ' ']) : 'nobody yet'),
        h('dt', {}, 'Pro'), h('dd', { id: 'pro-status' }, d.pro.active ? `until ${date(d.pro.until)}` : 'free'),
        h('dt', {}, 'Pro proxies'), h('dd', {}, d.pro.proxies.join(', ') || '–'),
        h('dt', {}, 'Config version'), h('dd', {}, number(d.config_version)),
        h('dt', {}, 'Trust'), h('dd', { id: 'trust-level' }, d.trust.why),
        h('dt', {}, 'Suspicion'), h('dd', { id: 'suspicion' }, d.suspicion.why),
        h('dt', {}, 'Country'), h('dd', {}, d.country || 'not seen yet')),
      // A disabled account gets no Pro and no move (the server refuses them: 409).
      h('div', { class: 'actions' }, u.status === 'active' ? giftForm : '', u.status === 'active' ? moveForm : '', trustForm, clearSuspicion, disable, branch),
      h('h2', {}, 'Current config'),
      table([
        ['Proxy', (p) => p.name], ['Role', (p) => p.role], ['Address', (p) => `${p.ip}:${p.port}`],
        ['Location', (p) => [p.city, p.country].filter(Boolean).join(', ') || '–'],
      ], d.config?.proxies || [], 'No proxy in the config.'),
      h('h2', {}, 'Invitation tree'),
      tree,
      h('h2', {}, 'Invitations'),
      h('p', { id: 'invitation-quota' }, `${number(q.used)} of ${number(q.per_period)} in the last ${number(q.period_secs / 86400)} days`,
        q.overridden ? ' (set by an admin)' : ' (the default)', q.next_allowed_at ? `; the next is allowed ${date(q.next_allowed_at)}` : ''),
      h('div', { class: 'actions' }, quotaForm),
      table([
        ['Email', (i) => i.email], ['State', (i) => h('span', { class: `status ${i.state}` }, i.state)],
        ['Sent', (i) => date(i.created_at)], ['Expires', (i) => date(i.expires_at)],
        ['Account', (i) => (i.accepted_user || i.invitee ? link(i.accepted_user || i.invitee) : '–')],
        ['', revoke],
      ], inv.invitations, 'No invitation sent.'),
      h('h2', {}, 'Devices'),
      table([['Name', (x) => x.name], ['Linked', (x) => date(x.created_at)]], d.devices, 'No linked device.'),
      h('h2', {}, 'Payments'),
      table([
        ['When', (p) => date(p.created_ms / 1000)], ['Plan', (p) => p.plan], ['Amount', (p) => money(p.amount, p.currency)],
        ['Refunded', (p) => (p.refunded ? money(p.refunded, p.currency) : '–')], ['Days', (p) => number(p.days)], ['Status', (p) => p.status],
      ], d.payments, 'No payment.'),
      h('h2', {}, 'Assignment history'),
      table([['When', (x) => date(x.at)], ['Proxies', (x) => x.proxies.join(', ') || '–'], ['Why', (x) => x.reason]],
        [...d.history].reverse(), 'No change yet.'));
    await loadTree();
  }
  await load();
}
