// The rebalancer: its latest plans with their reasons. A dry run shows what it would do now and
// is kept: "Apply this plan" carries out exactly that plan, or says what changed since and offers
// a fresh dry run. "Rebalance now" plans from the live state and carries it out at once.

import { get, post } from '../api.js';
import { h, replace, table, dateMs, notice, confirmThen, number } from '../ui.js';

export const title = 'Rebalancer';

// `applied`: what to do once the plan is carried out; `rerun`: a fresh dry run (offered when the
// fleet changed since this one).
function planView(plan, id, applied, rerun) {
  const moves = plan.moves.slice(0, 200);
  const outcome = h('div', { class: 'plan-outcome' });
  const applyThis = h('button', { type: 'button', class: 'primary apply-plan', onclick: () => confirmThen(`Apply dry run #${plan.id} as it stands?`, async () => {
    try {
      const done = await post(`/api/v1/admin/rebalance/plans/${plan.id}/apply`);
      notice(`Plan #${done.id} applied: ${done.moves.length} moves`);
      await applied();
    } catch (e) {
      if (e.code !== 'plan_stale') return notice(e.message, 'error');
      // Nothing was applied: say what changed and offer the plan the fleet calls for now.
      replace(outcome, h('p', { class: 'stale', role: 'alert' }, e.message),
        h('button', { type: 'button', class: 'dry-run-again', onclick: rerun }, 'Dry run again'));
    }
  }) }, 'Apply this plan');
  return h('section', { class: 'plan', id },
    h('h3', {}, plan.dry_run ? `Dry run #${plan.id}` : `Plan #${plan.id}`, ' · ', dateMs(plan.at_ms), ' · ', plan.trigger,
      ` · ${number(plan.moves.length)} moves, ${number(plan.promoted.length)} promoted, ${number(plan.provisioned.length)} provisioning requests, ${number(plan.retired.length)} drained, ${number(plan.unplaced)} unplaced`),
    plan.promoted.length ? h('ul', {}, plan.promoted.map((p) => h('li', {}, `Promote ${p.proxy}: ${p.reason}`))) : null,
    plan.provisioned.length ? h('ul', {}, plan.provisioned.map((p) => h('li', {}, `Provision a proxy: ${p.reason}`))) : null,
    plan.retired.length ? h('ul', {}, plan.retired.map((d) => h('li', {}, `Drain ${d.proxy} (${d.action}): ${d.reason}`))) : null,
    table([['User', (m) => h('a', { href: `#/users/${m.user}` }, `#${m.user}`)], ['From', (m) => m.from || '–'], ['To', (m) => m.to], ['Why', (m) => m.reason]],
      moves, 'No user moves.'),
    plan.moves.length > moves.length ? h('p', { class: 'muted' }, `…and ${number(plan.moves.length - moves.length)} more moves.`) : null,
    plan.dry_run && applied ? applyThis : null, outcome);
}

export async function render(main) {
  const preview = h('div', { id: 'dry-run' });
  const history = h('div', { id: 'plans' });
  async function dryRunNow() {
    try {
      const plan = await post('/api/v1/admin/rebalance?dry_run=true');
      replace(preview, planView(plan, 'dry-run-plan', async () => { replace(preview); await load(); }, dryRunNow));
      await load();
    } catch (e) { notice(e.message, 'error'); }
  }
  const dryRun = h('button', { type: 'button', id: 'dry-run-now', onclick: dryRunNow }, 'Dry run now');
  const apply = h('button', { type: 'button', class: 'primary', onclick: () => confirmThen('Rebalance now? Users whose proxy changes get a new config.', async () => {
    try {
      const plan = await post('/api/v1/admin/rebalance?dry_run=false');
      notice(`Plan #${plan.id} applied: ${plan.moves.length} moves`);
      replace(preview);
      await load();
    } catch (e) { notice(e.message, 'error'); }
  }) }, 'Rebalance now');
  replace(main, h('h1', {}, title),
    h('p', { class: 'muted' }, 'A dry run shows what the rebalancer would do now and is kept: apply it as it stands, or learn what changed since. Rebalance now plans from the live state and carries it out.'),
    h('div', { class: 'actions' }, dryRun, apply), preview, h('h2', {}, 'Latest plans'), history);

  async function load() {
    const { plans } = await get('/api/v1/admin/rebalance/plans?limit=10');
    replace(history, plans.length ? plans.map((p) => planView(p, undefined, load, dryRunNow)) : h('p', { class: 'empty' }, 'No plan yet.'));
  }
  await load();
}
