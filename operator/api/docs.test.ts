import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { API_REFERENCE_PATH, renderApiReference, renderApiReferenceFile } from './generate-docs.ts';
import { CRD_DEFINITIONS } from './generate-crds.ts';
import { openApiSchema, walkSchema } from './crd.ts';

describe('api: generated API reference', function () {
  it('docs/api-reference.md is exactly what the generator renders (run `npm run gen:docs` after a schema change)', async function () {
    expect(readFileSync(API_REFERENCE_PATH, 'utf8'), 'docs/api-reference.md differs from the schema: run npm run gen:docs').to.equal(
      await renderApiReferenceFile(),
    );
  });

  it('documents every field and every validation rule', function () {
    const text = renderApiReference();
    for (const definition of CRD_DEFINITIONS) {
      walkSchema(openApiSchema(definition), '', (node, where) => {
        if (!where.startsWith('spec') && !where.startsWith('status')) return;
        if (where.endsWith('[*]') || where.endsWith('.*')) return; // items and map values are described with their field
        const documented = where.replace(/\[\*\]/g, '[]').replace(/\.\*\./g, '.*.');
        expect(text, where).to.contain(`| \`${documented}\` |`);
        for (const rule of (node['x-kubernetes-validations'] as { message: string }[] | undefined) ?? [])
          expect(text).to.contain(rule.message.replace(/\|/g, '\\|'));
      });
    }
  });
});
