/**
 * The README's code must not rot. Every ```ts block is compiled, strictly, as its own module against the
 * package's sources (`express-ai-gateway` mapped to lib/), so a renamed export or a changed signature fails
 * here; and every npm command the README tells a reader to run is a script that exists.
 *
 * Short snippets may use the host's own objects without defining them (`app`, `gateway`, a handler named
 * in the text): PLACEHOLDERS types them, so the gateway calls around them are still checked. Everything
 * else must be imported or defined in the block, as a reader copying it would need.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { repoRoot } from './helpers/spawn.js';

const PLACEHOLDERS: Record<string, string> = {
  app: "import('express').Express",
  gateway: "import('express-ai-gateway').Gateway",
  redis: "import('ioredis').Redis",
  audit: "import('express').RequestHandler",
  upload: "import('express').RequestHandler",
  search: "import('express').RequestHandler",
  exportHandler: "import('express').RequestHandler",
};

/** One line declaring the placeholders a block uses but does not define itself. */
function preludeFor(code: string): string {
  const declared = (name: string) =>
    new RegExp(`\\b(const|let|var|function|class)\\s+${name}\\b|import[^;]*\\b${name}\\b[^;]*from`).test(
      code,
    );
  return Object.entries(PLACEHOLDERS)
    .filter(([name]) => new RegExp(`\\b${name}\\b`).test(code) && !declared(name))
    .map(([name, type]) => `declare const ${name}: ${type};`)
    .join(' ');
}

const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');

function blocks(lang: string): { code: string; line: number }[] {
  const out: { code: string; line: number }[] = [];
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm');
  for (const m of readme.matchAll(re)) {
    out.push({ code: m[1]!, line: readme.slice(0, m.index).split('\n').length });
  }
  return out;
}

describe('README', function () {
  this.timeout(40_000);

  it('every TypeScript block compiles against the package', () => {
    const tsBlocks = blocks('ts');
    assert.ok(tsBlocks.length >= 3, `found ${tsBlocks.length} ts blocks`);
    // Inside the repo (git-ignored) so that `express` and the other imports resolve from node_modules.
    const dir = path.join(repoRoot, 'test/artifacts/readme');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = tsBlocks.map((b) => {
      const file = path.join(dir, `readme-line-${b.line}.ts`);
      // The prelude takes exactly one line (reported line numbers subtract it); `export {}` makes each
      // block a module of its own, as a user's file would be.
      writeFileSync(file, `${preludeFor(b.code)}\n${b.code}\nexport {};\n`);
      return file;
    });
    const program = ts.createProgram(files, {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts'],
      types: ['node'],
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      paths: {
        'express-ai-gateway': [path.join(repoRoot, 'lib/index.ts')],
        'express-ai-gateway/testing': [path.join(repoRoot, 'lib/testing/index.ts')],
      },
    });
    const problems = files.flatMap((file) =>
      ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => {
        const where =
          d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
        const readmeLine = Number(/readme-line-(\d+)/.exec(file)![1]) + (where ? where.line : 0);
        return `README.md:${readmeLine}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      }),
    );
    assert.deepEqual(problems, []);
  });

  it('every npm command it mentions is a script of the package', () => {
    const scripts = (
      JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    const text = [...blocks('sh'), ...blocks('bash')].map((b) => b.code).join('\n') + readme;
    const named = new Set<string>();
    for (const m of text.matchAll(/\bnpm (start|test)\b/g)) named.add(m[1]!);
    for (const m of text.matchAll(/\bnpm run ([\w:-]+)/g)) named.add(m[1]!);
    assert.ok(named.has('start') && named.has('test'), 'the README gives the start and test commands');
    assert.deepEqual(
      [...named].filter((s) => !(s in scripts)),
      [],
    );
  });
});
