// tap's `before` script: finds (and, as root, installs once) the tools every test file
// needs, before test files run in parallel, so two of them never race for apt-get's locks.
import { requireBinary } from '../helpers/binaries.js';

for (const name of ['promtool', 'amtool', 'prometheus', 'alertmanager', 'kubectl'] as const) {
  const path = await requireBinary(name);
  process.stdout.write(`# ${name}: ${path}\n`);
}
