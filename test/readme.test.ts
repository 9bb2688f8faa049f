import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load, loadAll } from 'js-yaml';
import t from 'tap';
import { optionsTable, parseServeConfig } from '../src/config.js';
import { repoRoot, scrape, testApp } from './helpers/app.js';
import { mixedModelDir } from './helpers/mixed.js';

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const doc = (name: string) => readFileSync(join(repoRoot, 'docs', name), 'utf8');

t.test('the README shows the two commands on its first screen', async (t) => {
  const firstScreen = readme.split('\n').slice(0, 25).join('\n');
  t.match(firstScreen, 'npm install && npm start');
  t.match(firstScreen, 'npm install && npm test');
});

t.test('the README and docs run the CLI as npx modelwatch, never through a module with tsx', async (t) => {
  // src/cli.ts only exports the commands (src/main.ts is the entry): run with tsx it exits 0 having done nothing.
  const texts = [readme, ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map(doc)];
  t.same(texts.flatMap((text) => text.split('\n').filter((line) => /tsx src\//.test(line))), [], 'no command runs a file of src/ with tsx');
  t.ok(texts.some((text) => /^npx modelwatch baseline /m.test(text)), 'baseline, for one, is run as npx modelwatch');
});

t.test('the README options table is the one the code declares', async (t) => {
  const block = readme.split('<!-- options:start -->\n')[1]?.split('\n<!-- options:end -->')[0];
  t.equal(block, optionsTable());
});

t.test('every model_ metric the server exports, for a regression, a classifier and a mixed-type model, has a row in docs/metrics.md', async (t) => {
  const metrics = doc('metrics.md');
  const mixed = (await mixedModelDir(t)).dir;
  for (const [modelDir, families] of [[join(repoRoot, 'models/diabetes'), 21], [join(repoRoot, 'models/iris'), 21], [mixed, 23]] as const) {
    const { app } = await testApp(t, ['--model-dir', modelDir]);
    const names = new Set([...(await scrape(app)).matchAll(/^# TYPE (model_\w+) /gm)].map((m) => m[1]!));
    t.ok(names.size >= families, `${modelDir}: found ${names.size} metric families`);
    for (const name of names) t.match(metrics, new RegExp(`^\\| [^|]*\`${name}\``, 'm'), `${name} has a row in docs/metrics.md`);
  }
});

t.test('the Kubernetes example keeps service links out of the pod, and runs modelwatch with options the code knows', async (t) => {
  const block = readme.split('### As a Kubernetes sidecar')[1]?.split('```yaml\n')[1]?.split('\n```')[0] ?? '';
  const [deployment] = loadAll(block) as { kind: string; spec: { template: { spec: { enableServiceLinks?: boolean; containers: { name: string; args?: string[]; env?: { name: string; value: string }[] }[] } } } }[];
  t.equal(deployment?.kind, 'Deployment');
  const pod = deployment!.spec.template.spec;
  t.equal(pod.enableServiceLinks, false, 'enableServiceLinks: false');
  const sidecar = pod.containers.find((c) => c.name === 'modelwatch')!;
  const env = Object.fromEntries((sidecar.env ?? []).map(({ name, value }) => [name, value]));
  t.doesNotThrow(() => parseServeConfig(sidecar.args!.slice(1), env), 'its args and env are valid serve options');
});

t.test('the docs/alerts.md table lists every alert with its for, keep_firing_for and runbook section', async (t) => {
  const rulesDir = join(repoRoot, 'prometheus', 'rules');
  const alerts = new Map<string, { for: string; keep: string }>();
  for (const file of readdirSync(rulesDir).filter((f) => /\.ya?ml$/.test(f))) {
    const parsed = load(readFileSync(join(rulesDir, file), 'utf8')) as { groups: { rules: { alert?: string; for?: string; keep_firing_for?: string }[] }[] };
    for (const r of parsed.groups.flatMap((g) => g.rules)) {
      // Twins share a name and, in these rules, their durations.
      if (r.alert) alerts.set(r.alert, { for: r.for ?? '', keep: r.keep_firing_for ?? '' });
    }
  }
  const section = doc('alerts.md');
  const rows = new Map(
    [...section.matchAll(/^\| `(\w+)` \|(.*)\|\s*$/gm)].map((m) => [m[1]!, m[2]!.split('|').map((c) => c.trim())]),
  );
  t.same([...rows.keys()].sort(), [...alerts.keys()].sort(), 'one row per alert, no row for an alert that does not exist');
  for (const [name, { for: forDuration, keep }] of alerts) {
    const cells = rows.get(name);
    t.equal(cells?.[2], forDuration, `${name}: for ${forDuration}`);
    t.equal(cells?.[3], keep, `${name}: keeps firing ${keep || '(none)'}`);
    t.equal(cells?.[4], `[${name}](../prometheus/RUNBOOK.md#${name.toLowerCase()})`, `${name}: links its runbook section`);
  }
});
