import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Baseline, NumericFeatureBaseline } from '../src/model/baseline.js';
import { encodeLinearOnnx } from '../src/model/onnx-linear.js';
import { encodeModel, initializer, node, tensorInfo } from '../models/onnx-build.js';
import { mulberry32 } from '../src/random.js';
import { eventually, predict, sample, scrape, tempDir, testApp } from './helpers/app.js';
import { requireBinary, runBinary } from './helpers/binaries.js';
import { runCli } from './helpers/cli.js';
import { escapeRegex } from './helpers/grafana.js';
import { modelFamilies, promtoolCheckMetrics } from './helpers/promtool.js';
import { postJson } from './helpers/sidecar.js';

/** sklearn's own column names, and what else a header may hold: dots, unicode, a backslash, a comma, a quote. */
const names = ['sepal length (cm)', 'a.b', '温度 °C', 'back\\slash', 'comma, name', "it's"];
const csvCell = (name: string) => (/[",]/.test(name) ? `"${name.replace(/"/g, '""')}"` : name);

async function modelDir(t: Test, columns: readonly string[] = names) {
  const dir = await tempDir(t);
  const random = mulberry32(3);
  const rows = Array.from({ length: 80 }, () => columns.map(() => Math.round(random() * 1000) / 100));
  const lines = [[...columns, 'target'].map(csvCell).join(','), ...rows.map((row) => [...row, Math.round(random() * 100)].join(','))];
  await writeFile(join(dir, 'train.csv'), `${lines.join('\n')}\n`);
  await writeFile(join(dir, 'model.onnx'), encodeLinearOnnx({ weights: columns.map((_, i) => i + 1), bias: 2 }));
  const result = await runCli(['baseline', '--data', join(dir, 'train.csv'), '--model', join(dir, 'model.onnx'), '--target', 'target', '--name', 'names', '--out', join(dir, 'baseline.json')]);
  t.equal(result.stderr, '', 'baseline accepts every name');
  return { dir, rows };
}

t.test('a model with one input per column, named as sklearn and users name columns (a double one too): named JSON, V2 tensors by name and the labels', async (t) => {
  const columns = ['sepal length (cm)', '温度 °C.x\\y', "colour score, it's"];
  const dir = await tempDir(t);
  // As skl2onnx converts a DataFrame: [N, 1] per column, concatenated; the double one cast to float.
  await writeFile(join(dir, 'model.onnx'), encodeModel({
    name: 'per_column',
    nodes: [
      node('Cast', [columns[1]!], ['as_float'], 'Cast', [{ name: 'to', type: 2, i: 1 }]),
      node('Concat', [columns[0]!, 'as_float', columns[2]!], ['merged'], 'Concat', [{ name: 'axis', type: 2, i: 1 }]),
      node('MatMul', ['merged', 'W'], ['variable'], 'MatMul'),
    ],
    inputs: [tensorInfo(columns[0]!, 'float', [null, 1]), tensorInfo(columns[1]!, 'double', [null, 1]), tensorInfo(columns[2]!, 'float', [null, 1])],
    outputs: [tensorInfo('variable', 'float', [null, 1])],
    initializers: [initializer('W', 'float', [3, 1], [1, 2, 4])],
    opsets: { '': 21 },
    producer: 'column-names.test.ts',
  }));
  const random = mulberry32(5);
  const rows = Array.from({ length: 60 }, () => columns.map(() => Math.round(random() * 400) / 4));
  await writeFile(join(dir, 'train.csv'), `${[columns.map(csvCell).join(','), ...rows.map((row) => row.join(','))].join('\n')}\n`);
  const built = await runCli(['baseline', '--data', join(dir, 'train.csv'), '--model', join(dir, 'model.onnx'), '--name', 'percol', '--out', join(dir, 'baseline.json')]);
  t.equal(built.code, 0, built.stderr);
  const { app } = await testApp(t, ['--model-dir', dir]);
  const row = [1.5, 2.25, 10];
  const expected = row[0]! + 2 * row[1]! + 4 * row[2]!;
  const named = await predict(app, { features: Object.fromEntries(columns.map((name, i) => [name, row[i]])) });
  t.equal(named.statusCode, 200, named.body);
  t.equal(named.json().prediction, expected, 'named JSON');
  t.equal((await predict(app, { features: row })).json().prediction, expected, 'positional JSON');
  const v2 = await postJson(app, '/v2/models/percol/infer', {
    inputs: columns.map((name, i) => ({ name, shape: [1, 1], datatype: i === 1 ? 'FP64' : 'FP32', data: [row[i]] })).reverse(),
  });
  t.equal(v2.statusCode, 200, v2.body);
  t.same(v2.json().outputs[0].data, [expected], 'V2 tensors found by name, in any order');
  const m = await scrape(app);
  t.equal(sample(m, 'model_feature_mean{model="percol",version="1",feature="温度 °C.x\\\\y"}'), 2.25, 'its three rows, each 2.25, under the label with its backslash escaped');
});

t.test('names every object inherits (constructor, toString) are features like any other: a missing one is missing_feature', async (t) => {
  const inherited = ['constructor', 'toString', 'valueOf'];
  const { dir, rows } = await modelDir(t, inherited);
  const { app } = await testApp(t, ['--model-dir', dir]);
  const named = await predict(app, { features: Object.fromEntries(inherited.map((name, i) => [name, rows[0]![i]])) });
  t.equal(named.statusCode, 200, named.body);
  t.equal(named.json().prediction, (await predict(app, { features: rows[0] })).json().prediction, 'named as positional');
  const missing = await predict(app, { features: { toString: rows[0]![1], valueOf: rows[0]![2] } });
  t.equal(missing.statusCode, 400);
  t.equal(missing.json().message, 'body.features is missing feature "constructor"; expected constructor, toString, valueOf', 'not taken for the function every object has');
  t.equal(sample(await scrape(app), 'model_invalid_inputs_total{model="names",version="1",reason="missing_feature"}'), 1);
});

t.test('any column name works in named JSON, V2, the feature log, check-csv and the metrics', async (t) => {
  const { dir, rows } = await modelDir(t);
  const baseline = JSON.parse(await readFile(join(dir, 'baseline.json'), 'utf8')) as Baseline;
  t.same(baseline.features.map((f) => f.name), names, 'the header, unquoted');
  const { app, csv } = await testApp(t, ['--model-dir', dir]);

  const positional = await predict(app, { features: rows[0] });
  const named = await predict(app, { features: Object.fromEntries(names.map((name, i) => [name, rows[0]![i]])) });
  t.equal(named.statusCode, 200, named.body);
  t.equal(named.json().prediction, positional.json().prediction, 'the names map to the inputs in the baseline\'s order');
  const missing = await predict(app, { features: Object.fromEntries(names.slice(1).map((name, i) => [name, rows[0]![i + 1]])) });
  t.equal(missing.json().message, 'body.features is missing feature "sepal length (cm)"; expected sepal length (cm), a.b, 温度 °C, back\\slash, comma, name, it\'s');
  const v2 = await postJson(app, '/v2/models/names/infer', { inputs: [{ name: 'input', shape: [1, names.length], datatype: 'FP32', data: rows[0] }] });
  t.equal(v2.statusCode, 200, v2.body);

  const m = await scrape(app);
  t.equal(sample(m, 'model_feature_baseline_mean{model="names",version="1",feature="back\\\\slash"}'), (baseline.features[3] as NumericFeatureBaseline).mean, 'a backslash is escaped in the label');
  t.equal(sample(m, 'model_feature_baseline_mean{model="names",version="1",feature="温度 °C"}'), (baseline.features[2] as NumericFeatureBaseline).mean, 'unicode as it is');
  const { code, output } = await promtoolCheckMetrics(`${modelFamilies(m)}\n`);
  t.equal(output, '', 'promtool reads every label');
  t.equal(code, 0);

  await eventually(async () => (await readFile(csv, 'utf8')).split('\n').length === 5, 'three rows logged');
  const [header] = (await readFile(csv, 'utf8')).split('\n');
  t.equal(header, 'timestamp,id,model,version,rows,feature_mean,prediction_mean,sepal length (cm)_mean,a.b_mean,温度 °C_mean,back\\slash_mean,"comma, name_mean",it\'s_mean');
  // Drift is not the point: check-csv reads each <name>_mean column of that header, or fails naming the one it misses.
  const check = await runCli(['check-csv', '--file', csv, '--model-dir', dir, '--last', '3', '--min-z', '0', '--threshold', '1000']);
  t.equal(check.stderr, '');
  t.equal(check.stdout, 'OK: no feature mean deviates more than 100000.0% (and 0 standard errors) from training over the last 3 requests\n');
});

t.test('the dashboard\'s feature=~"$feature" selects each name as Grafana escapes it, alone and as "All"', async (t) => {
  const dashboard = await readFile(new URL('../grafana/dashboards/modelwatch.json', import.meta.url), 'utf8');
  t.same([...new Set(dashboard.match(/feature[=!~]+\\"[^"\\]*\\"/g))], ['feature=~\\"$feature\\"'], 'the only feature matcher');
  const series = (name: string) => `model_feature_mean{feature="${name.replace(/\\/g, '\\\\')}"}`;
  const selections = [...names.map((name) => [name]), names];
  const tests = selections.map((selected) => ({
    interval: '1m',
    input_series: names.map((name, i) => ({ series: series(name), values: String(i) })),
    promql_expr_test: [
      {
        expr: `model_feature_mean{feature=~"${selected.length === 1 ? escapeRegex(selected[0]!) : `(${selected.map(escapeRegex).join('|')})`}"}`,
        eval_time: '0m',
        exp_samples: selected.map((name) => ({ labels: series(name), value: names.indexOf(name) })),
      },
    ],
  }));
  const dir = await tempDir(t);
  const file = join(dir, 'names.test.yml');
  await writeFile(file, JSON.stringify({ rule_files: [], tests }));
  const result = await runBinary(await requireBinary('promtool'), ['test', 'rules', file]);
  t.equal(result.code, 0, `${result.stdout}${result.stderr}`);
});

t.test('a name that cannot be used is refused by baseline, with the reason', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'baseline.json');
  const cases: [string, string][] = [
    ['prediction', "column 2 (\"prediction\") cannot be a feature: its name would make the feature log's column prediction_mean, which is already the mean prediction; rename it, or leave it out with --ignore"],
    ['"bp ""mmHg"""', 'column 2 ("bp \\"mmHg\\"") cannot be a feature: its name holds a double quote, which Grafana writes unescaped into the dashboard\'s queries (feature=~"$feature"); rename it, or leave it out with --ignore'],
    ['', 'column 2 ("") cannot be a feature: its name is empty; rename it, or leave it out with --ignore'],
    ['a', 'column 2 ("a") repeats the name of an earlier feature column'],
  ];
  for (const [column, message] of cases) {
    const data = join(dir, 'train.csv');
    await writeFile(data, `a,${column},pred\n1,2,3\n4,5,6\n`);
    const result = await runCli(['baseline', '--data', data, '--prediction-column', 'pred', '--out', out]);
    t.equal(result.stderr, `modelwatch baseline: MW_ERR_DATA_INVALID ${data}: ${message}\n`, column);
  }
  await t.rejects(readFile(out), { code: 'ENOENT' }, 'no baseline written');
});
