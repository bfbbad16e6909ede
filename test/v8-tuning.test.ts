import assert from 'node:assert/strict';
import { spawnTs } from './helpers/spawn.js';

interface Report {
  mode: string;
  applied: boolean;
  pretenured: number;
  of: number;
}

async function run(mode: 'default' | 'disable' | 'explicit'): Promise<Report> {
  const child = spawnTs('test/fixtures/pretenuring.ts', [mode]);
  assert.equal(await child.exited, 0, child.output());
  return JSON.parse(child.output().trim().split('\n').pop()!) as Report;
}

describe('disablePretenuring() (the CLI calls it at start)', function () {
  this.timeout(60_000);

  it('stops V8 from allocating a long-lived site straight into the old generation', async () => {
    const pretenuring = await run('default');
    const disabled = await run('disable');
    assert.equal(disabled.applied, true);
    assert.equal(disabled.pretenured, 0, JSON.stringify(disabled));
    // The control: the same allocations, with nothing changed, go to the old generation.
    assert.equal(pretenuring.pretenured, pretenuring.of, JSON.stringify(pretenuring));
  });

  it('leaves pretenuring on when the process was started with it explicitly', async () => {
    const explicit = await run('explicit');
    assert.equal(explicit.applied, false);
    assert.equal(explicit.pretenured, explicit.of, JSON.stringify(explicit));
  });
});
