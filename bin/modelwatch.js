#!/usr/bin/env node
// Runs the compiled CLI, with no TypeScript loader: `npm run build` writes dist/, and npm runs it
// on install of a clone (prepare) and before npm start and npm test.
try {
  await import('../dist/main.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/main.js')) throw err;
  process.stderr.write('modelwatch: dist/ is missing; run "npm run build" in the repository first\n');
  process.exitCode = 1;
}
