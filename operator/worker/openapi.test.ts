import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { OPENAPI_PATH, renderOpenApiFile } from './generate-openapi.ts';
import { OPERATIONS, openApiDocument, openApiPath } from './openapi.ts';
import { SERVED_ROUTES } from './server.ts';
import { AnonymousExecuteBody, CreateSessionBody, ExecuteBody, ModeBody } from './validation.ts';

type Json = Record<string, unknown>;

/** Every `$ref` in the document, with where it is. */
function refs(node: unknown, where = '#', out: [string, string][] = []): [string, string][] {
  if (Array.isArray(node)) node.forEach((child, i) => refs(child, `${where}/${i}`, out));
  else if (node !== null && typeof node === 'object') {
    for (const [key, child] of Object.entries(node)) {
      if (key === '$ref' && typeof child === 'string') out.push([where, child]);
      else refs(child, `${where}/${key}`, out);
    }
  }
  return out;
}

describe('worker OpenAPI document', () => {
  const doc = openApiDocument();
  const paths = doc.paths as Record<string, Record<string, Json>>;

  it('docs/worker-openapi.json is exactly what the generator writes (run `npm run gen:openapi` after an API change)', async () => {
    expect(readFileSync(OPENAPI_PATH, 'utf8'), 'docs/worker-openapi.json is stale: run npm run gen:openapi').to.equal(
      await renderOpenApiFile(),
    );
  });

  it('documents exactly the routes the server serves', () => {
    const documented = Object.entries(paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect([...documented].sort()).to.deep.equal(
      SERVED_ROUTES.map((r) => r.replace(/ (.*)$/, (_, p: string) => ` ${openApiPath(p)}`)).sort(),
    );
  });

  it('describes request bodies with the very schemas the server validates with', () => {
    const body = (path: string, method: string) =>
      ((paths[path]?.[method]?.requestBody as Json).content as Record<string, { schema: unknown }>)['application/json']?.schema;
    expect(body('/v1/sessions', 'post')).to.deep.equal(JSON.parse(JSON.stringify(CreateSessionBody)));
    expect(body('/v1/sessions/{id}/execute', 'post')).to.deep.equal(JSON.parse(JSON.stringify(ExecuteBody)));
    expect(body('/v1/execute', 'post')).to.deep.equal(JSON.parse(JSON.stringify(AnonymousExecuteBody)));
    expect(body('/admin/mode', 'post')).to.deep.equal(JSON.parse(JSON.stringify(ModeBody)));
  });

  it('is OpenAPI 3.1 with unique operation ids and every $ref resolving', () => {
    expect(doc.openapi).to.equal('3.1.0');
    const ids = OPERATIONS.map((o) => o.operationId);
    expect(new Set(ids).size).to.equal(ids.length);
    for (const [where, ref] of refs(doc)) {
      expect(ref, where).to.match(/^#\//);
      const target = ref
        .slice(2)
        .split('/')
        .reduce<unknown>((node, key) => (node as Json | undefined)?.[key], doc);
      expect(target, `${where} -> ${ref}`).to.be.an('object');
    }
  });

  it('lists an error response for each code an operation may answer, with the Error schema', () => {
    const execute = paths['/v1/sessions/{id}/execute']?.post?.responses as Record<string, { description: string }>;
    expect(Object.keys(execute)).to.include.members(['200', '400', '404', '409', '413', '415', '422', '500', '503', '504']);
    expect(execute['400']?.description).to.contain('INVALID_JSON').and.contain('INVALID_SESSION_ID');
  });
});
