import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { OTHER_CATEGORY, UNSEEN_CATEGORY } from '../src/model/baseline.js';
import { predict, sample, scrape, testApp } from './helpers/app.js';
import { mixedModelDir, mixedTrainingRows, type MixedBaseline, type MixedRow } from './helpers/mixed.js';
import { postJson } from './helpers/sidecar.js';

const id = 'model="mixed",version="1"';
const training = await mixedTrainingRows();

// The fixture's weights (models/fixtures/make-fixtures.ts): what its answers must be, computed here.
const ZONES = [1, 2, 3, 4, 5, 6, 7];
const COLOURS = ['red', 'green', 'blue', 'white', 'black', 'mauve', 'teal'];
const zoneWeights = [5, 10, 15, 20, 25, 30, 35];
const colourWeights = [3, -3, 6, -6, 9, -9, 1];
/** The model's price: the imputer gives a missing age the training mean 40; an unknown or "" category encodes as all zeros. */
const price = (r: MixedRow) => 100 - 0.8 * (r.age ?? 40) + 12 * r.rooms + (zoneWeights[ZONES.indexOf(r.zone)] ?? 0) + (colourWeights[COLOURS.indexOf(r.colour ?? '')] ?? 0);

/** Shares smoothed by half a row per bucket, as docs/baseline.md documents: (c + 0.5) / (n + 0.5 k). */
const smoothed = (counts: number[], n: number) => counts.map((c) => (c + 0.5) / (n + 0.5 * counts.length));
const psi = (actual: number[], expected: number[]) => actual.reduce((sum, a, i) => sum + (a - expected[i]!) * Math.log(a / expected[i]!), 0);

t.test('the baseline of mixed.csv: categories by share with the rest pooled, smoothed shares, missing ages', async (t) => {
  const { baseline } = await mixedModelDir(t);
  const [age, rooms, zone, colour] = baseline.features;
  t.equal(age.kind, undefined, 'a float input is numeric');
  t.equal(rooms.kind, undefined, 'an int64 input the graph does not encode is numeric');
  t.equal(zone.kind, 'categorical', 'an int64 input the graph one-hot encodes is categorical');
  t.equal(zone.values, 'integer');
  t.equal(colour.kind, 'categorical', 'a string input is categorical');
  t.equal(colour.values, 'string');

  const missingAges = training.filter((r) => r.age === null).length;
  t.ok(missingAges > 0, `${missingAges} empty age cells in mixed.csv`);
  t.equal(age.missing_ratio, missingAges / training.length);
  t.equal(age.nullable, true, 'empty training cells make a feature nullable');
  t.equal(colour.nullable, true, '--nullable makes one nullable without empty cells');
  t.equal(colour.missing_ratio, undefined, 'and it was never missing in training');
  t.equal(rooms.nullable, undefined);
  const ages = training.flatMap((r) => (r.age === null ? [] : [r.age]));
  t.ok(Math.abs(age.mean - ages.reduce((a, b) => a + b, 0) / ages.length) < 1e-9, 'the mean leaves missing ages out');
  t.same(age.bin_ratios.reduce((a, b) => a + b, 0).toFixed(12), '1.000000000000', 'bins are shares of the rows with an age');

  for (const [feature, values] of [[zone, training.map((r) => String(r.zone))], [colour, training.map((r) => r.colour!)]] as const) {
    const counts = new Map<string, number>();
    for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
    const byShare = [...counts].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1)).map(([v]) => v);
    t.same(feature.categories, byShare.slice(0, 5), `${feature.name}: the 5 most frequent values`);
    t.same(feature.other_categories, byShare.slice(5).sort(), `${feature.name}: the others, pooled`);
    const pooled = byShare.slice(5).reduce((sum, v) => sum + counts.get(v)!, 0);
    t.same(feature.category_ratios, smoothed([...byShare.slice(0, 5).map((v) => counts.get(v)!), pooled, 0], values.length), `${feature.name}: smoothed shares, ${OTHER_CATEGORY} and ${UNSEEN_CATEGORY} last`);
  }
});

t.test('served with one input per column: every count is the one computed from the rows sent', async (t) => {
  const { dir, baseline } = await mixedModelDir(t);
  const { app } = await testApp(t, ['--model-dir', dir]);
  const [ageBaseline, roomsBaseline, zone, colour] = baseline.features;

  const sent: MixedRow[] = [
    ...training.slice(0, 40),
    { age: null, rooms: 2, zone: 1, colour: 'red' },
    { age: 30, rooms: 3, zone: 99, colour: 'purple' },
    { age: 50, rooms: 1, zone: 7, colour: 'teal' },
    { age: null, rooms: 4, zone: -3, colour: null },
    { age: 25, rooms: 6, zone: 2, colour: '' },
  ];
  const answered: number[] = [];
  // Named and positional rows, single and batched, and the Open Inference Protocol's tensor per feature.
  for (const [i, r] of sent.slice(0, 10).entries()) {
    const response = await predict(app, { features: i % 2 ? r : [r.age, r.rooms, r.zone, r.colour] });
    t.equal(response.statusCode, 200, response.body);
    answered.push(response.json().prediction);
  }
  const batch = await predict(app, { instances: sent.slice(10, 30) });
  t.equal(batch.statusCode, 200, batch.body);
  answered.push(...batch.json().predictions);
  const rest = sent.slice(30);
  const v2 = await postJson(app, '/v2/models/mixed/infer', {
    inputs: [
      { name: 'colour', shape: [rest.length, 1], datatype: 'BYTES', data: rest.map((r) => r.colour) },
      { name: 'age', shape: [rest.length, 1], datatype: 'FP32', data: rest.map((r) => [r.age]) },
      { name: 'rooms', shape: [rest.length], datatype: 'INT64', data: rest.map((r) => r.rooms) },
      { name: 'zone', shape: [rest.length, 1], datatype: 'INT64', data: rest.map((r) => r.zone) },
    ],
  });
  t.equal(v2.statusCode, 200, v2.body);
  answered.push(...v2.json().outputs[0].data);

  t.equal(answered.length, sent.length);
  sent.forEach((r, i) => t.ok(Math.abs(answered[i]! - price(r)) < 1e-3, `row ${i}: the model saw ${JSON.stringify(r)} (${answered[i]} = ${price(r)})`));

  const m = await scrape(app);
  const bucketOf = (f: typeof zone, v: string | number | null) => {
    if (v === null) return undefined;
    const text = String(v);
    return f.categories.includes(text) ? text : f.other_categories.includes(text) ? OTHER_CATEGORY : UNSEEN_CATEGORY;
  };
  for (const [f, values] of [[zone, sent.map((r) => r.zone)], [colour, sent.map((r) => r.colour)]] as const) {
    const buckets = [...f.categories, OTHER_CATEGORY, UNSEEN_CATEGORY];
    const counts = buckets.map((b) => values.filter((v) => bucketOf(f, v) === b).length);
    t.same(buckets.map((b) => sample(m, `model_feature_category_total{${id},feature="${f.name}",category="${b}"}`)), counts, `${f.name}: rows per category`);
    t.same(buckets.map((b) => sample(m, `model_feature_baseline_category_ratio{${id},feature="${f.name}",category="${b}"}`)), f.category_ratios);
    const present = values.filter((v) => v !== null).length;
    const expected = psi(smoothed(counts, present), f.category_ratios);
    t.ok(Math.abs(sample(m, `model_feature_psi{${id},feature="${f.name}"}`)! - expected) < 1e-12, `${f.name}: PSI ${expected} over the categories, smoothed`);
    t.equal(sample(m, `model_feature_mean{${id},feature="${f.name}"}`), undefined, 'no mean of a categorical feature');
    t.equal(sample(m, `model_feature_out_of_range_total{${id},feature="${f.name}",side="above_max"}`), undefined, 'nor a range');
  }
  t.equal(sample(m, `model_feature_category_total{${id},feature="colour",category="${UNSEEN_CATEGORY}"}`), 2, '"purple" and "" were never seen in training');
  t.equal(sample(m, `model_feature_category_total{${id},feature="zone",category="${UNSEEN_CATEGORY}"}`), 2, 'zones 99 and -3 neither');

  const ages = sent.map((r) => r.age);
  const presentAges = ages.filter((v): v is number => v !== null);
  t.equal(sample(m, `model_feature_missing_total{${id},feature="age"}`), ages.length - presentAges.length, 'null ages counted as missing');
  t.equal(sample(m, `model_feature_missing_total{${id},feature="colour"}`), 1, 'one null colour');
  t.equal(sample(m, `model_feature_missing_total{${id},feature="rooms"}`), 0);
  t.equal(sample(m, `model_feature_baseline_missing_ratio{${id},feature="age"}`), ageBaseline.missing_ratio);
  t.equal(sample(m, `model_feature_baseline_missing_ratio{${id},feature="rooms"}`), 0);
  t.ok(Math.abs(sample(m, `model_feature_mean{${id},feature="age"}`)! - presentAges.reduce((a, b) => a + b, 0) / presentAges.length) < 1e-9, 'the mean leaves missing ages out');
  const ageBins = ageBaseline.bin_ratios.map((_, bin) => sample(m, `model_feature_bin_total{${id},feature="age",bin="${bin}"}`));
  const binOf = (v: number) => ageBaseline.bin_edges.filter((e) => e <= v).length;
  t.same(ageBins, ageBaseline.bin_ratios.map((_, bin) => presentAges.filter((v) => binOf(v) === bin).length), 'and out of the bins');
  t.equal(sample(m, `model_feature_bin_total{${id},feature="rooms",bin="0"}`), sent.filter((r) => r.rooms < roomsBaseline.bin_edges[0]!).length);
  t.equal(sample(m, `model_feature_bin_total{${id},feature="zone",bin="0"}`), undefined, 'a categorical feature has no quantile bins');
});

t.test('strings are never coerced, nor null accepted where the baseline does not allow it', async (t) => {
  const { dir } = await mixedModelDir(t);
  const { app } = await testApp(t, ['--model-dir', dir]);
  const cases = [
    { features: [30, 2, 1, 5], reason: 'not_a_string', message: 'body.features.3 must be a string or null (a category), got number' },
    { features: [30, 2, '1', 'red'], reason: 'not_an_integer', message: 'body.features.2 must be an integer, got a string' },
    { features: { age: 30, rooms: 2.5, zone: 1, colour: 'red' }, reason: 'not_an_integer', message: 'body.features.rooms must be an integer, got 2.5' },
    { features: [30, null, 1, 'red'], reason: 'not_an_integer', message: 'body.features.1 must be an integer, got null' },
    { features: ['30', 2, 1, 'red'], reason: 'not_a_number', message: 'body.features.0 must be a number or null, got a string' },
  ];
  for (const c of cases) {
    const response = await predict(app, { features: c.features });
    t.equal(response.statusCode, 400);
    t.equal(response.json().message, c.message);
  }
  const m = await scrape(app);
  for (const reason of ['not_a_string', 'not_an_integer', 'not_a_number']) {
    t.equal(sample(m, `model_invalid_inputs_total{${id},reason="${reason}"}`), cases.filter((c) => c.reason === reason).length, reason);
  }
  t.equal(sample(m, `model_feature_missing_total{${id},feature="age"}`), 0, 'nothing of a refused body was recorded');
});

t.test('serve refuses, at start-up, a model whose inputs cannot take the baseline\'s features', async (t) => {
  const { dir, baseline } = await mixedModelDir(t);
  const file = join(dir, 'baseline.json');
  const cases: { edit: (b: MixedBaseline) => void; problem: string }[] = [
    {
      edit: (b) => (b.features[3].name = 'color'),
      problem: 'it takes one input per feature, named after it, but has no input for color and inputs colour that are no feature (the baseline lists age, rooms, zone, color); rebuild baseline.json with "modelwatch baseline"',
    },
    {
      edit: (b) => (b.features[1].nullable = true),
      problem: 'its input rooms: int64 [N, 1] cannot carry a missing value (int64 has no NaN), but the baseline allows null for "rooms"; rebuild baseline.json with "modelwatch baseline"',
    },
  ];
  for (const c of cases) {
    const b = structuredClone(baseline);
    c.edit(b);
    await writeFile(file, JSON.stringify(b));
    await t.rejects(testApp(t, ['--model-dir', dir]), { code: 'MW_ERR_MODEL_SHAPE', message: `model ${join(dir, 'model.onnx')} has an unsupported shape: ${c.problem}` });
  }
});
