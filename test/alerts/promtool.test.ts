// The shipped Prometheus and Alertmanager files, checked by the real promtool and amtool, plus
// the alert contract (docs/alerts.md) checked on the parsed rule and test files.
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import t, { type Test } from 'tap';
import { RUNBOOK_PATH } from '../../src/routes/runbook.js';
import { testApp } from '../helpers/app.js';
import { requireBinary, runBinary } from '../helpers/binaries.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const promDir = join(root, 'prometheus');
// The base comes from the external label prometheus.yml sets; the Debian promtool (2.42) cannot
// set external labels in a test, so the promtool tests see the path alone.
const RUNBOOK_URL = '{{ $externalLabels.runbook_base }}/prometheus/RUNBOOK.md';

/** The alerts of docs/alerts.md: the regression contract, the classifier alerts, then the rollout alert. */
const CONTRACT_ALERTS = [
  'ModelFeatureMeanDrift',
  'ModelPredictionMeanShift',
  'ModelPredictionOutlierRatioHigh',
  'ModelFeatureOutOfRangeRatioHigh',
  'ModelFeatureDistributionShift',
  'ModelFeatureMissingRatioHigh',
  'ModelInvalidInputRatioHigh',
  'ModelInferenceLatencyHigh',
  'ModelPredictionErrorHigh',
  'ModelFeatureLogFailing',
  'ModelExporterDown',
  'ModelPredictedClassShift',
  'ModelAccuracyDrop',
  'ModelLowConfidence',
  'ModelCandidateDiverges',
];

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface ExpAlert {
  exp_labels?: Record<string, string>;
  exp_annotations?: Record<string, string>;
}
interface PromtoolTestFile {
  rule_files: string[];
  evaluation_interval?: string;
  tests: {
    name: string;
    interval?: string;
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts?: ExpAlert[] | null }[];
  }[];
}

async function yamlFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f));
}

const ruleFiles = await yamlFiles(join(promDir, 'rules'));
const testFiles = await yamlFiles(join(promDir, 'tests'));
const rules: Rule[] = [];
const groups: { file: string; name: string; rules: Rule[] }[] = [];
for (const file of ruleFiles) {
  const parsed = load(await readFile(file, 'utf8')) as RuleFile;
  for (const g of parsed.groups) {
    rules.push(...g.rules);
    groups.push({ file, ...g });
  }
}
const alerts = rules.filter((r) => r.alert !== undefined);
const recordings = rules.filter((r) => r.record !== undefined);
const tests: { file: string; parsed: PromtoolTestFile }[] = [];
for (const file of testFiles) {
  tests.push({ file, parsed: load(await readFile(file, 'utf8')) as PromtoolTestFile });
}

/** promtool reports each rule file it checks with that file's rule count. */
function expectRuleCounts(t: Test, stdout: string, message: string): void {
  for (const file of ruleFiles) {
    const count = groups.filter((g) => g.file === file).reduce((n, g) => n + g.rules.length, 0);
    const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    t.match(stdout, new RegExp(`Checking ${escaped}\\s+SUCCESS: ${count} rules found`), `${message}: ${count} in ${file}`);
  }
}

/** Parses a Prometheus duration such as 1h30m into seconds. */
function seconds(d: string): number {
  const re = /(\d+)(ms|s|m|h|d|w|y)/g;
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  let consumed = '';
  for (const m of d.matchAll(re)) {
    total += Number(m[1]) * unit[m[2]!]!;
    consumed += m[0];
  }
  if (consumed !== d) throw new Error(`not a duration: ${d}`);
  return total;
}

t.test('promtool', async (t) => {
  const promtool = await requireBinary('promtool');
  t.match(promtool, /^\//, 'requireBinary returns an absolute path');

  t.test('check config resolves the rule files and the rules load', async (t) => {
    const r = await runBinary(promtool, ['check', 'config', join(promDir, 'prometheus.yml')]);
    t.equal(r.code, 0, `promtool check config exits 0\n${r.stdout}${r.stderr}`);
    t.match(r.stdout, `SUCCESS: ${ruleFiles.length} rule files found`);
    expectRuleCounts(t, r.stdout, 'every parsed rule is loaded through the config');
  });

  t.test('check rules', async (t) => {
    const r = await runBinary(promtool, ['check', 'rules', ...ruleFiles]);
    t.equal(r.code, 0, `promtool check rules exits 0\n${r.stdout}${r.stderr}`);
    expectRuleCounts(t, r.stdout, 'every parsed rule is checked');
    t.notMatch(r.stdout + r.stderr, /FAILED|duplicate/i);
  });

  t.test('test rules: every promtool unit test passes', async (t) => {
    t.ok(testFiles.length >= CONTRACT_ALERTS.length, 'a test file per alert at least');
    const r = await runBinary(promtool, ['test', 'rules', ...testFiles], { timeoutMs: 300_000 });
    t.equal(r.code, 0, `promtool test rules exits 0\n${r.stdout}${r.stderr}`);
    const successes = (r.stdout.match(/^\s*SUCCESS\s*$/gm) ?? []).length;
    t.equal(successes, testFiles.length, 'one SUCCESS per test file');
    t.notMatch(r.stdout + r.stderr, /FAILED/);
  });

  t.test('a broken expectation makes promtool test rules fail', async (t) => {
    // Guards against a runner that passes whatever happens: shift the firing minute of one
    // expectation one minute early and promtool must report the failure.
    const dir = await mkdtemp(join(tmpdir(), 'modelwatch-promtool-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const src = join(promDir, 'tests', 'feature-mean-drift.test.yml');
    const text = await readFile(src, 'utf8');
    const broken = text.replace(
      /- eval_time: 24m\n(\s+)alertname: ModelFeatureMeanDrift\n\s+exp_alerts: \[\]\n(\s+)- eval_time: 25m/,
      '- eval_time: 25m\n$1alertname: ModelFeatureMeanDrift\n$1exp_alerts: []\n$2- eval_time: 24m',
    );
    t.not(broken, text, 'the fixture rewrite applied');
    const copy = join(dir, 'broken.test.yml');
    await writeFile(copy, broken.replaceAll('../rules/', `${join(promDir, 'rules')}/`));
    const r = await runBinary(promtool, ['test', 'rules', copy]);
    t.not(r.code, 0, 'promtool exits non-zero');
    t.match(r.stdout + r.stderr, /FAILED/);
  });
});

t.test('alert contract', async (t) => {
  const runbook = await readFile(join(promDir, 'RUNBOOK.md'), 'utf8');
  const runbookHeadings = new Set([...runbook.matchAll(/^## (\S+)\s*$/gm)].map((m) => m[1]));
  const names = new Set(alerts.map((a) => a.alert!));

  t.same([...CONTRACT_ALERTS].filter((n) => !names.has(n)), [], 'every contract alert of this scope exists');

  for (const a of alerts) {
    const name = a.alert!;
    t.test(`${name} (${a.labels?.severity})`, async (t) => {
      t.match(name, /^Model[A-Za-z]+$/, 'named Model*, as the inhibition rules expect');
      t.ok(a.for && seconds(a.for) >= 5 * 60, `has for >= 5m (got ${a.for})`);
      if (a.keep_firing_for !== undefined) t.ok(seconds(a.keep_firing_for) > 0, 'keep_firing_for is a duration');
      t.ok(['critical', 'warning'].includes(a.labels?.severity ?? ''), 'severity is critical or warning');
      const ann = a.annotations ?? {};
      for (const key of ['summary', 'description', 'runbook_url']) t.ok(ann[key], `has annotation ${key}`);
      t.equal(ann.runbook_url, `${RUNBOOK_URL}#${name.toLowerCase()}`, 'runbook_url points at its section');
      t.ok(runbookHeadings.has(name), `RUNBOOK.md has a "## ${name}" section`);
      if (name !== 'ModelExporterDown') {
        // ModelExporterDown's value is up (0) or absent (1): it names the target instead.
        t.match(ann.description, /\$value/, 'description shows the value');
        t.match(ann.description, /\$labels\.model/, 'description names the model');
      } else {
        t.match(ann.description, /\$labels\.instance/, 'description names the target');
      }
      if (/feature/.test(a.expr) && /model_feature:/.test(a.expr)) {
        t.match(ann.description, /\$labels\.feature/, 'a feature alert names the feature');
      }
      if (/deviation_ratio/.test(a.expr)) t.match(a.expr, /abs\(/, 'a signed deviation ratio is compared with abs()');

      // promtool coverage: it fires with exact labels and annotations, and it does not fire.
      const cases = tests.flatMap(({ parsed }) =>
        parsed.tests.flatMap((tc) => (tc.alert_rule_test ?? []).filter((c) => c.alertname === name)),
      );
      const firing = cases.flatMap((c) => c.exp_alerts ?? []).filter((e) => e.exp_labels?.severity === a.labels?.severity);
      t.ok(firing.length > 0, 'a promtool test expects it firing at this severity');
      t.ok(
        firing.some((e) => ['summary', 'description', 'runbook_url'].every((k) => e.exp_annotations?.[k])),
        'with all annotations spelled out',
      );
      t.ok(cases.some((c) => (c.exp_alerts ?? []).length === 0), 'a promtool test expects it not firing');
    });
  }

  t.test('prometheus.yml sets the runbook base every runbook_url starts with: the server, which serves its own runbook there', async (t) => {
    const config = load(await readFile(join(promDir, 'prometheus.yml'), 'utf8')) as { global: { external_labels?: Record<string, string> } };
    t.equal(config.global.external_labels?.runbook_base, 'http://localhost:8080', 'where docker compose publishes modelwatch, and npm start listens');
    const { app } = await testApp(t);
    const page = await app.inject({ method: 'GET', url: RUNBOOK_PATH });
    t.equal(page.statusCode, 200);
    t.equal(page.headers['content-type'], 'text/markdown; charset=utf-8');
    t.equal(page.body, runbook, `GET ${RUNBOOK_PATH} is prometheus/RUNBOOK.md`);
    const dashboard = JSON.parse(await readFile(join(promDir, '../grafana/dashboards/modelwatch.json'), 'utf8')) as { links: { title: string; url: string }[] };
    t.same(dashboard.links.map((l) => [l.title, l.url]), [['Runbook', `${config.global.external_labels?.runbook_base}${RUNBOOK_PATH}`]], "the dashboard's Runbook link is the alerts' runbook");
  });

  t.test('every alert name has at least one runbook section and no section is orphaned', async (t) => {
    const orphans = [...runbookHeadings].filter((h) => /^Model/.test(h!) && !names.has(h!));
    t.same(orphans, [], 'no runbook section for an alert that does not exist');
  });

  t.test('every test file names scenarios for spike, sustained, traffic and resolution', async (t) => {
    const testNames = tests.flatMap(({ parsed }) => parsed.tests.map((tc) => tc.name.toLowerCase()));
    t.ok(testNames.filter((n) => /spike|burst|outage/.test(n)).length >= CONTRACT_ALERTS.length, 'a short-spike test per alert');
    t.ok(testNames.filter((n) => /resolve/.test(n)).length >= CONTRACT_ALERTS.length, 'a resolution test per alert');
    for (const { file, parsed } of tests) {
      t.equal(parsed.evaluation_interval, '1m', `${file}: evaluation_interval is set`);
      for (const tc of parsed.tests) t.ok(tc.interval, `${file} "${tc.name}": interval is set`);
    }
  });

  t.test('rules use only recording rules defined earlier in their own group', async (t) => {
    // Groups evaluate independently (promtool in an unspecified order): a dependency on another
    // group lags by one evaluation and makes the exact-minute tests flaky.
    for (const g of groups) {
      const earlier = new Set<string>();
      for (const r of g.rules) {
        const used = [...r.expr.matchAll(/\b([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b/g)].map((m) => m[1]!);
        for (const u of used) t.ok(earlier.has(u), `${g.name}: ${r.alert ?? r.record} uses ${u} from earlier in its group`);
        if (r.record) earlier.add(r.record);
      }
    }
  });

  t.test('recording rules are named level:metric:operations and aggregate by model and version', async (t) => {
    t.ok(recordings.length > 0);
    for (const r of recordings) {
      t.match(r.record, /^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/, `${r.record} is level:metric:operations`);
      t.notMatch(r.record, /_total:/, `${r.record}: the metric part drops _total`);
      const level = r.record!.split(':')[0]!;
      const byClauses = [...r.expr.matchAll(/\b(?:sum|max|min|avg) by \(([^)]*)\)/g)].map((m) => m[1]!);
      t.ok(byClauses.length > 0, `${r.record} aggregates across replicas`);
      byClauses.forEach((by, i) => {
        const labels = by.split(',').map((l) => l.trim());
        t.ok(labels.includes('model') && labels.includes('version'), `${r.record}: by (${by}) keeps model and version`);
        t.notOk(labels.includes('instance') && !level.includes('instance'), `${r.record}: fleet-wide, no instance`);
        // The first aggregation yields the series' labels; later ones may be coarser
        // denominators joined with ignoring(...) group_left.
        if (i === 0) {
          // primary_version is one label of two words: the level of a pair of versions.
          for (const extra of level.replace('primary_version', 'primary-version').split('_').map((l) => l.replace('-', '_')).filter((l) => l !== 'model')) {
            t.ok(labels.includes(extra), `${r.record}: level "${level}" keeps ${extra}`);
          }
        }
      });
    }
  });
});

t.test('amtool', async (t) => {
  const amtool = await requireBinary('amtool');
  const amFile = join(promDir, 'alertmanager.yml');
  const text = await readFile(amFile, 'utf8');
  const config = load(text) as {
    global?: { pagerduty_url?: string };
    route: {
      receiver: string;
      group_by: string[];
      group_wait: string;
      group_interval: string;
      repeat_interval: string;
      routes: { receiver: string; matchers: string[]; repeat_interval?: string }[];
    };
    inhibit_rules: { source_matchers: string[]; target_matchers: string[]; equal: string[] }[];
    receivers: { name: string; pagerduty_configs?: Record<string, unknown>[] }[];
  };

  t.test('check-config (with the routing key file present)', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'modelwatch-amtool-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'pagerduty_routing_key');
    await copyFile(join(promDir, 'secrets', 'pagerduty_routing_key.example'), keyFile);
    const copy = join(dir, 'alertmanager.yml');
    await writeFile(copy, text.replaceAll('/etc/alertmanager/secrets/pagerduty_routing_key', keyFile));
    for (const file of [amFile, copy]) {
      const r = await runBinary(amtool, ['check-config', file]);
      t.equal(r.code, 0, `amtool check-config ${file} exits 0\n${r.stdout}${r.stderr}`);
      t.match(r.stdout, 'SUCCESS');
      t.match(r.stdout, `${config.receivers.length} receivers`);
      t.match(r.stdout, `${config.inhibit_rules.length} inhibit rules`);
    }
  });

  t.test('PagerDuty receivers read the key from a file and pass severity through', async (t) => {
    t.match(config.global?.pagerduty_url ?? '', /\/v2\/enqueue$/, 'Events API v2 endpoint');
    t.notMatch(text, /^\s*(routing_key|service_key)\s*:/m, 'no key is committed');
    const pd = config.receivers.flatMap((r) => r.pagerduty_configs ?? []);
    t.ok(pd.length >= 2, 'a PagerDuty config per severity receiver');
    for (const c of pd) {
      t.equal(c.routing_key_file, '/etc/alertmanager/secrets/pagerduty_routing_key');
      t.match(String(c.severity), /\{\{ \.CommonLabels\.severity \}\}/, 'severity passed through');
      t.not(c.send_resolved, false, 'resolve events are sent');
    }
  });

  t.test('grouping, timing and inhibition', async (t) => {
    t.same(config.route.group_by, ['alertname', 'model']);
    t.ok(seconds(config.route.group_wait) >= 10 && seconds(config.route.group_wait) <= 60, 'group_wait 10s..1m');
    t.ok(seconds(config.route.group_interval) >= 60 && seconds(config.route.group_interval) <= 900, 'group_interval 1m..15m');
    t.ok(seconds(config.route.repeat_interval) >= 3600, 'repeat_interval >= 1h');
    for (const r of config.route.routes) {
      if (r.repeat_interval) t.ok(seconds(r.repeat_interval) >= 3600, `${r.receiver}: repeat_interval >= 1h`);
    }
    const down = config.inhibit_rules.filter((r) => r.source_matchers.includes('alertname="ModelExporterDown"'));
    t.ok(down.length > 0, 'ModelExporterDown inhibits');
    for (const r of down) {
      t.ok(r.equal.includes('job'), 'only alerts of the same job');
      t.ok(r.target_matchers.includes('alertname!="ModelExporterDown"'), 'never itself');
    }
    t.ok(
      down.some((r) => r.equal.includes('instance')),
      'per-instance alerts are inhibited by their own instance',
    );
    const twin = config.inhibit_rules.find(
      (r) => r.source_matchers.includes('severity="critical"') && r.target_matchers.includes('severity="warning"'),
    );
    t.ok(twin, 'critical inhibits warning');
    for (const l of ['alertname', 'model', 'version', 'feature']) t.ok(twin?.equal.includes(l), `twin inhibition equal on ${l}`);
  });

  t.test('routes test: each severity reaches its receiver', async (t) => {
    const route = async (labels: string[]) => {
      const r = await runBinary(amtool, ['config', 'routes', 'test', `--config.file=${amFile}`, ...labels]);
      if (r.code !== 0) t.fail(`amtool config routes test ${labels.join(' ')} exited ${r.code}\n${r.stderr}`);
      return r.stdout.trim();
    };
    const expected: Record<string, string> = { critical: 'pagerduty-critical', warning: 'pagerduty-warning' };
    t.equal(await route(['severity=critical', 'alertname=X', 'model=diabetes']), 'pagerduty-critical');
    t.equal(await route(['severity=warning', 'alertname=X', 'model=diabetes']), 'pagerduty-warning');
    t.equal(await route(['alertname=X', 'model=diabetes']), 'pagerduty-warning', 'no severity: low urgency');
    for (const a of alerts) {
      const sev = a.labels!.severity!;
      t.equal(
        await route([`severity=${sev}`, `alertname=${a.alert}`, 'model=diabetes']),
        expected[sev],
        `${a.alert} ${sev} -> ${expected[sev]}`,
      );
    }
  });
});

t.test('secrets are never committed', async (t) => {
  const files = (await readdir(join(promDir, 'secrets'))).sort();
  t.ok(files.includes('README.md'), 'secrets/README.md explains the key file');
  t.ok(files.includes('pagerduty_routing_key.example'), 'an example key file');
  const example = await readFile(join(promDir, 'secrets', 'pagerduty_routing_key.example'), 'utf8');
  t.notMatch(example, /^[0-9a-f]{32}$/im, 'the example is not a real-looking key');
  const gitignore = await readFile(join(promDir, 'secrets', '.gitignore'), 'utf8');
  const lines = gitignore.split('\n').map((l) => l.trim());
  t.ok(lines.includes('*'), 'everything in secrets/ is ignored ...');
  t.ok(lines.includes('!README.md') && lines.includes('!*.example'), '... except the README and examples');
  t.notOk(lines.some((l) => l === '!pagerduty_routing_key'), 'the key itself is not re-included');
});
