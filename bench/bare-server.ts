/**
 * The bare server modelwatch is measured against: Fastify and onnxruntime-node with the same default
 * model, POST /predict and nothing else (no schema validation, no ids, no monitoring, no log), so
 * modelwatch/bare is the price of everything modelwatch adds. bench/floor-server.ts, which keeps
 * modelwatch's response shape (ids included), is the second reference.
 *
 *   node --import tsx bench/bare-server.ts --port 8082 [--model models/diabetes/model.onnx] [--host 127.0.0.1]
 */
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, model: { type: 'string', default: 'models/diabetes/model.onnx' } },
});
// The same session options as modelwatch, so both run the model alike.
const session = await ort.InferenceSession.create(values.model!, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const inputName = session.inputNames[0]!;
const outputName = session.outputNames[0]!;

const app = Fastify({ logger: false });
app.post<{ Body: { features?: number[]; instances?: number[][] } }>('/predict', async (request) => {
  const { features, instances } = request.body;
  const rows = instances ?? [features!];
  const width = rows[0]!.length;
  const input = new Float32Array(rows.length * width);
  for (let r = 0; r < rows.length; r++) input.set(rows[r]!, r * width);
  const results = await session.run({ [inputName]: new ort.Tensor('float32', input, [rows.length, width]) });
  const predictions = results[outputName]!.data as Float32Array;
  return instances ? { predictions: Array.from(predictions) } : { prediction: predictions[0] };
});
// For the bench's readiness poll; the model loaded before listen.
app.get('/readyz', async () => ({ status: 'ready' }));
app.addHook('onClose', () => session.release());
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void app.close());
await app.listen({ port: Number(values.port ?? 8082), host: values.host });
