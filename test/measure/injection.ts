/** `npm run measure:injection`: precision and recall of the injection scorer, with every false positive. */
import { measureInjection } from './evaluate.js';

const threshold = Number(process.argv[2] ?? 0.5);
for (const set of ['dev', 'holdout'] as const) {
  const s = measureInjection(threshold, set);
  console.log(
    `${set}: precision ${s.precision.toFixed(3)}  recall ${s.recall.toFixed(3)}  (${s.attacks} attacks, ${s.benign} benign)`,
  );
}
const r = measureInjection(threshold);
console.log(`Injection corpus: ${r.attacks} attacks, ${r.benign} benign; threshold ${r.threshold}`);
console.log(
  `tp ${r.tp}  fp ${r.fp}  fn ${r.fn}  precision ${r.precision.toFixed(3)}  recall ${r.recall.toFixed(3)}`,
);
console.log(`\nFalse positives (${r.falsePositives.length}):`);
for (const f of r.falsePositives)
  console.log(`  ${f.score} [${f.signals.join(', ')}] ${JSON.stringify(f.text)}`);
console.log(`\nMisses (${r.misses.length}):`);
for (const m of r.misses) console.log(`  ${m.score} ${JSON.stringify(m.text)}`);
