#!/usr/bin/env node
// bgrm command-line entry point (oclif).
require('@oclif/core').execute({ dir: __dirname });
