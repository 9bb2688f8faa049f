// The in-process PSI (model_feature_psi) against a PSI computed here from scratch, from the rows
// actually sent and the baseline's bin edges, for the drift scenarios of `modelwatch simulate`.
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { mulberry32 } from '../src/random.js';
import { scenarioChange, type Scenario } from '../src/simulate.js';
import { diabetesBaseline, featureNames, predict, sample, scrape, testApp, trainRows } from './helpers/app.js';

const id = `model="${diabetesBaseline.model}",version="${diabetesBaseline.version}"`;
const gauge = (exposition: string, name: string, feature: string) => sample(exposition, `${name}{${id},feature="${feature}"}`);

/**
 * PSI of `rows` for feature f, from docs/baseline.md and the issue alone: a value's bin is the number of
 * edges <= it; window shares get half a row of smoothing per bin, a = (c + 0.5) / (n + 0.5 k).
 */
function psiFromScratch(rows: readonly number[][], f: number): number {
  const { bin_edges: edges, bin_ratios: expected } = diabetesBaseline.features[f]!;
  const counts = expected.map(() => 0);
  for (const row of rows) counts[edges.filter((edge) => edge <= row[f]!).length]!++;
  const n = rows.length;
  const k = expected.length;
  return counts.reduce((total, c, i) => {
    const a = (c + 0.5) / (n + 0.5 * k);
    return total + (a - expected[i]!) * Math.log(a / expected[i]!);
  }, 0);
}

/** Rows sampled with replacement from train.csv, the chosen features changed as simulate does. */
function stream(scenario: Scenario, drift: number, features: readonly string[], rows: number, seed: number): number[][] {
  const pick = mulberry32(seed);
  const change = scenarioChange(scenario, drift, trainRows, featureNames.map((name) => features.includes(name)), mulberry32(seed + 1));
  return Array.from({ length: rows }, () => change(trainRows[Math.floor(pick() * trainRows.length)]!));
}

/** Sends rows in batches of 1 to 37 rows (uneven, so windows wrap mid-batch); `after` sees each scrape. */
async function send(t: Test, app: FastifyInstance, rows: number[][], after?: (exposition: string, sent: number) => void) {
  let sent = 0;
  for (let size = 1; sent < rows.length; size = (size % 37) + 1) {
    const batch = rows.slice(sent, sent + size);
    const response = await predict(app, batch.length === 1 ? { features: batch[0] } : { instances: batch });
    if (response.statusCode !== 200) t.fail(`batch at row ${sent}: ${response.statusCode} ${response.body}`);
    sent += batch.length;
    if (after) after(await scrape(app), sent);
  }
}

const continuous = featureNames.filter((name) => name !== 'sex');

/** An app with a window of `window` rows; the overload guard is off, as a busy test machine would trip it. */
const appWithWindow = (t: Test, window: number) => testApp(t, ['--window', String(window)]);

t.test('in-process PSI equals PSI computed from the rows in the window (window 200, 650 rows sent)', async (t) => {
  const cases: [string, Scenario, number, string[]][] = [
    ['unchanged', 'mean', 0, []],
    ['shifted +30%', 'mean', 0.3, featureNames],
    ['widened x1.5', 'widen', 0.5, featureNames],
    ['bimodal at mean +/- 1.3 sd', 'bimodal', 0.3, continuous],
  ];
  for (const [name, scenario, drift, features] of cases) {
    t.test(name, async (t) => {
      const { app } = await appWithWindow(t, 200);
      const rows = stream(scenario, drift, features, 650, 11);
      await send(t, app, rows);
      const m = await scrape(app);
      t.equal(sample(m, `model_window_rows{${id}}`), 200, 'the window is full and has evicted 450 rows');
      const window = rows.slice(-200);
      featureNames.forEach((feature, f) => {
        const expected = psiFromScratch(window, f);
        const got = gauge(m, 'model_feature_psi', feature);
        t.ok(Math.abs(got! - expected) <= 1e-9, `${feature}: model_feature_psi ${got} = ${expected}`);
      });
      // Not a constant: the unchanged stream stays low, the changed ones do not.
      const bmi = gauge(m, 'model_feature_psi', 'bmi')!;
      if (name === 'unchanged') t.ok(bmi < 0.1, `unchanged bmi PSI ${bmi} < 0.1`);
      else t.ok(bmi > 0.25, `${name} bmi PSI ${bmi} > 0.25`);
    });
  }
});

t.test('a widened or bimodal feature keeps its mean: the mean deviation stays under 0.2, PSI rises above 0.25', async (t) => {
  // sex is binary: widening 1 and 2 around 1.46 keeps both values in their bins, so only the
  // continuous features are changed here.
  const cases: [string, Scenario, number][] = [
    ['widened x2', 'widen', 1],
    ['bimodal at mean +/- 1.3 sd', 'bimodal', 0.3],
  ];
  for (const [name, scenario, drift] of cases) {
    t.test(name, async (t) => {
      const { app } = await appWithWindow(t, 1000);
      await send(t, app, stream(scenario, drift, continuous, 1300, 23));
      const m = await scrape(app);
      t.equal(sample(m, `model_window_rows{${id}}`), 1000);
      for (const feature of continuous) {
        const deviation = gauge(m, 'model_feature_mean_deviation_ratio', feature)!;
        const psi = gauge(m, 'model_feature_psi', feature)!;
        t.ok(Math.abs(deviation) < 0.2, `${feature}: mean deviation ${deviation.toFixed(4)} under 0.2`);
        t.ok(psi > 0.25, `${feature}: PSI ${psi.toFixed(3)} above 0.25`);
      }
    });
  }
});

t.test('unchanged traffic sampled from train.csv keeps PSI under 0.1 once the window (1000) is full', async (t) => {
  const { app } = await appWithWindow(t, 1000);
  const rows = stream('mean', 0, [], 1600, 5);
  let checks = 0;
  let highest = 0;
  await send(t, app, rows, (m, sent) => {
    if (sent < 1000) return;
    checks++;
    for (const feature of featureNames) highest = Math.max(highest, gauge(m, 'model_feature_psi', feature)!);
  });
  t.ok(checks >= 30, `${checks} scrapes with a full window`);
  t.ok(highest < 0.1, `highest PSI of any feature at any of them: ${highest.toFixed(4)}`);
  t.ok(highest > 0, 'sampling noise is there: the check reads real values');
});
