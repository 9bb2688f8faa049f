import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBaseline } from '../src/model/build-baseline.js';
import { encodeLinearOnnx } from '../src/model/onnx-linear.js';
import { mulberry32 } from '../src/random.js';

/**
 * Writes a model folder for a linear model of `width` features (f0..f{width-1}) into `dir`:
 * model.onnx, a seeded random train.csv and the baseline.json that `modelwatch baseline` makes of them.
 */
export async function writeWideModel(dir: string, width: number, rows = 2000): Promise<void> {
  const random = mulberry32(width);
  const weights = Array.from({ length: width }, () => random() - 0.5);
  const modelFile = join(dir, 'model.onnx');
  await writeFile(modelFile, encodeLinearOnnx({ weights, bias: 1 }));
  const names = weights.map((_, f) => `f${f}`);
  const lines = [[...names, 'target'].join(',')];
  for (let r = 0; r < rows; r++) {
    // Features on different scales, as real ones are; the target is unused by the bench.
    lines.push([...names.map((_, f) => ((f % 7) + 1) * 10 * random()), random()].map((v) => v.toFixed(4)).join(','));
  }
  const data = join(dir, 'train.csv');
  await writeFile(data, `${lines.join('\n')}\n`);
  const baseline = await buildBaseline({ data, modelFile, target: 'target', name: `wide${width}` });
  await writeFile(join(dir, 'baseline.json'), `${JSON.stringify(baseline, null, 2)}\n`);
}
