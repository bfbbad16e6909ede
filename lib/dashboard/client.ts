/**
 * The dashboard's browser script, embedded as a string (see style.ts for why). Plain ES2017 without
 * modules or a build step, so it runs as served. Written without template literals so that it can live
 * inside one; every figure is written with textContent, never as HTML, because user ids and model names
 * come from clients.
 */
export const APP_JS = String.raw`
(function () {
  'use strict';

  var PERIODS = ['1h', '24h', '7d', '30d'];
  var body = document.body;
  var baseMeta = document.querySelector('meta[name="dashboard-base"]');
  var base = new URL((baseMeta && baseMeta.getAttribute('content')) || './', location.href);
  var pollMs = Number(body.getAttribute('data-poll-ms')) || 2000;
  var period = readPeriod();
  var charts = {};
  var timer = null;
  var inFlight = false;
  var again = false;

  function readPeriod() {
    var stored = null;
    try { stored = sessionStorage.getItem('ai-gateway-dashboard-period'); } catch (e) { stored = null; }
    return PERIODS.indexOf(stored) >= 0 ? stored : '24h';
  }

  function $(id) { return document.getElementById(id); }

  function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }

  // ---- formatting -------------------------------------------------------------------------------

  function fmtInt(n) { return Math.round(n).toLocaleString('en-US'); }
  function count(n, one, many) { return fmtInt(n) + ' ' + (n === 1 ? one : many); }
  function fmtPct(r) { return (r * 100).toFixed(1) + '%'; }
  function fmtMs(ms) {
    if (!ms) return '0 ms';
    return ms < 1000 ? Math.round(ms) + ' ms' : (ms / 1000).toFixed(2) + ' s';
  }
  function fmtCost(v) {
    if (!v) return '$0.00';
    if (v < 0.01) return '$' + v.toFixed(6);
    if (v < 1) return '$' + v.toFixed(4);
    return '$' + v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function fmtTime(iso, p) {
    var d = new Date(iso);
    if (p === '1h' || p === '24h') return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (p === '7d') return d.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' });
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  }

  // ---- state banners ----------------------------------------------------------------------------

  function showBanner(kind, title, message) {
    var banner = $('banner');
    banner.hidden = false;
    banner.className = 'banner' + (kind === 'error' ? ' error' : '');
    banner.setAttribute('data-state', kind);
    setText($('banner-title'), title);
    setText($('banner-message'), message);
  }
  function hideBanner() { $('banner').hidden = true; }

  function setLive(ok, text) {
    var dot = $('live-dot');
    dot.className = 'dot ' + (ok ? 'live' : 'stale');
    setText($('live-text'), text);
  }

  // ---- tiles ------------------------------------------------------------------------------------

  function tile(name, value, text, sub) {
    var el = document.querySelector('[data-testid="tile-' + name + '"]');
    if (!el) return;
    el.setAttribute('data-value', String(value));
    setText(el.querySelector('.value'), text);
    setText(el.querySelector('.sub'), sub || '');
  }

  function renderTiles(s) {
    tile('requests', s.total_requests, fmtInt(s.total_requests),
      fmtInt(s.streams) + ' streamed, ' + fmtInt(s.fallbacks) + ' fell back');
    tile('cost', s.total_cost, fmtCost(s.total_cost), count(s.total_tokens, 'token', 'tokens'));
    tile('cost-saved', s.total_cost_saved, fmtCost(s.total_cost_saved), 'by ' + count(s.cache_hits, 'cache hit', 'cache hits'));
    tile('latency-avg', s.avg_latency_ms, fmtMs(s.avg_latency_ms),
      s.avg_ttft_ms === null ? 'per request' : 'first token ' + fmtMs(s.avg_ttft_ms));
    tile('latency-p95', s.p95_latency_ms, fmtMs(s.p95_latency_ms),
      'p50 ' + fmtMs(s.p50_latency_ms) + ', p99 ' + fmtMs(s.p99_latency_ms));
    tile('error-rate', s.error_rate, fmtPct(s.error_rate),
      count(s.total_errors, 'error', 'errors') + ', ' + fmtInt(s.rate_limited) + ' rate-limited');
    tile('cache-hit-rate', s.cache_hit_rate, fmtPct(s.cache_hit_rate), count(s.cache_hits, 'hit', 'hits'));
  }

  // ---- tables -----------------------------------------------------------------------------------

  function cell(row, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function fillTable(id, rows, columns, emptyText) {
    var tbody = document.querySelector('#' + id + ' tbody');
    var fresh = document.createDocumentFragment();
    if (!rows.length) {
      var empty = document.createElement('tr');
      var td = cell(empty, emptyText, 'empty');
      td.colSpan = columns;
      fresh.appendChild(empty);
    }
    rows.forEach(function (r) { fresh.appendChild(r); });
    tbody.replaceChildren(fresh);
  }

  function breakdownRows(list) {
    return list.map(function (b) {
      var tr = document.createElement('tr');
      cell(tr, b.name === null ? '(none)' : b.name);
      cell(tr, fmtInt(b.requests));
      cell(tr, b.errors ? fmtInt(b.errors) + ' (' + fmtPct(b.error_rate) + ')' : '0', b.errors ? 'bad' : '');
      cell(tr, fmtInt(b.tokens));
      cell(tr, fmtCost(b.cost));
      cell(tr, fmtMs(b.avg_latency_ms));
      return tr;
    });
  }

  function renderTables(s) {
    fillTable('by-provider', breakdownRows(s.by_provider), 6, 'No requests in this period.');
    fillTable('by-model', breakdownRows(s.by_model), 6, 'No requests in this period.');
    fillTable('by-user', breakdownRows(s.by_user), 6, 'No requests in this period.');
  }

  function renderHealth(providers, upstream) {
    var attempts = {};
    (upstream || []).forEach(function (u) { attempts[u.name] = u; });
    var rows = providers.map(function (p) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-provider', p.name);
      cell(tr, p.name + (p.type !== p.name ? ' (' + p.type + ')' : ''));
      var state = p.enabled ? p.circuit.state : 'disabled';
      var chipCell = cell(tr, '');
      var chip = document.createElement('span');
      chip.className = 'chip ' + state;
      chip.setAttribute('data-testid', 'circuit-' + p.name);
      chip.textContent = state.replace('_', ' ') +
        (p.circuit.retry_in_ms ? ' (' + Math.ceil(p.circuit.retry_in_ms / 1000) + ' s)' : '');
      chipCell.appendChild(chip);
      cell(tr, fmtInt(p.circuit.recent_failures));
      cell(tr, p.keys_active + '/' + p.keys_total);
      var a = attempts[p.name];
      cell(tr, a ? fmtInt(a.attempts) : '0');
      cell(tr, a ? fmtPct(a.error_rate) : '-', a && a.errors ? 'bad' : '');
      return tr;
    });
    fillTable('health', rows, 6, 'No providers configured.');
  }

  function badge(parent, text, cls, testid) {
    var chip = document.createElement('span');
    chip.className = 'chip ' + cls;
    chip.setAttribute('data-testid', testid);
    chip.textContent = text;
    parent.appendChild(chip);
  }

  // One row per request, newest first. Everything is an id, a count or a timing; contents are not stored.
  function renderLatest(recent) {
    var rows = recent.map(function (r) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'latest-row');
      tr.setAttribute('data-request-id', r.request_id);
      tr.setAttribute('data-time', r.time);
      // 24-hour clock: "14:03:27" is the narrowest time that still tells requests apart.
      var time = cell(tr, new Date(r.time).toLocaleTimeString([], {
        hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }));
      time.title = new Date(r.time).toLocaleString();
      cell(tr, r.user === null ? '(none)' : r.user);
      // The provider in its own span, so that a phone can show the model alone.
      var route = cell(tr, '', 'route');
      var provider = document.createElement('span');
      provider.className = 'provider';
      provider.textContent = (r.provider || '-') + ' / ';
      route.appendChild(provider);
      route.appendChild(document.createTextNode(r.model || '-'));
      route.title = route.textContent;
      // A failed request shows what went wrong (the error kind); a good one its HTTP status.
      var failed = r.error_kind !== null;
      var status = cell(tr, failed ? '' : String(r.status || ''), failed ? 'bad' : '');
      if (failed) {
        // The code in its own span, so that a phone can show the error kind alone.
        var code = document.createElement('span');
        code.className = 'code';
        code.textContent = r.status ? r.status + ' ' : '';
        status.appendChild(code);
        status.appendChild(document.createTextNode(r.error_kind));
      }
      status.setAttribute('data-testid', 'latest-status');
      var tokens = cell(tr, fmtInt(r.prompt_tokens + r.completion_tokens));
      tokens.title = fmtInt(r.prompt_tokens) + ' prompt + ' + fmtInt(r.completion_tokens) + ' completion';
      var cost = cell(tr, fmtCost(r.cost));
      if (r.cost_saved) cost.title = 'Saved ' + fmtCost(r.cost_saved) + ' by the cache';
      var latency = cell(tr, fmtMs(r.latency_ms));
      if (r.ttft_ms !== null) latency.title = 'First token after ' + fmtMs(r.ttft_ms);
      var flags = cell(tr, '', 'flags');
      if (r.cached) badge(flags, 'HIT', 'hit', 'badge-cache-hit');
      if (r.stream) badge(flags, 'stream', 'stream', 'badge-stream');
      if (r.rate_limited) badge(flags, 'rate-limited', 'limited', 'badge-rate-limited');
      return tr;
    });
    fillTable('latest', rows, 8, 'No requests yet.');
  }

  // ---- charts -----------------------------------------------------------------------------------

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  var CHARTS = [
    { id: 'chart-requests', key: 'requests', type: 'bar', color: '--accent', integer: true },
    { id: 'chart-cost', key: 'cost', type: 'line', color: '--good', money: true },
    { id: 'chart-latency', key: 'avg_latency_ms', type: 'line', color: '--warn', gaps: true },
    { id: 'chart-errors', key: 'errors', type: 'bar', color: '--bad', integer: true },
  ];

  function makeChart(spec) {
    var canvas = $(spec.id);
    var color = css(spec.color);
    return new window.Chart(canvas, {
      type: spec.type,
      data: { labels: [], datasets: [{
        data: [],
        borderColor: color,
        backgroundColor: spec.type === 'bar' ? color : 'transparent',
        borderWidth: 2,
        // Points only where a line can have gaps: a lone bucket with data must still show.
        pointRadius: spec.gaps ? 2 : 0,
        tension: 0.25,
        fill: false,
      }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (ctx) {
            var v = ctx.parsed.y;
            return spec.money ? fmtCost(v) : spec.integer ? fmtInt(v) : fmtMs(v);
          } } },
        },
        scales: {
          x: { grid: { display: false }, ticks: { color: css('--muted'), maxTicksLimit: 6, maxRotation: 0 } },
          y: {
            beginAtZero: true,
            grid: { color: css('--grid') },
            ticks: {
              color: css('--muted'),
              maxTicksLimit: 5,
              precision: spec.integer ? 0 : undefined,
              callback: function (v) { return spec.money ? fmtCost(v) : spec.integer ? v : fmtMs(v); },
            },
          },
        },
      },
    });
  }

  function renderCharts(points, p) {
    if (typeof window.Chart !== 'function') {
      $('charts-note').hidden = false;
      return;
    }
    var labels = points.map(function (pt) { return fmtTime(pt.t, p); });
    CHARTS.forEach(function (spec) {
      if (!charts[spec.id]) charts[spec.id] = makeChart(spec);
      var chart = charts[spec.id];
      chart.data.labels = labels;
      // A bucket without requests has no latency: a gap, not a misleading 0 ms.
      chart.data.datasets[0].data = points.map(function (pt) {
        return spec.gaps && !pt.requests ? null : pt[spec.key];
      });
      chart.update('none');
    });
  }

  // Colours come from CSS variables; a light/dark switch must repaint the charts with the new ones.
  function restyleCharts() {
    Object.keys(charts).forEach(function (id) { charts[id].destroy(); delete charts[id]; });
    if (lastTimeseries) renderCharts(lastTimeseries.points, lastTimeseries.period);
  }

  // ---- polling ----------------------------------------------------------------------------------

  var lastTimeseries = null;

  function render(data) {
    renderHealth(data.health, data.enabled ? data.summary.upstream_by_provider : []);
    body.setAttribute('data-analytics', data.enabled ? 'enabled' : 'disabled');
    $('analytics').hidden = !data.enabled;
    document.querySelector('.periods').hidden = !data.enabled;
    if (!data.enabled) {
      showBanner('disabled', 'Analytics is disabled', data.message);
      return;
    }
    hideBanner();
    renderTiles(data.summary);
    renderTables(data.summary);
    renderLatest(data.recent);
    lastTimeseries = { points: data.timeseries.points, period: data.period };
    renderCharts(data.timeseries.points, data.period);
    setText($('range'), new Date(data.summary.from).toLocaleString() + ' to ' +
      new Date(data.summary.to).toLocaleString());
  }

  function refresh() {
    // One request at a time; a period picked meanwhile is fetched as soon as the current one ends.
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    clearTimeout(timer);
    var url = new URL('api/overview', base);
    url.searchParams.set('period', period);
    fetch(url.toString(), { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (json) {
          if (res.status === 401 || res.status === 403) {
            var msg = json && json.error ? json.error.message : 'An admin key is required.';
            showBanner('error', 'Not authorized', msg + ' Open this page as ' + location.pathname +
              '?key=<admin key>.');
            setLive(false, 'Not authorized');
            return;
          }
          if (!res.ok || !json) throw new Error((json && json.error && json.error.message) || 'HTTP ' + res.status);
          render(json);
          body.setAttribute('data-updated', json.generated_at);
          setLive(true, 'Live, updated ' + new Date(json.generated_at).toLocaleTimeString());
        });
      })
      .catch(function (err) {
        setLive(false, 'Connection lost, retrying (' + (err && err.message ? err.message : 'error') + ')');
      })
      .then(function () {
        inFlight = false;
        if (again) {
          again = false;
          refresh();
          return;
        }
        // Polling pauses while the tab is hidden; it resumes (and refreshes) when it is shown again.
        if (!document.hidden) timer = setTimeout(refresh, pollMs);
      });
  }

  function selectPeriod(p) {
    period = p;
    try { sessionStorage.setItem('ai-gateway-dashboard-period', p); } catch (e) { /* private mode */ }
    document.querySelectorAll('.periods button').forEach(function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute('data-period') === p));
    });
    refresh();
  }

  document.querySelectorAll('.periods button').forEach(function (b) {
    b.addEventListener('click', function () { selectPeriod(b.getAttribute('data-period')); });
  });
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refresh(); });
  if (window.matchMedia) {
    var scheme = window.matchMedia('(prefers-color-scheme: dark)');
    if (scheme.addEventListener) scheme.addEventListener('change', restyleCharts);
  }
  selectPeriod(period);
})();
`;
