#!/usr/bin/env node
// Writes docs/openapi.json: the Admin API's OpenAPI description for the built-in extensions, as
// core/admin/openapi.ts generates it (run after `npm run build`; `npm run openapi` does both).
// core/admin/openapi.test.ts fails while the written file differs from what the generator makes.
'use strict';
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { builtinOpenApiText } = require('../dist/core/admin/openapi.js');

const file = join(__dirname, '..', 'docs', 'openapi.json');
writeFileSync(file, builtinOpenApiText());
console.log(`wrote ${file}`);
