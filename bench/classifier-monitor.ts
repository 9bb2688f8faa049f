import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClassificationBaseline, RegressionBaseline } from '../src/model/baseline.js';
import type { ClassificationAnswer } from '../src/model/model.js';
import { ClassificationMonitor } from '../src/monitor/classification.js';
import { FeatureMonitor } from '../src/monitor/features.js';
import { Monitor } from '../src/monitor/monitor.js';
import { mulberry32 } from '../src/random.js';
import { median } from './load.js';

const BATCH = 64;
const PREPARED = 64;

/** CPU time of this process in ns. */
const cpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};

/**
 * Monitor.record's CPU time per row for a 3-class classifier with probabilities at the diabetes
 * model's 10 features: the features as a regression watches them, plus the class counts, the
 * class window and the confidence histogram. Rows are the diabetes training rows; answers are
 * drawn probabilities with the top class as label, so branches vary as in production.
 */
export function measureClassifierMonitor(modelDir: string, rows: number[][], rounds = 5, rowsPerRound = 2_000_000): number {
  const regression = JSON.parse(readFileSync(join(modelDir, 'baseline.json'), 'utf8')) as RegressionBaseline;
  const classes = ['a', 'b', 'c'];
  const baseline: ClassificationBaseline = {
    task: 'classification',
    model: regression.model,
    version: regression.version,
    rows: regression.rows,
    features: regression.features,
    scalar_feature_mean: regression.scalar_feature_mean,
    classes,
    prediction: { class_shares: [0.5, 0.3, 0.2], low_confidence_share: 0.1, confidence_mean: 0.8 },
    label_shares: null,
    accuracy: null,
  };
  const monitor = new Monitor(new FeatureMonitor(baseline, 1000), new ClassificationMonitor(baseline, 1000, true));
  const width = baseline.features.length;
  const random = mulberry32(7);
  const prepared = Array.from({ length: PREPARED }, (_, b) => {
    const features = new Float64Array(BATCH * width);
    const answer: ClassificationAnswer = { task: 'classification', classes: new Int32Array(BATCH), labels: [], probabilities: new Float64Array(BATCH * classes.length) };
    const probabilities = answer.probabilities as Float64Array;
    for (let r = 0; r < BATCH; r++) {
      features.set(rows[(b * BATCH + r) % rows.length]!, r * width);
      const raw = classes.map(() => random());
      const sum = raw.reduce((x, y) => x + y, 0);
      raw.forEach((p, c) => (probabilities[r * classes.length + c] = p / sum));
      answer.classes[r] = raw.indexOf(Math.max(...raw));
    }
    return { features, answer };
  });
  const run = (batches: number) => {
    for (let i = 0; i < batches; i++) monitor.record(prepared[i % PREPARED]!.features, prepared[i % PREPARED]!.answer, BATCH);
  };
  const batches = Math.ceil(rowsPerRound / BATCH);
  run(batches / 10);
  const perRow: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = cpuNs();
    run(batches);
    perRow.push((cpuNs() - started) / (batches * BATCH));
  }
  return median(perRow);
}
