// A newcomer's first minutes: the README's Quickstart block, exactly as written, pasted into bash
// in a fresh clone of this repository's HEAD (commit first when running it locally). Its
// `npm install` must print no npm warning, and each result its comments show must appear.
// As root (CI) the block runs in a network namespace of its own: port 8080 is then free whatever
// else runs on the machine, and nothing but its loopback is reachable. npm works offline, from
// the cache the clone's own `npm install` filled.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { childEnv, finished, root, tempDir } from '../helpers/cli.js';
import { codeBlock, expectedLines, runIsolated } from '../helpers/readme.js';

const block = codeBlock('## Quickstart', 'sh');

t.test('the Quickstart block, pasted into a fresh clone, prints what its comments say', async (t) => {
  const expected = expectedLines(block);
  t.equal(expected.length, 5, 'the block shows five results');

  const dir = await tempDir(t);
  const clone = join(dir, 'modelwatch');
  t.equal((await finished(spawn('git', ['clone', '--quiet', root, clone], { stdio: ['ignore', 'pipe', 'pipe'] }))).code, 0, 'git clone');
  const script = join(dir, 'quickstart.sh');
  await writeFile(script, `${block}\n`);

  // The variables npm test runs under would point the inner npm at this repository.
  const env = Object.fromEntries(Object.entries(childEnv({ npm_config_offline: 'true' })).filter(([name]) => !/^npm_(?!config_offline$)/i.test(name)));
  const run = await runIsolated(script, clone, env, 240_000);
  const output = `${run.stdout}${run.stderr}`;
  t.equal(run.code, 0, 'the block runs to its end', { output });

  t.notMatch(output, /npm (warn|WARN|ERR)/, 'npm install on a fresh clone prints no warning');
  for (const line of expected) t.match(output, line, `prints ${line.source}`);
  const ok = output.search(/^OK: no feature mean deviates/m);
  const warning = output.search(/^WARNING: overall feature mean/m);
  t.ok(ok >= 0 && warning > ok, 'the +5% run ends with OK, the +30% run after it with WARNING lines');

  // `kill $!` stopped npm; the server must have got the signal and stopped too.
  const log = join(clone, 'modelwatch.log');
  const deadline = Date.now() + 15_000;
  while (!(await readFile(log, 'utf8')).includes('"signal":"SIGTERM"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.match(await readFile(log, 'utf8'), /"signal":"SIGTERM",.*"msg":"stopping: finishing in-flight requests and flushing the feature log"/, 'the server itself got the signal and shut down');
  t.equal((await readFile(join(clone, 'feature_log.csv'), 'utf8')).trim().split('\n').length, 1 + 22, 'a header and a row for each of the 22 requests');
});
