import assert from 'node:assert/strict';
import { spawnTs } from './helpers/spawn.js';

interface Report {
  mode: string;
  applied: boolean;
  pretenuredRounds: number;
}

async function run(mode: 'default' | 'disable' | 'explicit'): Promise<Report> {
  const child = spawnTs('test/fixtures/pretenuring.ts', [mode]);
  assert.equal(await child.exited, 0, child.output());
  return JSON.parse(child.output().trim().split('\n').pop()!) as Report;
}

describe('disablePretenuring() (the CLI calls it at start)', function () {
  this.timeout(60_000);

  it('stops V8 from allocating a long-lived site straight into the old generation', async () => {
    const [pretenuring, disabled] = await Promise.all([run('default'), run('disable')]);
    assert.equal(disabled.applied, true);
    assert.equal(disabled.pretenuredRounds, 0, JSON.stringify(disabled));
    // The control: the same allocations are pretenured when nothing is changed. V8 12 (Node 22) did not
    // pretenure this pattern at all when measured, so the control holds on V8 11 and 13 only.
    const v8Major = Number(process.versions.v8.split('.')[0]);
    if (v8Major !== 12) assert.ok(pretenuring.pretenuredRounds > 0, JSON.stringify(pretenuring));
  });

  it('leaves pretenuring on when the process was started with it explicitly', async () => {
    const explicit = await run('explicit');
    assert.equal(explicit.applied, false);
    if (Number(process.versions.v8.split('.')[0]) !== 12) assert.ok(explicit.pretenuredRounds > 0);
  });
});
