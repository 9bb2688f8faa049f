// `modelwatch stack` as a user runs it: the installed Prometheus and Alertmanager on 127.0.0.1
// scrape a real `modelwatch serve`, `modelwatch simulate` drifts one feature, and the shipped
// ModelFeatureMeanDrift rule (its durations divided by --time-scale 60 in the generated copies)
// reaches the console receiver, routed by the shipped alertmanager.yml. Ctrl-C (SIGINT) stops
// everything the stack started.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { installInstructions } from '../../src/binaries.js';
import { finished, freePort, root, runCli, spawnCli, tempDir, waitReady, waitRefused } from '../helpers/cli.js';
import { waitFor } from './harness.js';

const TIME_SCALE = 60;
/** The shipped rule's for (15m), at the test's time scale. */
const FOR_MS = (15 * 60_000) / TIME_SCALE;
const FEATURE = 'bmi';

t.test('the missing-binary message names the Debian packages', async (t) => {
  t.equal(
    installInstructions('alertmanager', 'modelwatch stack runs'),
    'alertmanager or prometheus-alertmanager was not found on PATH. modelwatch stack runs the real binary. Install it:\n' +
      '  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y prometheus prometheus-alertmanager\n' +
      '  elsewhere:     download prometheus and alertmanager from https://prometheus.io/download/ and put promtool, amtool, prometheus and alertmanager on PATH.',
  );
});

t.test('a PagerDuty key file that cannot be read stops the stack before it starts anything', async (t) => {
  const missing = join(await tempDir(t), 'pagerduty_routing_key');
  const run = await runCli(['stack', '--pagerduty-key-file', missing, '--prometheus-port', '0', '--alertmanager-port', '0', '--receiver-port', '0']);
  t.equal(run.code, 1);
  t.equal(run.stdout, '', 'prints no URL: nothing was started');
  t.match(run.stderr, `modelwatch stack: MW_ERR_CONFIG_INVALID invalid option --pagerduty-key-file = ${JSON.stringify(missing)}: cannot be read: ENOENT`);
});

t.test('drift sent by simulate reaches the console receiver; Ctrl-C stops the stack', { timeout: 90_000 }, async (t) => {
  const rulesBefore = await readFile(join(root, 'prometheus/rules/modelwatch.rules.yml'), 'utf8');
  const dir = await tempDir(t);
  const csv = join(dir, 'feature_log.csv');
  const port = await freePort();
  const server = spawnCli(['serve', '--port', String(port), '--csv', csv, '--max-event-loop-delay-ms', '0', '--log-level', 'warn']);
  t.teardown(() => server.kill('SIGKILL'));
  const serverDone = finished(server, 85_000);
  await waitReady(port, server);

  const stack = spawnCli(['stack', '--target', `127.0.0.1:${port}`, '--time-scale', String(TIME_SCALE), '--prometheus-port', '0', '--alertmanager-port', '0', '--receiver-port', '0']);
  t.teardown(() => stack.kill('SIGKILL'));
  const stackDone = finished(stack, 85_000);
  let output = '';
  stack.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor('the stack to print its URLs', () => (output.includes('Ctrl-C stops them\n') ? true : undefined), { timeoutMs: 40_000, describe: () => output });
  const url = (name: string) => new RegExp(`^${name} +(http://127\\.0\\.0\\.1:\\d+)`, 'm').exec(output)?.[1];
  const [prometheus, alertmanager] = [url('prometheus'), url('alertmanager')];
  const runbook = /^runbook +(\S+)$/m.exec(output)?.[1];
  t.ok(prometheus && alertmanager && runbook, 'prints the Prometheus, Alertmanager and runbook URLs', { output });
  t.match(output, `(scraping 127.0.0.1:${port} every 1s)`, 'the shipped 15s interval at the time scale, at least 1s');
  t.match(output, /^notifications are printed here \(webhook http:\/\/127\.0\.0\.1:\d+\/alerts\)$/m);

  // simulate runs one after another, so that traffic never pauses longer than a start-up.
  const driftStart = Date.now();
  let simulating = true;
  const traffic = (async () => {
    while (simulating) {
      const run = await finished(spawnCli(['simulate', '--url', `http://127.0.0.1:${port}`, '--requests', '300', '--drift', '0.6', '--features', FEATURE, '--csv', csv]), 60_000);
      if (run.code !== 0) throw new Error(`simulate exited ${run.code}: ${run.stdout}${run.stderr}`);
    }
  })();
  t.teardown(() => {
    simulating = false;
    return traffic.catch(() => undefined);
  });

  const line = await waitFor(
    `ModelFeatureMeanDrift for ${FEATURE} on the console`,
    () => /^\S+ FIRING ModelFeatureMeanDrift .*$/m.exec(output)?.[0],
    { timeoutMs: 60_000, describe: () => output },
  );
  const firedAfter = Date.now() - driftStart;
  simulating = false;
  await traffic;
  t.ok(firedAfter >= FOR_MS, `printed ${firedAfter}ms after the drift began, not before the scaled for (${FOR_MS}ms)`);
  t.match(
    line,
    new RegExp(
      `^\\d{4}-\\d\\d-\\d\\dT\\S+Z FIRING ModelFeatureMeanDrift critical \\(pagerduty-critical\\) feature=${FEATURE} job=modelwatch model=diabetes version=1: ` +
        `Feature ${FEATURE} of model diabetes drifted (5\\d|6\\d)(\\.\\d+)?% from training runbook: ${runbook!.replace(/[.]/g, '\\.')}#modelfeaturemeandrift$`,
    ),
    'a fleet-wide critical alert (drift above 50%), routed to the critical receiver, with the runbook link of the stack',
  );
  t.notMatch(output, /FIRING ModelFeatureMeanDrift warning/, 'the critical alert inhibits its warning twin');

  const page = await fetch(runbook!);
  t.equal(page.status, 200, 'the runbook URL resolves');
  t.match(await page.text(), /^## ModelFeatureMeanDrift$/m, 'to the runbook with the alert\'s section');

  stack.kill('SIGINT');
  const stopped = await stackDone;
  t.equal(stopped.code, 0, 'Ctrl-C exits 0', { stderr: stopped.stderr });
  for (const address of [prometheus!, alertmanager!, runbook!]) await waitRefused(Number(new URL(address).port));
  t.pass('Prometheus, Alertmanager and the console receiver no longer listen');
  t.equal(await readFile(join(root, 'prometheus/rules/modelwatch.rules.yml'), 'utf8'), rulesBefore, 'the shipped rules are unchanged');

  server.kill('SIGTERM');
  t.equal((await serverDone).code, 0, 'the server stops');
});
