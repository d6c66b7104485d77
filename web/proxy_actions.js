// The operator's hand on one proxy, shared by the proxies list and the proxy page: drain,
// promote, retire, undrain, reactivate, make a public gateway, revoke its secret; each asks
// first. An action's answer only says the role changed: the work it queued (moving users off,
// the retire hook) runs in the background, so each queued task is followed until it is done or
// failed for good, and that real outcome is what the operator is told.

import { get, post } from './api.js';
import { h, notice, confirmThen } from './ui.js';

const FOLLOW_EVERY_MS = 1000;
const FOLLOW_FOR_MS = 15 * 60 * 1000;
const WHAT = {
  'fleet.retire': 'the retire hook',
  'fleet.proxy_changed': 'moving its users',
  'blocking.proxy_blocked': 'moving its users out of the country',
};

/// Follows the tasks an action queued; tells the outcome of each, and calls `changed` on it.
export function follow(name, tasks, changed = () => {}) {
  for (const task of tasks || []) {
    const what = WHAT[task.kind] || task.kind;
    const started = Date.now();
    let toldRetry = false;
    const look = async () => {
      let t;
      try { t = await get(`/api/v1/admin/queue/tasks/${task.id}`); } catch (e) { return; }
      if (t.state === 'done') { notice(`${name}: ${what} done`); changed(); return; }
      if (t.state === 'dead') {
        notice(`${name}: ${what} failed after ${t.attempts} tries: ${t.last_error || 'no error given'} (a dead letter: retry it from Queues)`, 'error');
        changed();
        return;
      }
      if (t.last_error && !toldRetry) {
        toldRetry = true;
        notice(`${name}: ${what} failed (try ${t.attempts} of ${t.max_attempts}), retrying: ${t.last_error}`, 'error');
        changed();
      }
      if (Date.now() - started < FOLLOW_FOR_MS) setTimeout(look, FOLLOW_EVERY_MS);
    };
    setTimeout(look, FOLLOW_EVERY_MS / 4);
  }
}

/// The buttons for proxy `p` (a proxy as the API shows it); `changed` runs after each change.
export function actionButtons(p, changed) {
  const path = (end) => `/api/v1/admin/proxies/${encodeURIComponent(p.name)}/${end}`;
  const run = (question, end, body, said) => confirmThen(question, async () => {
    try {
      const answer = await post(path(end), body);
      const queued = answer.tasks || [];
      notice(queued.length ? `${p.name}: ${said}; ${queued.map((t) => WHAT[t.kind] || t.kind).join(' and ')} queued` : `${p.name}: ${said}`);
      follow(p.name, queued, changed);
      await changed();
    } catch (e) { notice(`${p.name}: ${e.message}`, 'error'); }
  });
  const act = (action, question, said) => run(question, 'action', { action }, said);
  const out = ['standby', 'drained', 'retired'].includes(p.role);
  return h('span', { class: 'actions' },
    !out ? h('button', { type: 'button', class: 'drain', onclick: () => act('drain', `Drain ${p.name}? Its users move to other proxies, and nothing automatic uses it until you undrain it.`, 'drained') }, 'Drain') : null,
    p.role === 'standby' ? h('button', { type: 'button', class: 'promote', onclick: () => act('promote', `Promote ${p.name} to a fallback proxy?`, 'promoted') }, 'Promote') : null,
    p.role === 'drained' ? h('button', { type: 'button', class: 'undrain', onclick: () => act('undrain', `Undrain ${p.name}? It becomes a fallback proxy again.`, 'undrained') }, 'Undrain') : null,
    p.role === 'retired' ? h('button', { type: 'button', class: 'reactivate', onclick: () => act('reactivate', `Reactivate ${p.name}? It becomes a standby the rebalancer may promote.`, 'reactivated') }, 'Reactivate') : null,
    p.role !== 'gateway' ? h('button', { type: 'button', class: 'gateway', onclick: () => run(`Make ${p.name} a public gateway? Anyone asking /json will see its address, and its users move elsewhere.`, 'role', { role: 'gateway' }, 'now a gateway') }, 'Make gateway') : null,
    p.role !== 'retired' ? h('button', { type: 'button', class: 'danger retire', onclick: () => act('retire', `Retire ${p.name}? It is drained and its retire command runs.`, 'retired') }, 'Retire') : null,
    h('button', { type: 'button', class: 'danger revoke', onclick: () => run(`Revoke ${p.name}'s secret? It leaves service now and its heartbeats are refused until you rotate its secret.`, 'revoke', {}, 'secret revoked') }, 'Revoke'));
}
