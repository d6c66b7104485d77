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

const passwordField = () => h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, placeholder: 'password' });
const codeField = (name = 'code', placeholder = 'code') => h('input', { name, autocomplete: 'one-time-code', maxlength: 16, required: true, placeholder });

/// Shown once after turning the second factor on.
function recoveryCodes(codes) {
  return h('div', { id: 'recovery-codes' },
    h('p', {}, 'Recovery codes: each signs in once in place of a code. Keep them somewhere safe; they are not shown again.'),
    h('pre', {}, codes.join('\n')));
}

/// Off: make a secret, show it as a QR code, turn on with the password and a code. On: replace
/// the secret or turn off, each with the password and a current code.
function secondFactor(enabled, redraw) {
  const box = h('div', { id: 'totp' });
  const message = h('p', { class: 'error' });
  const setUp = (replacing) => async () => {
    const fresh = await get('/admin/api/totp/new');
    const form = h('form', { class: 'stacked', id: 'totp-form', onsubmit: async (e) => {
      e.preventDefault();
      const body = { secret: fresh.secret, code: form.code.value, password: form.password.value };
      if (replacing) body.current_code = form.current_code.value;
      try {
        const done = await post('/admin/api/totp', body);
        notice('Second factor on; other sessions of this account have ended');
        redraw(true);
        box.append(recoveryCodes(done.recovery_codes));
      } catch (err) { message.textContent = err.message; }
    } },
    h('label', {}, 'Password', passwordField()),
    replacing ? h('label', {}, 'A code from the app in use now', codeField('current_code')) : '',
    h('label', {}, 'The code the app shows for the new secret', codeField()),
    h('button', { type: 'submit' }, replacing ? 'Replace' : 'Turn on'));
    const qr = h('img', { id: 'totp-qr', alt: 'QR code of the secret', width: 200, height: 200,
      src: 'data:image/svg+xml;base64,' + btoa(fresh.qr_svg) });
    replace(box,
      h('p', {}, 'Scan this QR code with your authenticator app (or type the secret), then enter the code it shows.'),
      qr, h('pre', { id: 'totp-secret' }, fresh.secret), form, message);
  };
  if (enabled) {
    const form = h('form', { class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      try { await post('/admin/api/totp/disable', { code: form.code.value, password: form.password.value }); notice('Second factor off'); redraw(false); } catch (err) { message.textContent = err.message; }
    } }, passwordField(), codeField(), h('button', { type: 'submit', class: 'danger' }, 'Turn off'));
    replace(box, h('p', {}, 'On: signing in asks for a code from your authenticator app (or a recovery code).'), form,
      h('button', { type: 'button', id: 'totp-replace', onclick: setUp(true) }, 'Replace the secret'), message);
    return box;
  }
  const start = h('button', { type: 'button', id: 'totp-start', onclick: setUp(false) }, 'Set up a second factor');
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
