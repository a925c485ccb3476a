#!/usr/bin/env node
// npm install hook: builds the native addon and the TypeScript, then fetches and verifies the default model.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const run = (args) => execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });

run([path.join(__dirname, 'build-native.js')]);
run([require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', path.join(root, 'tsconfig.json')]);
if (!process.env.BGRM_SKIP_MODEL) run([path.join(root, 'bin', 'run.js'), 'models', 'pull', 'u2netp']);
