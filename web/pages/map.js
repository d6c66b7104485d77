// Every place the fleet has gateways, on an equirectangular world map (Natural Earth's land,
// assets/admin/world-land.svg): one dot per city, sized by its proxy count and coloured by
// fullness, ringed when proxies there are blocked in some country (the block layer). Places
// whose dots would overlap are drawn as one cluster dot with the number of places on it (its
// tooltip names them); the table below gives every place.

import { get } from '../api.js';
import { h, replace, svg, table, number, fullness } from '../ui.js';

export const title = 'Map';
const W = 720;
const H = 360;
const x = (lon) => ((lon + 180) / 360) * W;
const y = (lat) => ((90 - lat) / 180) * H;
const level = (f) => (f > 0.9 ? 'hot' : f > 0.7 ? 'warm' : 'ok');

function grid() {
  const lines = [];
  for (let lon = -180; lon <= 180; lon += 30) lines.push(svg('line', { x1: x(lon), y1: 0, x2: x(lon), y2: H, class: lon === 0 ? 'axis' : '' }));
  for (let lat = -60; lat <= 60; lat += 30) lines.push(svg('line', { x1: 0, y1: y(lat), x2: W, y2: y(lat), class: lat === 0 ? 'axis' : '' }));
  return svg('g', { class: 'grid' }, ...lines);
}

const radius = (proxies) => 3 + Math.sqrt(proxies) * 2;

/// Places whose dots would overlap, merged: the biggest first, each later place joins the first
/// cluster it would touch (the cluster sits at the proxy-weighted mean of its places).
function clusters(places) {
  const found = [];
  for (const p of [...places].sort((a, b) => b.proxies - a.proxies)) {
    const px = x(p.lon); const py = y(p.lat);
    const near = found.find((c) => Math.hypot(c.x - px, c.y - py) < radius(c.proxies) + radius(p.proxies));
    if (!near) {
      found.push({ x: px, y: py, proxies: p.proxies, clients: p.clients, capacity: p.capacity, places: [p] });
      continue;
    }
    const weight = near.proxies + p.proxies || 1;
    near.x = (near.x * near.proxies + px * p.proxies) / weight;
    near.y = (near.y * near.proxies + py * p.proxies) / weight;
    near.proxies += p.proxies; near.clients += p.clients; near.capacity += p.capacity;
    near.places.push(p);
  }
  return found;
}

export async function render(main) {
  const map = h('div', { id: 'world' });
  const list = h('div', { id: 'places' });
  const overrides = h('div', { id: 'overrides' });
  replace(main, h('h1', {}, title), map, list,
    h('h2', {}, 'Cities chosen by hand'),
    h('p', { class: 'muted' }, 'Clients that picked a gateway city themselves in /json (type=refresh): many there means the recommendation does not serve them. Counted by the primary and every edge.'),
    overrides);

  async function load() {
    const { places } = await get('/api/v1/admin/map');
    const blockedText = (p) => Object.entries(p.blocked || {}).map(([c, n]) => `${n} in ${c}`).join(', ');
    const dots = clusters(places.filter((p) => p.lat !== null && p.lon !== null)).flatMap((c) => {
      const r = radius(c.proxies);
      const blocked = c.places.map(blockedText).filter(Boolean).join(', ');
      const fullness = c.capacity ? c.clients / c.capacity : 0;
      const names = c.places.map((p) => `${[p.city, p.country].filter(Boolean).join(', ') || 'unknown'}: ${p.proxies} proxies, ${p.clients} / ${p.capacity} clients`);
      const title = svg('title', {}, document.createTextNode(`${names.join('\n')}${blocked ? `\nblocked: ${blocked}` : ''}`));
      const dot = svg('circle', { cx: c.x.toFixed(1), cy: c.y.toFixed(1), r: r.toFixed(1), class: `dot ${level(fullness)}${c.places.length > 1 ? ' cluster' : ''}` }, title);
      const count = c.places.length > 1
        ? [svg('text', { x: c.x.toFixed(1), y: (c.y + 3).toFixed(1), class: 'cluster-count', 'text-anchor': 'middle' }, document.createTextNode(String(c.places.length)))]
        : [];
      // The block layer: a ring around places with proxies blocked somewhere.
      const ring = blocked
        ? [svg('circle', { cx: c.x.toFixed(1), cy: c.y.toFixed(1), r: (r + 3).toFixed(1), class: 'blocked-ring' })]
        : [];
      return [dot, ...count, ...ring];
    });
    const legend = h('p', { id: 'map-legend', class: 'legend' },
      h('span', { class: 'dot-key ok' }), ' room ', h('span', { class: 'dot-key warm' }), ' over 70% full ',
      h('span', { class: 'dot-key hot' }), ' over 90% full ', h('span', { class: 'ring-key' }), ' proxies blocked in some country · ',
      'size: proxies there · a number: nearby places drawn as one (hover for each)');
    replace(map, svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'world', role: 'img', 'aria-label': 'gateways by location' },
      svg('rect', { x: 0, y: 0, width: W, height: H, class: 'sea' }),
      svg('image', { href: 'world-land.svg', x: 0, y: 0, width: W, height: H }), grid(), ...dots), legend);
    replace(list, table([
      ['Place', (p) => [p.city, p.country].filter(Boolean).join(', ') || 'unknown'],
      ['Proxies', (p) => number(p.proxies)],
      ['Clients', (p) => fullness(p.clients, p.capacity)],
      ['Blocked', (p) => blockedText(p) || '–'],
      ['Position', (p) => (p.lat === null ? '–' : `${p.lat.toFixed(1)}, ${p.lon.toFixed(1)}`)],
    ], places, 'No proxy registered.'));
    const counted = await get('/api/v1/admin/gateways/overrides');
    const lastDays = (city, n) => {
      const since = new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);
      return (counted.by_day[city] || []).filter((d) => d.day > since).reduce((sum, d) => sum + d.count, 0);
    };
    replace(overrides, table([
      ['City', ([city]) => city],
      ['Last 7 days', ([city]) => number(lastDays(city, 7))],
      ['Last 90 days', ([city]) => number(lastDays(city, 90))],
      ['In all', ([, total]) => number(total)],
    ], Object.entries(counted.overrides).sort((a, b) => b[1] - a[1]), 'No client chose a city by hand.'));
  }
  await load();
  return load;
}
