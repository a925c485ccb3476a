#!/usr/bin/env node
// Builds the native addon: fetches the ONNX Runtime headers unless ONNXRUNTIME_ROOT is set, then cmake-js.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const run = (cmd, args, env = process.env) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env });

if (!process.env.ONNXRUNTIME_ROOT) {
  run('bash', [path.join(__dirname, 'fetch-ort-headers.sh'), path.join(root, '.cache', 'onnxruntime')]);
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
run(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn']);
