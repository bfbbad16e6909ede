/**
 * Precision and recall of the built-in detectors on the labelled corpora in test/fixtures. Shared by the
 * `measure:*` scripts (which print) and the tests (which assert thresholds), so both report one number.
 */
import { readFileSync } from 'node:fs';
import { scoreInjection } from '../../lib/injection-patterns.js';
import type { PIIType } from '../../lib/pii-detectors.js';
import { PII_TYPES, findPII } from '../../lib/pii-detectors.js';

const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url);

export interface TypeStats {
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
}

export interface PIIReport {
  perType: Record<PIIType, TypeStats>;
  falsePositives: { text: string; type: PIIType; value: string }[];
  misses: { text: string; type: PIIType; value: string }[];
  lines: number;
}

function ratio(a: number, b: number): number {
  return b === 0 ? 1 : a / b;
}

/** `set`: only the lines written for tuning (`dev`) or only those written afterwards, unseen (`holdout`). */
export function measurePII(set?: 'dev' | 'holdout'): PIIReport {
  const corpus = JSON.parse(readFileSync(fixture('pii-corpus.json'), 'utf8')) as {
    text: string;
    entities: { type: PIIType; value: string }[];
    set: 'dev' | 'holdout';
  }[];
  const lines = set ? corpus.filter((c) => c.set === set) : corpus;
  const counts = Object.fromEntries(PII_TYPES.map((t) => [t, { tp: 0, fp: 0, fn: 0 }])) as Record<
    PIIType,
    { tp: number; fp: number; fn: number }
  >;
  const falsePositives: PIIReport['falsePositives'] = [];
  const misses: PIIReport['misses'] = [];
  for (const { text, entities } of lines) {
    const expected = entities.map((e) => `${e.type}\u0000${e.value}`);
    const found = findPII(text).map((m) => `${m.type}\u0000${m.value}`);
    for (const f of found) {
      const [type, value] = f.split('\u0000') as [PIIType, string];
      if (expected.includes(f)) counts[type].tp++;
      else {
        counts[type].fp++;
        falsePositives.push({ text, type, value });
      }
    }
    for (const e of expected) {
      if (found.includes(e)) continue;
      const [type, value] = e.split('\u0000') as [PIIType, string];
      counts[type].fn++;
      misses.push({ text, type, value });
    }
  }
  const perType = Object.fromEntries(
    PII_TYPES.map((t) => {
      const c = counts[t];
      return [t, { ...c, precision: ratio(c.tp, c.tp + c.fp), recall: ratio(c.tp, c.tp + c.fn) }];
    }),
  ) as Record<PIIType, TypeStats>;
  return { perType, falsePositives, misses, lines: lines.length };
}

export interface InjectionReport extends TypeStats {
  threshold: number;
  falsePositives: { text: string; score: number; signals: string[] }[];
  misses: { text: string; score: number }[];
  attacks: number;
  benign: number;
}

export function measureInjection(threshold = 0.5, set?: 'dev' | 'holdout'): InjectionReport {
  const all = JSON.parse(readFileSync(fixture('injection-corpus.json'), 'utf8')) as {
    text: string;
    attack: boolean;
    set: 'dev' | 'holdout';
  }[];
  const corpus = set ? all.filter((c) => c.set === set) : all;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  const falsePositives: InjectionReport['falsePositives'] = [];
  const misses: InjectionReport['misses'] = [];
  for (const { text, attack } of corpus) {
    const { score, signals } = scoreInjection(text);
    const flagged = score >= threshold;
    if (flagged && attack) tp++;
    else if (flagged) {
      fp++;
      falsePositives.push({ text, score, signals });
    } else if (attack) {
      fn++;
      misses.push({ text, score });
    }
  }
  const attacks = corpus.filter((c) => c.attack).length;
  return {
    threshold,
    tp,
    fp,
    fn,
    precision: ratio(tp, tp + fp),
    recall: ratio(tp, tp + fn),
    falsePositives,
    misses,
    attacks,
    benign: corpus.length - attacks,
  };
}
