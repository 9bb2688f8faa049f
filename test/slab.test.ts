// Typed arrays carved from shared slabs never share memory, start zeroed and are aligned, like
// arrays allocated one by one; the server's answers through them are those of the model.
import t from 'tap';
import { float32Array, float64Array, int32Array } from '../src/model/slab.js';
import { predict, testApp, trainRows } from './helpers/app.js';

t.test('carved arrays are zeroed, aligned and disjoint, across slabs', async (t) => {
  const carved: (Float64Array | Float32Array | Int32Array)[] = [];
  const buffers = new Set<ArrayBufferLike>();
  // Odd lengths of 4-byte elements between 8-byte ones: every offset must still suit a Float64Array.
  for (let i = 0; i < 10_000; i++) {
    const array = i % 3 === 0 ? float64Array(1 + (i % 17)) : i % 3 === 1 ? float32Array(1 + (i % 13)) : int32Array(1 + (i % 11));
    if (array.byteOffset % 8 !== 0) t.fail(`array ${i} starts at byte ${array.byteOffset}`);
    if (array.some((v) => v !== 0)) t.fail(`array ${i} did not start zeroed`);
    array.fill(i);
    carved.push(array);
    buffers.add(array.buffer);
  }
  t.ok(buffers.size > 1, `more than one slab was used (${buffers.size})`);
  const overwritten = carved.findIndex((array, i) => array.some((v) => v !== i));
  t.equal(overwritten, -1, 'no array was written over by a later one');
});

t.test('a large array gets a buffer of its own', async (t) => {
  const large = float64Array(100_000);
  t.equal(large.byteOffset, 0);
  t.equal(large.buffer.byteLength, 800_000);
  t.equal(float32Array(3).buffer === large.buffer, false);
});

t.test('one-row and batch answers are the model\'s, whatever slab their rows were laid out in', async (t) => {
  const { app } = await testApp(t);
  const rows = trainRows.slice(0, 40);
  const batch = (await predict(app, { instances: rows })).json().predictions as number[];
  // Enough requests to go through several slabs.
  const single: number[] = [];
  for (let round = 0; round < 60; round++) {
    for (const [r, row] of rows.entries()) {
      const { prediction } = (await predict(app, { features: row })).json();
      if (round === 0) single.push(prediction);
      else if (prediction !== single[r]) t.fail(`row ${r} answered ${prediction} in round ${round}, ${single[r]} in round 0`);
    }
  }
  t.same(single, batch);
  t.equal(new Set(batch).size, rows.length, 'forty distinct predictions, so a mix-up of rows would show');
});
