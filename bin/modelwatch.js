#!/usr/bin/env node
// The package ships TypeScript and runs it through tsx, so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
