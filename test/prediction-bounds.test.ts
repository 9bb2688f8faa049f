import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { buildBaseline } from '../src/model/build-baseline.js';
import { encodeLinearOnnx } from '../src/model/onnx-linear.js';
import { mulberry32 } from '../src/random.js';
import { predict, sample, scrape, tempDir } from './helpers/app.js';

const FEATURES = 30;
const ROWS = 300;

/**
 * A model shaped like sklearn's breast-cancer regression: 30 features of scales from 0.01 to 100,
 * predictions around 0.5 for a 0/1 target, some of them below 0 and above 1. Deterministic.
 */
async function breastCancerLike(dir: string) {
  const random = mulberry32(7);
  const scales = Array.from({ length: FEATURES }, (_, j) => 10 ** ((j % 5) - 2));
  const effects = scales.map(() => 0.8 * random() - 0.4);
  const weights = effects.map((c, j) => c / scales[j]!);
  const bias = 0.5 - effects.reduce((total, c) => total + 1.5 * c, 0);
  const rows = Array.from({ length: ROWS }, () => scales.map((s) => Number((s * (1 + random())).toPrecision(6))));
  const names = scales.map((_, j) => `f${j}`);
  const csv = [[...names, 'target'].join(','), ...rows.map((row) => [...row, random() < 0.5 ? 0 : 1].join(','))].join('\n');
  await writeFile(join(dir, 'train.csv'), `${csv}\n`);
  await writeFile(join(dir, 'model.onnx'), encodeLinearOnnx({ weights, bias }));
  const baseline = await buildBaseline({ data: join(dir, 'train.csv'), modelFile: join(dir, 'model.onnx'), target: 'target', name: 'cancer' });
  await writeFile(join(dir, 'baseline.json'), JSON.stringify(baseline));
  return { rows, baseline };
}

async function serve(t: Parameters<typeof tempDir>[0], dir: string, flags: string[] = []) {
  const config = parseServeConfig(['--model-dir', dir, '--csv', '', '--log-level', 'silent', ...flags], {});
  const app = await buildApp(config);
  t.teardown(() => app.close());
  return app;
}

const id = 'model="cancer",version="1"';
const outliers = async (app: Awaited<ReturnType<typeof serve>>) => {
  const m = await scrape(app);
  return Object.fromEntries(['below_min', 'above_max', 'non_finite'].map((reason) => [reason, sample(m, `model_prediction_outliers_total{${id},reason="${reason}"}`)]));
};

t.test('30 features, predictions of another scale: no outlier on its own training rows with default flags', async (t) => {
  const dir = await tempDir(t);
  const { rows, baseline } = await breastCancerLike(dir);
  if (baseline.task === 'classification') throw new Error('expected a regression baseline');
  const { min, max } = baseline.prediction;
  t.same(baseline.prediction_bounds, { min: min - (max - min) / 2, max: max + (max - min) / 2 }, 'the range widened by half of it on each side');

  const app = await serve(t, dir);
  const answer = await predict(app, { instances: rows });
  t.equal(answer.statusCode, 200);
  const predictions = answer.json().predictions as number[];
  t.same(await outliers(app), { below_min: 0, above_max: 0, non_finite: 0 });

  // The same rows under the old fixed 0..1000: the case the default bounds are for.
  const negative = predictions.filter((p) => p < 0).length;
  t.ok(negative > 0, `${negative} training predictions are below 0`);
  const fixed = await serve(t, dir, ['--prediction-min', '0', '--prediction-max', '1000']);
  await predict(fixed, { instances: rows });
  t.same(await outliers(fixed), { below_min: negative, above_max: 0, non_finite: 0 }, 'flags win over the baseline');
});

t.test('one flag set: the other bound is the baseline\'s, and the two must still be ordered', async (t) => {
  const dir = await tempDir(t);
  const { rows, baseline } = await breastCancerLike(dir);
  if (baseline.task === 'classification') throw new Error('expected a regression baseline');
  const bounds = baseline.prediction_bounds!;
  const predictions = (await predict(await serve(t, dir), { instances: rows })).json().predictions as number[];

  const above = predictions.filter((p) => p > 0.9).length;
  t.ok(above > 0, `${above} training predictions are above 0.9`);
  const app = await serve(t, dir, ['--prediction-max', '0.9']);
  await predict(app, { instances: rows });
  t.same(await outliers(app), { below_min: 0, above_max: above, non_finite: 0 }, 'below_min stays the baseline\'s');

  const config = parseServeConfig(['--model-dir', dir, '--csv', '', '--log-level', 'silent', '--prediction-min', String(bounds.max)], {});
  await t.rejects(buildApp(config), {
    code: 'MW_ERR_CONFIG_INVALID',
    message: `invalid option --prediction-min ${bounds.max} / the baseline's prediction_bounds.max ${bounds.max}: the minimum must be below the maximum`,
  });
});

t.test('a baseline written before prediction_bounds gets the default from its prediction range', async (t) => {
  const dir = await tempDir(t);
  const { baseline } = await breastCancerLike(dir);
  if (baseline.task === 'classification') throw new Error('expected a regression baseline');
  const { prediction_bounds: recorded, ...older } = baseline;
  await writeFile(join(dir, 'baseline.json'), JSON.stringify(older));
  // The message names the bound the older baseline gets: the one a new baseline records.
  const config = parseServeConfig(['--model-dir', dir, '--csv', '', '--log-level', 'silent', '--prediction-min', '1000'], {});
  await t.rejects(buildApp(config), { message: `invalid option --prediction-min 1000 / the baseline's prediction_bounds.max ${recorded!.max}: the minimum must be below the maximum` });
});
