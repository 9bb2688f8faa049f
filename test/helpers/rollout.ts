import { copyFile, mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeLinearOnnx } from '../../src/model/onnx-linear.js';
import { diabetesBaseline, repoRoot } from './app.js';

const card = JSON.parse(await readFile(join(repoRoot, 'models/diabetes/model-card.json'), 'utf8')) as { weights: number[]; bias: number };

/**
 * A model dir of the diabetes model under `version`; with `scale`, a linear model whose
 * predictions are the default model's times `scale` (its weights and bias scaled).
 */
export async function versionDir(dir: string, version: string, options: { scale?: number; baseline?: object } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const { scale } = options;
  if (scale === undefined) await copyFile(join(repoRoot, 'models/diabetes/model.onnx'), join(dir, 'model.onnx'));
  else await writeFile(join(dir, 'model.onnx'), encodeLinearOnnx({ weights: card.weights.map((w) => w * scale), bias: card.bias * scale }));
  await writeFile(join(dir, 'baseline.json'), JSON.stringify({ ...diabetesBaseline, version, ...options.baseline }));
  return dir;
}

/** Points the symlink `link` at `target` in one rename, as a Kubernetes volume update does. */
export async function swapLink(link: string, target: string): Promise<void> {
  const next = `${link}.next`;
  await symlink(target, next);
  await rename(next, link);
}
