// The CRD YAML in crds/ is what the generator renders from the TypeBox schemas (no drift),
// and the schemas are complete: every field typed and described, defaults valid.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import Type from 'typebox';
import Value from 'typebox/value';
import { buildCrd, openApiSchema, toStructuralSchema, walkSchema, type JsonSchema } from './crd.ts';
import { CRD_DEFINITIONS, CRDS_DIR, renderCrds } from './generate-crds.ts';
import { SessionPoolCrd, SessionPoolSpecSchema } from './session-pool.ts';
import { SessionMigrationCrd } from './session-migration.ts';
import type { ValidationRule } from './meta.ts';

describe('api: CRD generation', function () {
  it('crds/*.yaml are exactly what the generator renders (run `npm run gen:crds` after a schema change)', function () {
    const rendered = renderCrds();
    const committed = readdirSync(CRDS_DIR).filter((file) => file.endsWith('.yaml'));
    expect(committed.sort()).to.deep.equal([...rendered.keys()].sort());
    for (const [file, text] of rendered) {
      expect(readFileSync(path.join(CRDS_DIR, file), 'utf8'), `crds/${file} differs from the schema: run npm run gen:crds`).to.equal(text);
    }
  });

  it('names the resources as documented', function () {
    const pool = buildCrd(SessionPoolCrd) as {
      metadata: { name: string };
      spec: { group: string; names: JsonSchema; versions: JsonSchema[] };
    };
    expect(pool.metadata.name).to.equal('sessionpools.dspex.io');
    expect(pool.spec.names).to.deep.include({
      kind: 'SessionPool',
      plural: 'sessionpools',
      shortNames: ['spool', 'sp'],
      categories: ['dspex'],
    });
    expect(pool.spec.versions[0]).to.deep.include({ name: 'v1alpha1', served: true, storage: true });
    expect(pool.spec.versions[0]?.subresources).to.deep.equal({
      status: {},
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    });
    const migration = buildCrd(SessionMigrationCrd) as { spec: { names: JsonSchema; versions: JsonSchema[] } };
    expect(migration.spec.names).to.deep.include({ kind: 'SessionMigration', plural: 'sessionmigrations', shortNames: ['smig'] });
    expect(migration.spec.versions[0]?.subresources).to.deep.equal({ status: {} });
  });

  for (const definition of CRD_DEFINITIONS) {
    describe(definition.kind, function () {
      const root = openApiSchema(definition);

      it('gives every field a description and every node a type (structural schema)', function () {
        const missing: string[] = [];
        walkSchema(root, '', (node, where, isProperty) => {
          if (where === 'metadata') return; // the apiserver allows nothing there
          if (isProperty && !(typeof node.description === 'string' && node.description.length > 0))
            missing.push(`${where || '(root)'}: description`);
          if (node.type === undefined && node['x-kubernetes-int-or-string'] !== true) missing.push(`${where || '(root)'}: type`);
        });
        expect(missing).to.deep.equal([]);
      });

      it('keeps TypeBox-internal and unsupported keywords out', function () {
        const allowed = new Set([
          'description',
          'type',
          'format',
          'enum',
          'default',
          'minimum',
          'maximum',
          'minLength',
          'maxLength',
          'pattern',
          'minItems',
          'maxItems',
          'minProperties',
          'maxProperties',
          'required',
          'properties',
          'items',
          'additionalProperties',
          'anyOf',
          'nullable',
        ]);
        walkSchema(root, '', (node, where) => {
          for (const key of Object.keys(node))
            expect(allowed.has(key) || key.startsWith('x-kubernetes-'), `${where}: ${key}`).to.equal(true);
          expect(
            node.additionalProperties === undefined || typeof node.additionalProperties === 'object',
            `${where}: additionalProperties`,
          ).to.equal(true);
          if (node.properties && node.additionalProperties) expect.fail(`${where}: properties and additionalProperties together`);
        });
      });

      it('leaves defaulted fields out of required, and gives every rule a message', function () {
        walkSchema(root, '', (node, where) => {
          for (const name of (node.required as string[] | undefined) ?? []) {
            const child = (node.properties as Record<string, JsonSchema>)[name];
            expect(child, `${where}.${name}`).to.not.equal(undefined);
            expect(child?.default, `${where}.${name} is required but has a default`).to.equal(undefined);
          }
          for (const rule of (node['x-kubernetes-validations'] as ValidationRule[] | undefined) ?? []) {
            expect(rule.rule, where).to.be.a('string').and.not.empty;
            expect(rule.message, where).to.be.a('string').and.not.empty;
          }
        });
      });

      it('bounds every list and map (CEL cost estimates and object size need it)', function () {
        walkSchema(root, '', (node, where) => {
          if (node.type === 'array') expect(node.maxItems, `${where}: maxItems`).to.be.a('number');
          if (node.type === 'object' && node.additionalProperties) expect(node.maxProperties, `${where}: maxProperties`).to.be.a('number');
        });
      });

      it('has defaults that satisfy their own field schema', function () {
        walkSchema(root, '', (node, where) => {
          if (node.default === undefined) return;
          if (Array.isArray(node.enum)) expect(node.enum, where).to.include(node.default);
          if (typeof node.default === 'number') {
            if (typeof node.minimum === 'number') expect(node.default, where).to.be.at.least(node.minimum);
            if (typeof node.maximum === 'number') expect(node.default, where).to.be.at.most(node.maximum);
          }
          if (typeof node.default === 'string' && typeof node.pattern === 'string')
            expect(node.default, where).to.match(new RegExp(node.pattern));
        });
      });
    });
  }

  it('writes an object default out with its nested defaults (the apiserver checks CEL rules against it)', function () {
    const spec = toStructuralSchema(SessionPoolSpecSchema) as { properties: Record<string, JsonSchema> };
    expect(spec.properties.sessions?.default).to.deep.equal({
      ttlSeconds: 3600,
      anonymousTtlSeconds: 300,
      sweepIntervalSeconds: 30,
      maxSessionBytes: 1048576,
      idleSeconds: 300,
    });
    expect(spec.properties.maintenance?.default).to.deep.equal({
      evacuateOnCordon: true,
      drainDeadlineSeconds: 300,
      evictAfterEvacuation: true,
    });
  });

  it('turns records into additionalProperties and literal unions into typed enums', function () {
    const converted = toStructuralSchema(
      Type.Object({
        map: Type.Record(Type.String(), Type.Integer({ description: 'v' }), { description: 'm' }),
        choice: Type.Union([Type.Literal('A'), Type.Literal('B')], { description: 'c' }),
      }),
    );
    expect(converted).to.deep.equal({
      type: 'object',
      required: ['map', 'choice'],
      properties: {
        map: { description: 'm', type: 'object', additionalProperties: { description: 'v', type: 'integer' } },
        choice: { description: 'c', type: 'string', enum: ['A', 'B'] },
      },
    });
  });

  it('refuses keywords a CRD cannot carry instead of writing them out', function () {
    expect(() => toStructuralSchema(Type.Object({ a: Type.String({ $id: 'x' }) }))).to.throw(/keyword '\$id'/);
    expect(() => toStructuralSchema(Type.Union([Type.String(), Type.Integer()]))).to.throw(/anyOf/);
  });

  it('the committed YAML parses back to the built objects', function () {
    for (const definition of CRD_DEFINITIONS) {
      const committed = parse(readFileSync(path.join(CRDS_DIR, `${definition.plural}.yaml`), 'utf8')) as unknown;
      expect(committed).to.deep.equal(buildCrd(definition));
    }
  });

  it('the TypeBox schema accepts what the CRD defaults produce', function () {
    const spec = { replicas: 1, worker: { image: 'w' }, store: { endpoints: ['r:1'] } };
    expect(Value.Check(SessionPoolSpecSchema, Value.Default(SessionPoolSpecSchema, structuredClone(spec)))).to.equal(true);
  });
});
