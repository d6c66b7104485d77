// The panel: sign-in, the navigation and a hash router. Each page is a module exporting
// `title` and `render(main, params)`; a page may return a `refresh` function, which the live
// loop calls every few seconds while the page is shown (the dashboard and proxies move by it).

import { get, post, setCsrf, whenSignedOut, ApiError } from './api.js';
import { h, replace, notice } from './ui.js';
import * as dashboard from './pages/dashboard.js';
import * as proxies from './pages/proxies.js';
import * as proxy from './pages/proxy.js';
import * as map from './pages/map.js';
import * as users from './pages/users.js';
import * as user from './pages/user.js';
import * as rebalance from './pages/rebalance.js';
import * as money from './pages/money.js';
import * as queues from './pages/queues.js';
import * as settings from './pages/settings.js';
import * as audit from './pages/audit.js';
import * as account from './pages/account.js';
import * as accounts from './pages/accounts.js';

const PAGES = [
  ['dashboard', dashboard], ['map', map], ['proxies', proxies], ['users', users], ['rebalance', rebalance],
  ['money', money], ['queues', queues], ['audit', audit], ['accounts', accounts], ['settings', settings], ['account', account],
];
const LIVE_EVERY_MS = 2000;

// The page's own error log: uncaught errors, rejected promises and console.error calls. Shown
// nowhere; the browser tests read it and fail on any entry.
window.pfErrors = [];
window.addEventListener('error', (event) => window.pfErrors.push(String(event.message)));
window.addEventListener('unhandledrejection', (event) => window.pfErrors.push(String(event.reason)));
const consoleError = console.error.bind(console);
console.error = (...args) => { window.pfErrors.push(args.map(String).join(' ')); consoleError(...args); };

const root = document.getElementById('app');
let me = null;
let live = null;

function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'dashboard').split('/');
  if (name === 'users' && rest.length) return { page: user, name: 'users', params: { id: rest[0] } };
  if (name === 'proxies' && rest.length) return { page: proxy, name: 'proxies', params: { name: decodeURIComponent(rest[0]) } };
  const found = PAGES.find(([key]) => key === name);
  return found ? { page: found[1], name, params: {} } : { page: dashboard, name: 'dashboard', params: {} };
}

function stopLive() {
  if (live) clearInterval(live);
  live = null;
}

async function show() {
  stopLive();
  if (!me) return showLogin();
  const { page, name, params } = route();
  const main = h('main', { id: 'main', 'data-page': name });
  // On a narrow screen the navigation folds behind a Menu button (CSS shows it there only).
  const menu = h('button', { type: 'button', id: 'menu', class: 'menu', 'aria-expanded': 'false', 'aria-controls': 'nav',
    onclick: () => {
      const open = header.classList.toggle('open');
      menu.setAttribute('aria-expanded', String(open));
    } }, 'Menu');
  const header = h('header', {},
    h('span', { class: 'brand' }, 'proxyfleet'),
    menu,
    h('nav', { id: 'nav' }, PAGES.filter(([key]) => key !== 'account').map(([key, mod]) =>
      h('a', { href: `#/${key}`, class: key === name ? 'active' : '' }, mod.title))),
    h('span', { class: 'who' },
      h('a', { href: '#/account', id: 'account-link' }, me.username),
      h('button', { type: 'button', id: 'logout', onclick: logout }, 'Sign out')));
  replace(root, header, h('div', { id: 'notices', 'aria-live': 'polite' }), main);
  try {
    const refresh = await page.render(main, params);
    if (typeof refresh === 'function') {
      live = setInterval(() => refresh().catch((e) => console.warn('refresh failed', e)), LIVE_EVERY_MS);
    }
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      main.append(h('p', { class: 'error' }, `Could not load this page: ${error.message}`));
    }
  }
}

function showLogin(message) {
  stopLive();
  const error = h('p', { class: 'error', id: 'login-error' }, message || '');
  // Shown when the server asks for the second factor.
  const code = h('label', { hidden: true }, 'Authenticator code (or a recovery code)',
    h('input', { name: 'totp', autocomplete: 'one-time-code', maxlength: 16 }));
  const form = h('form', { id: 'login', class: 'login', onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const credentials = { username: data.get('username'), password: data.get('password') };
    if (data.get('totp')) credentials.totp = data.get('totp');
    try {
      const session = await post('/admin/api/login', credentials);
      setCsrf(session.csrf);
      me = session;
      show();
    } catch (e) {
      if (e.code === 'totp_required') {
        code.hidden = false;
        code.querySelector('input').focus();
        error.textContent = 'Enter the code from your authenticator app.';
        return;
      }
      error.textContent = e.status === 429 ? `Too many failed attempts; try again in ${e.retryAfter || 'a few'} seconds.`
        : e.status === 401 || e.status === 403 ? 'Wrong username, password or code.'
        : `The server could not sign you in: ${e.message}`;
    }
  } },
  h('h1', {}, 'proxyfleet'),
  h('label', {}, 'Username', h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true })),
  h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
  code,
  h('button', { type: 'submit' }, 'Sign in'),
  error);
  replace(root, form);
}

// The setup link printed at the server's first start: the first account, chosen here.
function showSetup(token) {
  const error = h('p', { class: 'error', id: 'setup-error' });
  const form = h('form', { id: 'setup', class: 'login', onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    if (data.get('password') !== data.get('again')) {
      error.textContent = 'The two passwords differ.';
      return;
    }
    try {
      const session = await post('/admin/api/setup',
        { token, username: data.get('username'), password: data.get('password') });
      // The token is spent: keep it out of the address bar and the history.
      history.replaceState(null, '', './');
      setCsrf(session.csrf);
      me = session;
      show();
    } catch (e) {
      if (e.code === 'setup_done') {
        history.replaceState(null, '', './');
        showLogin('An admin account exists already: sign in with it.');
        return;
      }
      error.textContent = e.status === 429 ? `Too many attempts; try again in ${e.retryAfter || 'a few'} seconds.`
        : e.status === 403 ? 'This setup link is not valid: use the one the server printed at its last start.'
        : `The account was not made: ${e.message}`;
    }
  } },
  h('h1', {}, 'proxyfleet'),
  h('p', {}, 'No admin account exists yet. Choose the first one (more can be added from Accounts).'),
  h('label', {}, 'Username', h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true, maxlength: 64 })),
  h('label', {}, 'Password (12 characters or more)', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 })),
  h('label', {}, 'Password again', h('input', { name: 'again', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 })),
  h('button', { type: 'submit' }, 'Create account and sign in'),
  error);
  replace(root, form);
}

async function logout() {
  try { await post('/admin/api/logout'); } catch (e) { /* the session may be gone already */ }
  me = null;
  setCsrf(null);
  showLogin('Signed out.');
}

whenSignedOut(() => {
  if (me) {
    me = null;
    showLogin('Your session has ended; sign in again.');
  }
});

export function signedOut(message) {
  me = null;
  setCsrf(null);
  showLogin(message);
}

window.addEventListener('hashchange', show);

(async () => {
  try {
    me = await get('/admin/api/session');
    setCsrf(me.csrf);
  } catch (e) {
    me = null;
  }
  const setupToken = new URLSearchParams(location.search).get('token');
  if (!me && location.pathname.endsWith('/setup') && setupToken) return showSetup(setupToken);
  show();
})();
