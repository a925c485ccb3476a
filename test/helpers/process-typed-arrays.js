// A Jest environment whose typed arrays are the process's own: onnxruntime-node wraps its outputs
// in the process's Float32Array, which the sandbox's onnxruntime-common would otherwise refuse.
// Used by the unit tests that run ONNX Runtime from JavaScript (@jest-environment docblock).
const { TestEnvironment } = require('jest-environment-node');

class ProcessTypedArrays extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of ['ArrayBuffer', 'Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array']) {
      this.global[name] = globalThis[name];
    }
  }
}

module.exports = ProcessTypedArrays;
