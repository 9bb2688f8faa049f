// The README's snippets that need nothing beyond 127.0.0.1, run as written against a real server
// started as the README starts it (`npx modelwatch serve &` on 8080): the /observe Python client,
// the classifier, PSI, Open Inference Protocol and authentication shell blocks. Each must print
// what its comments say. The Quickstart has its own test (quickstart.test.ts), `modelwatch stack` too (stack.test.ts);
// the rest need Docker, Kubernetes, root-owned paths or minutes of benchmarking.
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { childEnv, root, tempDir } from '../helpers/cli.js';
import { codeBlock, expectedLines, runIsolated } from '../helpers/readme.js';

const blocks = {
  python: codeBlock('### `/observe` from Python, standard library only', 'python'),
  classifier: codeBlock('## Classifiers', 'sh'),
  psi: codeBlock('## Distribution drift (PSI)', 'sh'),
  v2: codeBlock('## Open Inference Protocol (KServe V2)', 'sh'),
  authentication: codeBlock('## Authentication', 'sh'),
};

t.test('the README snippets print what their comments say', { timeout: 120_000 }, async (t) => {
  // The snippets' relative paths (models/iris, feature_log.csv, iris_log.csv) resolve in a
  // directory of their own, which sees the repository's models through a link. Outside a clone
  // npx would install modelwatch from the registry, so `npx modelwatch` is this repository's
  // bin here; that npx finds it in a clone, the Quickstart test shows.
  const dir = await tempDir(t);
  await symlink(join(root, 'models'), join(dir, 'models'));
  await writeFile(join(dir, 'observe.py'), `${blocks.python}\n`);
  const script = [
    'set -e',
    `npx() { if [ "$1" = modelwatch ]; then shift; node ${JSON.stringify(join(root, 'bin/modelwatch.js'))} "$@"; else command npx "$@"; fi; }`,
    // A background `npx modelwatch serve` is a subshell running node: stop the node, then the subshell.
    'trap \'for job in $(jobs -p); do pkill -P "$job"; kill "$job"; done 2>/dev/null\' EXIT',
    'npx modelwatch serve > serve.log 2>&1 &',
    'curl -s --retry 30 --retry-connrefused --retry-delay 1 localhost:8080/readyz > /dev/null',
    'printf "\\n=== python\\n"',
    'python3 observe.py',
    'curl -s localhost:8080/metrics | grep \'^model_prediction_value_count\'',
    'printf "\\n=== classifier\\n"',
    blocks.classifier,
    'printf "\\n=== psi\\n"',
    blocks.psi,
    'printf "\\n=== v2\\n"',
    blocks.v2,
    'printf "\\n=== authentication\\n"',
    blocks.authentication,
    'printf "\\n=== end\\n"',
  ].join('\n');
  await writeFile(join(dir, 'snippets.sh'), `${script}\n`);
  const run = await runIsolated(join(dir, 'snippets.sh'), dir, childEnv(), 100_000);
  t.equal(run.code, 0, 'every snippet runs to its end', { stdout: run.stdout, stderr: run.stderr });
  // Markers start on a line of their own: a curl answer has no line end.
  const section = (name: string) => (run.stdout.split(`\n=== ${name}\n`)[1]?.split('\n=== ')[0] ?? '').trim();

  t.equal(section('python'), 'model_prediction_value_count{model="diabetes",version="1"} 1', 'the Python client sent its one observation, and printed nothing');
  for (const name of ['classifier', 'v2'] as const) {
    const expected = expectedLines(blocks[name]);
    t.equal(expected.length, 1, `the ${name} block shows one result`);
    for (const line of expected) t.match(section(name), line, `${name}: prints ${line.source}`);
  }
  // A 401 without the token, then the observation taken with it, in that order (the server's own
  // log lines, on the same terminal, come between).
  const shown = expectedLines(blocks.authentication);
  t.equal(shown.length, 2, 'the authentication block shows two results');
  const at = shown.map((pattern) => section('authentication').search(pattern));
  t.ok(at[0]! >= 0 && at[1]! > at[0]!, `authentication: prints ${shown.map((p) => p.source).join(' then ')}`, { output: section('authentication') });
  for (const feature of ['bmi', 's5']) {
    const psi = new RegExp(`^model_feature_psi\\{model="diabetes",version="1",feature="${feature}"\\} (\\S+)$`, 'm').exec(section('psi'))?.[1];
    t.ok(Number(psi) > 0.25, `the bimodal stream moves ${feature}'s PSI above the alert's 0.25 (got ${psi})`);
  }
  t.match(section('psi'), /^model_feature_psi\{model="diabetes",version="1",feature="age"\} 0\.\d+$/m, 'an untouched feature has its PSI too');
});
