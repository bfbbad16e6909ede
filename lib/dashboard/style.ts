/**
 * The dashboard's stylesheet, embedded as a string so that the build (which compiles TypeScript only)
 * ships it inside dist/ and the page never needs a file next to the compiled code.
 */
export const STYLE_CSS = String.raw`
:root {
  color-scheme: light dark;
  --bg: #f5f6f8;
  --panel: #ffffff;
  --text: #1b1f24;
  --muted: #5d6673;
  --border: #dde1e6;
  --accent: #2563eb;
  --good: #15803d;
  --warn: #b45309;
  --bad: #b91c1c;
  --chip-bg: #eef2f7;
  --grid: rgba(0, 0, 0, 0.08);
  --shadow: 0 1px 2px rgba(16, 24, 40, 0.06);
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1318;
    --panel: #171c23;
    --text: #e6e9ee;
    --muted: #9aa4b2;
    --border: #2a313b;
    --accent: #60a5fa;
    --good: #4ade80;
    --warn: #fbbf24;
    --bad: #f87171;
    --chip-bg: #222a35;
    --grid: rgba(255, 255, 255, 0.09);
    --shadow: none;
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body {
  background: var(--bg);
  color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  justify-content: space-between;
  gap: 12px;
  padding: 16px 24px;
  border-bottom: 1px solid var(--border);
  background: var(--panel);
}
header h1 { font-size: 18px; margin: 0; font-weight: 650; }
.status { display: flex; align-items: center; gap: 8px; color: var(--muted); font-size: 13px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--muted); display: inline-block; }
.dot.live { background: var(--good); }
.dot.stale { background: var(--bad); }
.periods { display: inline-flex; border: 1px solid var(--border); border-radius: 8px; overflow: hidden; }
.periods button {
  font: inherit;
  color: var(--text);
  background: transparent;
  border: 0;
  padding: 6px 12px;
  cursor: pointer;
}
.periods button + button { border-left: 1px solid var(--border); }
.periods button[aria-pressed="true"] { background: var(--accent); color: #fff; }
main { padding: 20px 24px 40px; max-width: 1400px; margin: 0 auto; }
.banner {
  padding: 14px 16px;
  border-radius: 10px;
  border: 1px solid var(--border);
  background: var(--panel);
  margin-bottom: 16px;
}
.banner.error { border-color: var(--bad); color: var(--bad); }
.banner h2 { margin: 0 0 4px; font-size: 16px; }
.banner p { margin: 0; color: var(--text); }
[hidden] { display: none !important; }
.tiles {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(160px, 1fr));
  gap: 12px;
  margin-bottom: 16px;
}
.tile {
  background: var(--panel);
  border: 1px solid var(--border);
  border-radius: 10px;
  padding: 12px 14px;
  box-shadow: var(--shadow);
  min-width: 0;
}
.tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }
.tile .value {
  font-size: 22px;
  font-weight: 650;
  margin-top: 4px;
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
}
.tile .sub { color: var(--muted); font-size: 12px; margin-top: 2px; }
.charts {
  display: grid;
  grid-template-columns: repeat(2, minmax(0, 1fr));
  gap: 12px;
  margin-bottom: 16px;
}
.panel {
  background: var(--panel);
  border: 1px solid var(--border);
  border-radius: 10px;
  padding: 12px 14px;
  box-shadow: var(--shadow);
  min-width: 0;
}
.panel h2 { font-size: 14px; margin: 0 0 8px; font-weight: 600; }
.panel .note { color: var(--muted); font-size: 12px; margin: 8px 0 0; }
.chart-box { position: relative; height: 220px; }
.grid2 {
  display: grid;
  grid-template-columns: repeat(2, minmax(0, 1fr));
  gap: 12px;
  margin-bottom: 16px;
}
.table-wrap { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 8px; text-align: right; border-bottom: 1px solid var(--border); white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
td.empty { text-align: center; color: var(--muted); padding: 14px; }
.chip {
  display: inline-block;
  padding: 1px 8px;
  border-radius: 999px;
  font-size: 12px;
  background: var(--chip-bg);
}
.chip.closed { color: var(--good); }
.chip.half_open { color: var(--warn); }
.chip.open, .chip.disabled { color: var(--bad); }
.bad { color: var(--bad); }
.stack { margin-bottom: 16px; }
/* Latest requests: a long provider/model is cut (full text in its tooltip) rather than widening the table. */
#latest td.route { max-width: 280px; overflow: hidden; text-overflow: ellipsis; }
/* Names read left to right; only figures are right-aligned. */
#latest th:nth-child(2), #latest td:nth-child(2),
#latest th:nth-child(3), #latest td:nth-child(3),
#latest th:last-child, #latest td.flags { text-align: left; }
#latest .chip + .chip { margin-left: 4px; }
.chip.hit { color: var(--good); font-weight: 600; }
.chip.stream { color: var(--accent); }
.chip.limited { color: var(--warn); }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 0 24px 24px; }
@media (max-width: 900px) {
  .charts, .grid2 { grid-template-columns: minmax(0, 1fr); }
}
@media (max-width: 480px) {
  /* Phones: the columns that matter most (name, requests, errors, cost; circuit state) without scrolling. */
  .breakdown th:nth-child(4), .breakdown td:nth-child(4),
  .breakdown th:nth-child(6), .breakdown td:nth-child(6),
  #health th:nth-child(4), #health td:nth-child(4),
  #health th:nth-child(5), #health td:nth-child(5),
  #latest th:nth-child(2), #latest td:nth-child(2),
  #latest th:nth-child(5), #latest td:nth-child(5),
  #latest th:nth-child(6), #latest td:nth-child(6),
  #latest th:nth-child(7), #latest td:nth-child(7) { display: none; }
  /* Time, model, status (the error kind alone) and flags fit at 390 px; a long model name is cut. */
  #latest { font-size: 13px; }
  #latest th, #latest td { padding: 6px 4px; }
  #latest td.route { max-width: 100px; }
  #latest .provider, #latest td.bad .code { display: none; }
  header { padding: 12px 14px; }
  main { padding: 14px 12px 32px; }
  .tiles { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
  .tile { padding: 10px 12px; }
  .tile .value { font-size: 20px; }
  .chart-box { height: 180px; }
}
`;
