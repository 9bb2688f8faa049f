// deploy/rollouts/: the Flagger and Argo Rollouts files say the same PromQL and thresholds as
// their one source (scripts/rollout-analysis.ts), and every query is valid PromQL to promtool.
// test/integration/rollout-analysis.test.ts runs the Argo queries on a real Prometheus.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump, load, loadAll } from 'js-yaml';
import t from 'tap';
import { rolloutChecks, type CheckVars } from '../scripts/rollout-analysis.js';
import { requireBinary, runBinary } from './helpers/binaries.js';
import { root, tempDir } from './helpers/cli.js';

const read = async (file: string) => readFile(join(root, 'deploy/rollouts', file), 'utf8');
const flagger = loadAll(await read('flagger-metric-templates.yaml')) as { kind: string; metadata: { name: string }; spec: { provider: { type: string }; query: string } }[];
const canary = (load(await read('flagger-canary-analysis.example.yaml')) as {
  spec: { analysis: { metrics: { name: string; templateRef: { name: string }; thresholdRange: Record<string, number>; templateVariables: Record<string, string> }[] } };
}).spec.analysis.metrics;
const argo = loadAll(await read('argo-analysis-templates.yaml')) as {
  kind: string;
  metadata: { name: string };
  spec: { args: { name: string }[]; metrics: { name: string; successCondition: string; provider: { prometheus: { query: string } } }[] };
}[];

const values: CheckVars = { model: 'diabetes', candidate: '2', primary: '1', window: '10m' };
const withFlagger = (q: string) =>
  q.replaceAll('{{ variables.model }}', values.model).replaceAll('{{ variables.candidate_version }}', values.candidate).replaceAll('{{ variables.primary_version }}', values.primary).replaceAll('{{ interval }}', values.window);
const withArgo = (q: string) =>
  q.replaceAll('{{args.model}}', values.model).replaceAll('{{args.candidate-version}}', values.candidate).replaceAll('{{args.primary-version}}', values.primary).replaceAll('{{args.window}}', values.window);

t.test('one Flagger MetricTemplate per check, its query the source\'s once Flagger fills the variables', async (t) => {
  t.same(flagger.map((m) => `${m.kind} ${m.metadata.name}`), rolloutChecks.map((c) => `MetricTemplate modelwatch-${c.name}`));
  for (const [i, check] of rolloutChecks.entries()) {
    t.equal(flagger[i]!.spec.provider.type, 'prometheus');
    t.equal(withFlagger(flagger[i]!.spec.query), check.query(values), check.name);
    t.notMatch(withFlagger(flagger[i]!.spec.query), /\{\{/, `${check.name}: no placeholder left`);
  }
});

t.test('the example Canary analysis refers to those templates with the source\'s thresholds', async (t) => {
  const regression = rolloutChecks.filter((c) => c.tasks.includes('regression'));
  t.same(canary.map((m) => m.templateRef.name), regression.map((c) => `modelwatch-${c.name}`));
  for (const [i, check] of regression.entries()) {
    t.same(canary[i]!.thresholdRange, { [check.pass]: check.value }, check.name);
    t.same(Object.keys(canary[i]!.templateVariables).sort(), ['candidate_version', 'model', 'primary_version']);
  }
});

t.test('Argo: one AnalysisTemplate per task, each with the checks that have data for it, the same PromQL and thresholds', async (t) => {
  t.same(argo.map((a) => `${a.kind} ${a.metadata.name}`), ['AnalysisTemplate modelwatch-candidate-regression', 'AnalysisTemplate modelwatch-candidate-classification']);
  for (const [task, template] of [['regression', argo[0]!], ['classification', argo[1]!]] as const) {
    const checks = rolloutChecks.filter((c) => c.tasks.includes(task));
    t.same(template.spec.metrics.map((m) => m.name), checks.map((c) => c.name), task);
    t.same(template.spec.args.map((a) => a.name), ['model', 'candidate-version', 'primary-version', 'window', 'prometheus']);
    for (const [i, check] of checks.entries()) {
      const metric = template.spec.metrics[i]!;
      t.equal(withArgo(metric.provider.prometheus.query), check.query(values), `${task} ${check.name}: the source's PromQL`);
      t.equal(metric.successCondition, `result[0] ${check.pass === 'max' ? '<=' : '>='} ${check.value}`, `${task} ${check.name}: the source's threshold`);
    }
  }
  t.ok(rolloutChecks.every((c) => argo.some((a) => a.spec.metrics.some((m) => m.name === c.name))), 'every check is in a template');
});

t.test('every query is valid PromQL: promtool checks them as recording rules', async (t) => {
  const promtool = await requireBinary('promtool');
  const file = join(await tempDir(t), 'queries.yml');
  const rules = rolloutChecks.map((c) => ({ record: `modelwatch_rollout_check:${c.name.replaceAll('-', '_')}`, expr: c.query(values) }));
  await writeFile(file, dump({ groups: [{ name: 'rollout-checks', rules }] }));
  const r = await runBinary(promtool, ['check', 'rules', file]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, `SUCCESS: ${rules.length} rules found`);
});

t.test('the README lists every check with its threshold', async (t) => {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  for (const c of rolloutChecks) {
    t.match(readme, `| \`${c.name}\` | `, c.name);
    t.match(readme, new RegExp(`\\| \`${c.name}\` \\|[^\\n]*\\| ${c.pass === 'max' ? '<=' : '>='} ${c.value} \\|`), `${c.name}: ${c.pass} ${c.value}`);
  }
});
