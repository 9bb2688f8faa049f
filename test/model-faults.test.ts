import { existsSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { buildApp } from '../src/app.js';
import { parseServeConfig } from '../src/config.js';
import { encodeLinearOnnx } from '../src/model/onnx-linear.js';
import { featureNames, repoRoot, tempDir } from './helpers/app.js';

// A corrupt or missing model.onnx at start-up is covered end to end, through the CLI, in cli-serve.test.ts.

t.test('a model that answers two values per row is refused at start-up, before any file is opened', async (t) => {
  const dir = await tempDir(t);
  const model = encodeLinearOnnx({ weights: featureNames.map(() => 1), bias: 0, outputs: 2 });
  // The fixture really is such a model: onnxruntime runs it and answers [N, 2].
  const session = await ort.InferenceSession.create(model);
  const out = await session.run({ features: new ort.Tensor('float32', new Float32Array(featureNames.length * 3).fill(1), [3, featureNames.length]) });
  t.same(out.prediction!.dims, [3, 2]);
  await session.release();

  await writeFile(join(dir, 'model.onnx'), model);
  await copyFile(join(repoRoot, 'models/diabetes/baseline.json'), join(dir, 'baseline.json'));
  const csv = join(dir, 'log.csv');
  await t.rejects(buildApp(parseServeConfig(['--model-dir', dir, '--csv', csv, '--log-level', 'silent'], {})), {
    code: 'MW_ERR_MODEL_SHAPE',
    statusCode: 500,
    message: `model ${dir}/model.onnx has an unsupported shape: its one output prediction: float32 [N, 2] holds several values per row: class scores need a classifier's baseline (modelwatch baseline --task classification --classes a,b,...), and a regression answers one value per row, [N, 1]`,
  });
  t.notOk(existsSync(csv), 'no feature log was created');
});
