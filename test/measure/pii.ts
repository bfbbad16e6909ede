/** `npm run measure:pii`: precision and recall of the PII detectors per type, with every false positive. */
import { measurePII } from './evaluate.js';

for (const set of ['dev', 'holdout', undefined] as const) {
  const r = measurePII(set);
  console.log(
    `${set ?? 'all'}: ${r.lines} lines; ${r.falsePositives.length} false positives, ${r.misses.length} misses`,
  );
}
const report = measurePII();
console.log(`\nPII corpus (all ${report.lines} lines):`);
console.log('type      tp   fp   fn   precision  recall');
for (const [type, s] of Object.entries(report.perType)) {
  console.log(
    `${type.padEnd(8)} ${String(s.tp).padStart(3)}  ${String(s.fp).padStart(3)}  ${String(s.fn).padStart(3)}   ${s.precision.toFixed(3).padStart(9)}  ${s.recall.toFixed(3).padStart(6)}`,
  );
}
console.log(`\nFalse positives (${report.falsePositives.length}):`);
for (const f of report.falsePositives)
  console.log(`  [${f.type}] ${JSON.stringify(f.value)} in ${JSON.stringify(f.text)}`);
console.log(`\nMisses (${report.misses.length}):`);
for (const m of report.misses)
  console.log(`  [${m.type}] ${JSON.stringify(m.value)} in ${JSON.stringify(m.text)}`);
