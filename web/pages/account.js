// The signed-in admin's password. Changing it ends every session of the account, this one
// too, so the panel asks to sign in again.

import { post } from '../api.js';
import { h, replace } from '../ui.js';
import { signedOut } from '../main.js';

export const title = 'Account';

export async function render(main) {
  const message = h('p', { class: 'error', id: 'password-error' });
  const form = h('form', { id: 'password-form', class: 'stacked', onsubmit: async (e) => {
    e.preventDefault();
    if (form.new.value !== form.again.value) { message.textContent = 'The two new passwords differ.'; return; }
    try {
      await post('/admin/api/password', { current: form.current.value, new: form.new.value });
      signedOut('Password changed: every session has ended. Sign in with the new password.');
    } catch (err) { message.textContent = err.message; }
  } },
  h('label', {}, 'Current password', h('input', { name: 'current', type: 'password', autocomplete: 'current-password', required: true })),
  h('label', {}, 'New password (12 characters or more)', h('input', { name: 'new', type: 'password', autocomplete: 'new-password', minlength: 12, required: true })),
  h('label', {}, 'New password again', h('input', { name: 'again', type: 'password', autocomplete: 'new-password', minlength: 12, required: true })),
  h('button', { type: 'submit' }, 'Change password'), message);
  replace(main, h('h1', {}, title), form);
}
