import type { Answer } from '../model/model.js';
import type { ClassificationMonitor } from './classification.js';
import type { FeatureMonitor } from './features.js';
import type { RegressionMonitor } from './regression.js';

export type PredictionMonitor = RegressionMonitor | ClassificationMonitor;

/** Everything watched per row: the features, and the predictions of the model's task. */
export class Monitor {
  constructor(
    readonly features: FeatureMonitor,
    readonly predictions: PredictionMonitor,
  ) {}

  /** Records `rows` accepted rows (row-major `features`) and their answers; returns how many answers were outliers. */
  record(features: Float64Array, answer: Answer, rows: number): number {
    this.features.record(features, rows);
    const { predictions } = this;
    if (predictions.task === 'regression') {
      if (answer.task !== 'regression') throw new TypeError('a classifier answer for a regression model');
      return predictions.record(answer.values, rows);
    }
    if (answer.task !== 'classification') throw new TypeError('a regression answer for a classifier');
    return predictions.record(answer, rows);
  }
}
