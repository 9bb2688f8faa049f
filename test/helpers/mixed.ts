import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CategoricalFeatureBaseline, NumericFeatureBaseline, RegressionBaseline } from '../../src/model/baseline.js';
import { buildBaseline } from '../../src/model/build-baseline.js';
import { repoRoot, tempDir } from './app.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const mixedCsv = join(repoRoot, 'models/fixtures/mixed.csv');

/** One training row of mixed.csv as a request sends it: an empty cell is null. */
export interface MixedRow {
  age: number | null;
  rooms: number;
  zone: number;
  colour: string | null;
}

export async function mixedTrainingRows(): Promise<MixedRow[]> {
  const [, ...lines] = (await readFile(mixedCsv, 'utf8')).trim().split('\n');
  return lines.map((line) => {
    const [age, rooms, zone, colour] = line.split(',');
    return { age: age === '' ? null : Number(age), rooms: Number(rooms), zone: Number(zone), colour: colour! };
  });
}

export type MixedBaseline = Omit<RegressionBaseline, 'features'> & {
  features: [NumericFeatureBaseline, NumericFeatureBaseline, CategoricalFeatureBaseline, CategoricalFeatureBaseline];
};

/** A model dir with the mixed fixture and the baseline `modelwatch baseline` builds for it: 5 categories kept, colour nullable. */
export async function mixedModelDir(t: Teardown): Promise<{ dir: string; baseline: MixedBaseline }> {
  const dir = await tempDir(t);
  await copyFile(join(repoRoot, 'models/fixtures/mixed.onnx'), join(dir, 'model.onnx'));
  const baseline = await buildBaseline({ data: mixedCsv, modelFile: join(dir, 'model.onnx'), target: 'target', name: 'mixed', maxCategories: 5, nullable: ['colour'] });
  await writeFile(join(dir, 'baseline.json'), JSON.stringify(baseline));
  return { dir, baseline: baseline as unknown as MixedBaseline };
}
