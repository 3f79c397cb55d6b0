// The env provider's backend on its own: the variable's value, and a pinned version refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envBackend } from './index';

test('a pinned version (#2) is refused with a clear error: environment variables have no versions', async () => {
  process.env.GH_FILE_TEST_VERSIONLESS = 'v';
  try {
    await assert.rejects(envBackend().get({ path: 'GH_FILE_TEST_VERSIONLESS', field: '', version: '2' }), /environment variables have no versions \(asked for #2\)/);
    assert.deepEqual(await envBackend().get({ path: 'GH_FILE_TEST_VERSIONLESS', field: '' }), { value: 'v' });
  } finally {
    delete process.env.GH_FILE_TEST_VERSIONLESS;
  }
});
