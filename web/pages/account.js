// The signed-in admin's password and second factor. Changing the password ends every session
// of the account, this one too, so the panel asks to sign in again.

import { get, post } from '../api.js';
import { h, replace, notice } from '../ui.js';
import { signedOut } from '../main.js';

export const title = 'Account';

function passwordForm() {
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
  return form;
}

/// Off: make a secret, show it, turn on with a code. On: turn off with a code.
function secondFactor(enabled, redraw) {
  const box = h('div', { id: 'totp' });
  const message = h('p', { class: 'error' });
  const codeField = () => h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', required: true, placeholder: '6-digit code' });
  if (enabled) {
    const form = h('form', { class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      try { await post('/admin/api/totp/disable', { code: form.code.value }); notice('Second factor off'); redraw(false); } catch (err) { message.textContent = err.message; }
    } }, codeField(), h('button', { type: 'submit', class: 'danger' }, 'Turn off'));
    replace(box, h('p', {}, 'On: signing in asks for a code from your authenticator app.'), form, message);
    return box;
  }
  const start = h('button', { type: 'button', id: 'totp-start', onclick: async () => {
    const fresh = await get('/admin/api/totp/new');
    const form = h('form', { class: 'inline', id: 'totp-form', onsubmit: async (e) => {
      e.preventDefault();
      try { await post('/admin/api/totp', { secret: fresh.secret, code: form.code.value }); notice('Second factor on'); redraw(true); } catch (err) { message.textContent = err.message; }
    } }, codeField(), h('button', { type: 'submit' }, 'Turn on'));
    replace(box,
      h('p', {}, 'Add this secret to your authenticator app, then enter the code it shows.'),
      h('pre', { id: 'totp-secret' }, fresh.secret), h('p', { class: 'muted' }, fresh.otpauth_url), form, message);
  } }, 'Set up a second factor');
  replace(box, h('p', { class: 'muted' }, 'Off: a password alone signs in.'), start);
  return box;
}

export async function render(main) {
  const me = await get('/admin/api/session');
  const factor = h('div');
  const redraw = (enabled) => replace(factor, secondFactor(enabled, redraw));
  redraw(me.totp_enabled);
  replace(main, h('h1', {}, `${title}: ${me.username}`), h('h2', {}, 'Password'), passwordForm(), h('h2', {}, 'Second factor (TOTP)'), factor);
}
