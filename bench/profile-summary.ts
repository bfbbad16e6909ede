/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time, and self
 * time grouped by where the code lives (a package under node_modules, a file of ours, node's internals).
 * Usage: `npx tsx bench/profile-summary.ts <file.cpuprofile> [top]`; the bench calls it with BENCH_PROFILE=1.
 * `--diff <a> <requests a> <b> <requests b>` compares two profiles per request (see diffProfiles()).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/** Where a script lives, without the machine's own directories. */
function place(url: string): string {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) return url.slice(nm + '/node_modules/'.length);
  for (const root of ['/lib/', '/bench/', '/types/']) {
    const i = url.lastIndexOf(root);
    if (i !== -1) return url.slice(i + 1);
  }
  return url
    .replace(/^file:\/\//, '')
    .split('/')
    .slice(-2)
    .join('/');
}

function area(url: string): string {
  const p = place(url);
  if (p.startsWith('node:') || p === '(native)') return p.startsWith('node:') ? 'node internals' : '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const parts = p.split('/');
    return `dep: ${parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`;
  }
  return p;
}

interface SelfTimes {
  profile: CpuProfile;
  /** Microseconds of self time by function (`name  place:line`) and by area. */
  byFunction: Map<string, number>;
  byArea: Map<string, number>;
  total: number;
  idle: number;
}

function selfTimes(file: string): SelfTimes {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const self = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    // timeDeltas[i] is the time between sample i-1 and i: the time spent where sample i-1 was taken.
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = profile.timeDeltas[i + 1] ?? 0;
      self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt);
    }
  } else {
    for (const n of profile.nodes) self.set(n.id, n.hitCount ?? 0);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let idle = 0;
  for (const n of profile.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') idle += t;
    const key = url
      ? `${functionName || '(anonymous)'}  ${place(url)}:${lineNumber + 1}`
      : functionName || '(anonymous)';
    byFunction.set(key, (byFunction.get(key) ?? 0) + t);
    const a = url ? area(url) : functionName;
    byArea.set(a, (byArea.get(a) ?? 0) + t);
  }
  return { profile, byFunction, byArea, total, idle };
}

export function summariseProfile(file: string, top = 30): string {
  const { profile, byFunction, byArea, total, idle } = selfTimes(file);
  const busy = total - idle || 1;
  const fmt = (entries: Map<string, number>, n: number) =>
    [...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(
        ([k, t]) =>
          `${(t / 1000).toFixed(0).padStart(8)} ms ${((t / total) * 100).toFixed(1).padStart(5)}% ${((t / busy) * 100).toFixed(1).padStart(5)}%busy  ${k}`,
      )
      .join('\n');
  return [
    `profiled ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s; idle ${((idle / total) * 100).toFixed(1)}%`,
    `top ${top} functions by self time (ms, % of all samples, % of non-idle):`,
    fmt(byFunction, top),
    '',
    'self time by area:',
    fmt(byArea, 25),
  ].join('\n');
}

/**
 * Self time per request of two profiles, function by function, largest differences first: where one
 * process spends more than another on each request it served (the gateway against the floor, a build
 * against the one before). The request counts are what the bench sent to each process while it was
 * profiled. Each profile also holds its process' start (module loading: `readFileUtf8`, `wrapSafe`,
 * `compileSourceTextModule`), which the gateway spends more on; several rounds make it small.
 */
export function diffProfiles(a: string, requestsA: number, b: string, requestsB: number, top = 25): string {
  const sa = selfTimes(a).byFunction;
  const sb = selfTimes(b).byFunction;
  sa.delete('(idle)');
  sb.delete('(idle)');
  const rows = [...new Set([...sa.keys(), ...sb.keys()])].map((key) => {
    const perA = (sa.get(key) ?? 0) / requestsA;
    const perB = (sb.get(key) ?? 0) / requestsB;
    return { key, perA, perB, diff: perA - perB };
  });
  rows.sort((x, y) => y.diff - x.diff);
  const line = (r: (typeof rows)[number]) =>
    `${r.diff.toFixed(2).padStart(8)} ${r.perA.toFixed(2).padStart(8)} ${r.perB.toFixed(2).padStart(8)}  ${r.key}`;
  const sum = (m: Map<string, number>, n: number) => [...m.values()].reduce((x, y) => x + y, 0) / n;
  return [
    `busy µs per request: ${sum(sa, requestsA).toFixed(1)} (first) against ${sum(sb, requestsB).toFixed(1)} (second)`,
    `  diff    first   second  function (µs of self time per request)`,
    ...rows.slice(0, top).map(line),
    '  ...',
    ...rows.slice(-Math.ceil(top / 2)).map(line),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  if (args[0] === '--diff' && args.length >= 5) {
    const [, a, nA, b, nB, top] = args;
    console.log(diffProfiles(a!, Number(nA), b!, Number(nB), top ? Number(top) : 25));
  } else if (args[0] && args[0] !== '--diff') {
    console.log(summariseProfile(args[0], args[1] ? Number(args[1]) : 30));
  } else {
    console.error(
      'usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]\n' +
        '       tsx bench/profile-summary.ts --diff <a.cpuprofile> <requests a> <b.cpuprofile> <requests b> [top]',
    );
    process.exit(2);
  }
}
