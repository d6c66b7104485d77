// Admin accounts: who may sign in to this panel. Disable, enable, remove, reset a password
// (the new one is shown once) or a lost second factor. Each ends the account's sessions; the
// server refuses to disable or remove the last enabled account from here.

import { get, post } from '../api.js';
import { h, replace, table, notice } from '../ui.js';

export const title = 'Accounts';

async function act(name, action, redraw) {
  if (['remove', 'disable', 'reset-password', 'reset-totp'].includes(action) && !confirm(`${action} ${name}?`)) return;
  try {
    const done = await post(`/admin/api/accounts/${encodeURIComponent(name)}/${action}`);
    notice(done.password ? `New password for ${name} (shown once): ${done.password}` : `${name}: ${action} done`);
    await redraw();
  } catch (err) { notice(err.message, 'error'); }
}

function createForm(redraw) {
  const message = h('p', { class: 'error' });
  const form = h('form', { class: 'inline', id: 'account-create', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await post('/admin/api/accounts', { username: form.username.value, password: form.password.value });
      form.reset();
      await redraw();
    } catch (err) { message.textContent = err.message; }
  } },
  h('input', { name: 'username', placeholder: 'username', required: true, maxlength: 64 }),
  h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'password (12+ characters)', minlength: 12, required: true }),
  h('button', { type: 'submit' }, 'Create'), message);
  return form;
}

export async function render(main) {
  const list = h('div', { id: 'accounts' });
  const redraw = async () => {
    const { accounts } = await get('/admin/api/accounts');
    const button = (a, action, label, cls) => h('button', { type: 'button', class: cls || '', 'data-action': action,
      onclick: () => act(a.username, action, redraw) }, label);
    replace(list, table([
      ['Username', (a) => a.username],
      ['State', (a) => (a.disabled ? 'disabled' : 'enabled')],
      ['Second factor', (a) => (a.totp_enabled ? `on (${a.recovery_codes_left} recovery codes left)` : 'off')],
      ['Created', (a) => new Date(a.created_ms).toISOString().slice(0, 10)],
      ['', (a) => h('span', { class: 'actions' },
        a.disabled ? button(a, 'enable', 'Enable') : button(a, 'disable', 'Disable', 'danger'),
        button(a, 'reset-password', 'Reset password'),
        a.totp_enabled ? button(a, 'reset-totp', 'Reset second factor') : '',
        button(a, 'remove', 'Remove', 'danger'))],
    ], accounts));
  };
  await redraw();
  replace(main, h('h1', {}, title), list, h('h2', {}, 'New account'), createForm(redraw));
}
