// The shipped executable: bin/modelwatch.js running the compiled dist/ (npm test builds it first).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { optionsTable } from '../src/config.js';
import { commandUsage, usage, usageOf } from '../src/usage.js';
import { childEnv, finished, freePort, root, spawnCli, tempDir, waitReady, waitRefused, type CliResult } from './helpers/cli.js';

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function bin(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return finished(spawn(process.execPath, ['bin/modelwatch.js', ...args], { cwd: root, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }));
}

// How fast it starts is measured by npm run bench, not asserted here: a timing depends on the machine.
t.test('--version prints the package version and nothing else', async (t) => {
  t.same(await bin(['--version']), { code: 0, signal: null, stdout: `${pkg.version}\n`, stderr: '' });
});

t.test('the bare command, --help and -h print the usage and exit 0', async (t) => {
  for (const args of [[], ['--help'], ['-h']]) {
    t.same(await bin(args), { code: 0, signal: null, stdout: `${usage}\n`, stderr: '' }, `modelwatch ${args.join(' ')}`);
  }
});

t.test('every command answers --help and -h with its own usage and exit 0', async (t) => {
  for (const command of Object.keys(commandUsage) as (keyof typeof commandUsage)[]) {
    const expected = command === 'serve' ? `modelwatch serve: every option is a flag and an environment variable; the flag wins.\n\n${optionsTable()}\n` : `${usageOf(command)}\n`;
    for (const flag of ['--help', '-h']) {
      t.same(await bin([command, flag]), { code: 0, signal: null, stdout: expected, stderr: '' }, `modelwatch ${command} ${flag}`);
    }
  }
});

t.test('an unknown command exits 2 with the usage on stderr', async (t) => {
  t.same(await bin(['bogus']), { code: 2, signal: null, stdout: '', stderr: `modelwatch: unknown command "bogus"\n\n${usage}\n` });
});

t.test('no TypeScript loader at run time: tsx is a dev dependency and npm start execs the compiled bin', async (t) => {
  t.equal(pkg.dependencies.tsx, undefined);
  t.type(pkg.devDependencies.tsx, 'string');
  t.equal(pkg.scripts.start, 'exec node bin/modelwatch.js serve');
  t.notMatch(readFileSync(join(root, 'bin/modelwatch.js'), 'utf8'), /tsx|\.ts'/);
});

t.test('stopping npm start stops the server it started', async (t) => {
  const port = await freePort();
  // --ignore-scripts skips only prestart's build, which npm test has run already.
  const npm = spawn('npm', ['start', '--ignore-scripts'], { cwd: root, env: childEnv({ MODELWATCH_PORT: String(port), MODELWATCH_CSV: '' }), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = finished(npm);
  await waitReady(port, npm);
  npm.kill('SIGTERM');
  await waitRefused(port);
  const result = await exited;
  t.match(result.stdout, /"signal":"SIGTERM",.*"msg":"stopping: finishing in-flight requests and flushing the feature log"/, 'the server itself got the signal and shut down');
});

t.test('simulate and check-csv take the log, model folder and port from the environment that runs serve', async (t) => {
  const dir = await tempDir(t);
  const csv = join(dir, 'log.csv');
  const env = { MODELWATCH_PORT: String(await freePort()), MODELWATCH_CSV: csv, MODELWATCH_LOG_LEVEL: 'warn' };
  const server = spawnCli(['serve'], env);
  const exited = finished(server);
  t.teardown(() => {
    server.kill('SIGTERM');
    return exited;
  });
  await waitReady(Number(env.MODELWATCH_PORT), server);

  const simulated = await bin(['simulate', '--requests', '5', '--drift', '0.3'], env);
  t.equal(simulated.code, 0, simulated.stderr);
  t.match(simulated.stdout, `check-csv on ${csv} (last 5 requests):\n`, 'simulate reached the port of MODELWATCH_PORT and read MODELWATCH_CSV');
  t.equal(readFileSync(csv, 'utf8').trim().split('\n').length, 6, 'the server logged a header and the 5 rows');

  const checked = await bin(['check-csv', '--last', '5', '--fail-on-drift'], env);
  t.same({ code: checked.code, stderr: checked.stderr }, { code: 3, stderr: '' }, 'check-csv read the drifted rows of MODELWATCH_CSV');
  t.match(checked.stdout, /^WARNING/m);

  const elsewhere = await bin(['check-csv'], { ...env, MODELWATCH_MODEL_DIR: join(dir, 'nowhere') });
  t.equal(elsewhere.code, 1);
  t.match(elsewhere.stderr, `modelwatch check-csv: MW_ERR_BASELINE_MISSING baseline file ${join(dir, 'nowhere', 'baseline.json')} does not exist`);
});
