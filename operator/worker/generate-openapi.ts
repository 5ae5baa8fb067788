// Writes docs/worker-openapi.json: the worker's OpenAPI document (operator/worker/openapi.ts),
// formatted with the repository's prettier settings. `npm run gen:openapi`; a unit test fails
// when the committed file is not current.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { openApiDocument } from './openapi.ts';

export const OPENAPI_PATH = fileURLToPath(new URL('../../docs/worker-openapi.json', import.meta.url));

/** The document as committed. */
export async function renderOpenApiFile(): Promise<string> {
  const options = (await resolveConfig(OPENAPI_PATH)) ?? {};
  return format(JSON.stringify(openApiDocument(), null, 2), { ...options, parser: 'json' });
}

if (import.meta.main) {
  writeFileSync(OPENAPI_PATH, await renderOpenApiFile());
  console.log(`wrote ${OPENAPI_PATH}`);
}
