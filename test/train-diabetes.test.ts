// models/diabetes/train.ts reproduces the committed model from the data in the repository when
// run from a directory outside it: what it reads and writes comes from its own location or --out.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { diabetesDir, root, tempDir } from './helpers/cli.js';

const execFileAsync = promisify(execFile);

t.test('train.ts run from another directory rebuilds the committed files byte for byte', async (t) => {
  const cwd = await tempDir(t);
  const out = await tempDir(t);
  // A diabetes.csv in the working directory is not the default: the one beside train.ts is.
  await writeFile(join(cwd, 'diabetes.csv'), 'not,the,data\n');
  const { stdout } = await execFileAsync(join(root, 'node_modules/.bin/tsx'), [join(diabetesDir, 'train.ts'), '--out', out], { cwd, timeout: 60_000 });
  t.match(stdout, `data: ${join(diabetesDir, 'diabetes.csv')} (442 rows) -> train 353, test 89\n`, 'reads the committed data');
  for (const file of ['model.onnx', 'model-card.json', 'train.csv', 'test.csv']) {
    t.ok((await readFile(join(out, file))).equals(await readFile(join(diabetesDir, file))), `${file} equals the committed one`);
  }
});
