/**
 * The dashboard's HTML. Everything it loads comes from the dashboard's own assets route, by URLs relative
 * to the page, so it works under any mount path and behind a proxy that strips a prefix; nothing is
 * fetched from another host.
 */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function tile(name: string, label: string): string {
  return `<div class="tile" data-testid="tile-${name}" data-value="">
        <div class="label">${label}</div>
        <div class="value">&ndash;</div>
        <div class="sub"></div>
      </div>`;
}

function chart(id: string, title: string): string {
  return `<section class="panel"><h2>${title}</h2><div class="chart-box"><canvas id="${id}" role="img" aria-label="${title} over time"></canvas></div></section>`;
}

function breakdown(id: string, title: string, first: string): string {
  return `<section class="panel"><h2>${title}</h2><div class="table-wrap"><table id="${id}" class="breakdown">
        <thead><tr><th>${first}</th><th>Requests</th><th>Errors</th><th>Tokens</th><th>Cost</th><th>Avg latency</th></tr></thead>
        <tbody></tbody></table></div></section>`;
}

export interface PageOptions {
  /** Relative prefix from the page's URL to the dashboard's root, e.g. `dashboard/` or `` (ends in `/`). */
  base: string;
  /** How often the page polls, in milliseconds. */
  pollMs: number;
}

export function renderPage(options: PageOptions): string {
  const base = escapeHtml(options.base);
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <meta name="referrer" content="no-referrer">
  <meta name="dashboard-base" content="${base}">
  <title>AI gateway dashboard</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="${base}assets/style.css">
  <script src="${base}assets/chart.umd.js" defer></script>
  <script src="${base}assets/app.js" defer></script>
</head>
<body data-poll-ms="${Math.max(250, Math.trunc(options.pollMs))}">
  <header>
    <h1>AI gateway usage</h1>
    <div class="periods" role="group" aria-label="Period">
      <button type="button" data-period="1h" aria-pressed="false">1h</button>
      <button type="button" data-period="24h" aria-pressed="true">24h</button>
      <button type="button" data-period="7d" aria-pressed="false">7d</button>
      <button type="button" data-period="30d" aria-pressed="false">30d</button>
    </div>
    <div class="status" aria-live="polite"><span id="live-dot" class="dot"></span><span id="live-text">Loading&hellip;</span></div>
  </header>
  <main>
    <div id="banner" class="banner" role="status" hidden>
      <h2 id="banner-title"></h2>
      <p id="banner-message"></p>
    </div>
    <div id="analytics">
      <div class="tiles">
      ${tile('requests', 'Requests')}
      ${tile('cost', 'Cost')}
      ${tile('cost-saved', 'Saved by cache')}
      ${tile('latency-avg', 'Avg latency')}
      ${tile('latency-p95', 'p95 latency')}
      ${tile('error-rate', 'Error rate')}
      ${tile('cache-hit-rate', 'Cache hit rate')}
      </div>
      <p id="charts-note" class="banner" hidden>Charts are unavailable: the charting library could not be loaded.</p>
      <div class="charts">
        ${chart('chart-requests', 'Requests')}
        ${chart('chart-cost', 'Cost (USD)')}
        ${chart('chart-latency', 'Average latency')}
        ${chart('chart-errors', 'Errors')}
      </div>
      <div class="grid2">
        ${breakdown('by-provider', 'By provider', 'Provider')}
        ${breakdown('by-model', 'By model', 'Model')}
      </div>
      <div class="stack">
        ${breakdown('by-user', 'By user', 'User')}
      </div>
      <section class="panel stack"><h2>Latest requests</h2><div class="table-wrap"><table id="latest" data-testid="latest-requests">
        <thead><tr><th>Time</th><th>User</th><th>Provider / model</th><th>Status</th><th>Tokens</th><th>Cost</th><th>Latency</th><th>Flags</th></tr></thead>
        <tbody></tbody></table></div>
        <p class="note">Newest first, whatever the period. Message contents are never stored.</p></section>
    </div>
    <section class="panel"><h2>Provider health</h2><div class="table-wrap"><table id="health">
      <thead><tr><th>Provider</th><th>Circuit</th><th>Recent failures</th><th>Keys active</th><th>Attempts</th><th>Attempt errors</th></tr></thead>
      <tbody></tbody></table></div></section>
  </main>
  <footer><span id="range"></span></footer>
</body>
</html>
`;
}
