/**
 * The floor modelwatch is measured against: Fastify, onnxruntime-node and the same model with the
 * same request and response shapes, and nothing else (no validation, no monitoring, no log), so
 * the ratio modelwatch/floor is the price of everything modelwatch adds.
 *
 *   node --import tsx bench/floor-server.ts --port 8081 [--model-dir models/diabetes] [--host 127.0.0.1]
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import { OnnxModel } from '../src/model/session.js';

type Row = number[] | Record<string, number>;

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, 'model-dir': { type: 'string', default: 'models/diabetes' } },
});
const modelDir = values['model-dir']!;
// Only the names, to lay out named rows: the floor keeps no baseline statistics.
const names = (JSON.parse(await readFile(join(modelDir, 'baseline.json'), 'utf8')) as { features: { name: string }[] }).features.map((f) => f.name);
const width = names.length;
// Requests run together as modelwatch runs them by default, so modelwatch/floor is the price of the monitoring alone.
const model = await OnnxModel.load(join(modelDir, 'model.onnx'), { features: names.map((name) => ({ name })), source: 'the baseline', fix: 'pass the model dir of a regression model' }, { coalesceRows: 1024 });

const app = Fastify({ logger: { level: 'warn' } });
app.post<{ Body: { features?: Row; instances?: Row[] } }>('/predict', async (request) => {
  const { features, instances } = request.body;
  const rows = instances ?? [features!];
  const input = new Float32Array(rows.length * width);
  rows.forEach((row, r) => {
    for (let f = 0; f < width; f++) input[r * width + f] = Array.isArray(row) ? row[f]! : row[names[f]!]!;
  });
  const answer = await model.predict(input, rows.length);
  if (answer.task !== 'regression') throw new Error('the floor serves regression models only');
  const predictions = answer.values;
  const id = randomUUID();
  return instances
    ? { id, predictions: Array.from(predictions) }
    : { id, prediction: predictions[0] };
});
// For the bench's readiness poll; the model loaded before listen.
app.get('/readyz', async () => ({ status: 'ready' }));
app.addHook('onClose', () => model.close());
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void app.close());
await app.listen({ port: Number(values.port ?? 8081), host: values.host });
