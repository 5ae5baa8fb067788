import { expect } from 'chai';
import {
  defaultSessionMigrationSpec,
  defaultSessionPoolSpec,
  newSessionMigration,
  newSessionPool,
  SchemaValidationError,
} from './defaults.ts';
import { loadExamples } from './examples.ts';
import { SESSION_POOL_KIND } from './session-pool.ts';
import { API_VERSION } from './meta.ts';

describe('api: defaulting in TypeScript', function () {
  it('fills in every default of a minimal pool, as the apiserver does', function () {
    const spec = defaultSessionPoolSpec({ replicas: 2, worker: { image: 'w:1' }, store: { endpoints: ['r:6379'] } });
    expect(spec).to.deep.equal({
      replicas: 2,
      worker: { image: 'w:1', port: 8080 },
      autoscaling: { enabled: false, minReplicas: 1, maxReplicas: 10, targetSessionsPerWorker: 100, scaleDownStabilizationSeconds: 300 },
      store: {
        endpoints: ['r:6379'],
        tls: { enabled: false, insecureSkipVerify: false },
        keyPrefix: 'spo',
        durability: 'leader',
        allowDegradedMode: false,
      },
      sessions: { ttlSeconds: 3600, anonymousTtlSeconds: 300, sweepIntervalSeconds: 30, maxSessionBytes: 1048576, idleSeconds: 300 },
      sessionMode: 'Centralized',
      maintenance: { evacuateOnCordon: true, drainDeadlineSeconds: 300, evictAfterEvacuation: true },
      deletionPolicy: 'Delete',
    });
  });

  it('keeps given values and does not change its input', function () {
    const input = { replicas: 1, worker: { image: 'w' }, store: { endpoints: ['r:1'], keyPrefix: 'x' }, sessions: { ttlSeconds: 60 } };
    const before = structuredClone(input);
    const spec = defaultSessionPoolSpec(input);
    expect(spec.store.keyPrefix).to.equal('x');
    expect(spec.sessions).to.deep.equal({
      ttlSeconds: 60,
      anonymousTtlSeconds: 300,
      sweepIntervalSeconds: 30,
      maxSessionBytes: 1048576,
      idleSeconds: 300,
    });
    expect(input).to.deep.equal(before);
  });

  it('throws a SchemaValidationError that names the bad fields', function () {
    try {
      defaultSessionPoolSpec({ replicas: -1, worker: { image: 'w' }, store: { endpoints: [] }, sessionMode: 'Nope' as never });
      expect.fail('expected a SchemaValidationError');
    } catch (err) {
      expect(err).to.be.instanceOf(SchemaValidationError);
      const errors = (err as SchemaValidationError).errors.join('\n');
      expect(errors).to.contain('/replicas');
      expect(errors).to.contain('/store/endpoints');
      expect(errors).to.contain('/sessionMode');
    }
    expect(() => defaultSessionPoolSpec({ replicas: 1, store: { endpoints: ['r:1'] } })).to.throw(SchemaValidationError, /worker/);
  });

  it('defaults a migration spec', function () {
    expect(defaultSessionMigrationSpec({ poolRef: { name: 'p' }, type: 'Rebalance', rebalance: {} })).to.deep.equal({
      poolRef: { name: 'p' },
      type: 'Rebalance',
      rebalance: { maxMovesPerRound: 1000, tolerancePercent: 10 },
      dryRun: false,
      batchSize: 500,
      deadlineSeconds: 300,
      onFailure: 'Rollback',
    });
    expect(() => defaultSessionMigrationSpec({ poolRef: { name: 'p' }, type: 'Evacuate', batchSize: 0 })).to.throw(
      SchemaValidationError,
      /batchSize/,
    );
  });

  it('builds whole objects', function () {
    const pool = newSessionPool('p', 'ns', { replicas: 1, worker: { image: 'w' }, store: { endpoints: ['r:1'] } });
    expect(pool).to.deep.include({ apiVersion: API_VERSION, kind: SESSION_POOL_KIND, metadata: { name: 'p', namespace: 'ns' } });
    const migration = newSessionMigration('m', 'ns', {
      poolRef: { name: 'p' },
      type: 'Migrate',
      migrate: { sessionIds: ['c2Vzc2lvbi1hYmMxMjM0NTY3ODkwYWJj'], targetWorker: 'w' },
    });
    expect(migration.spec.onFailure).to.equal('Rollback');
  });

  it('every example in examples/ passes the schema, and every kind of example is there', function () {
    const examples = loadExamples();
    const kinds = new Set<string>();
    for (const { file, object } of examples) {
      expect(object.apiVersion, file).to.equal(API_VERSION);
      if (object.kind === SESSION_POOL_KIND) {
        const spec = defaultSessionPoolSpec(object.spec as never);
        kinds.add(spec.autoscaling.enabled ? 'pool-autoscaled' : spec.sessionMode === 'WorkerLocal' ? 'pool-legacy' : 'pool');
      } else {
        const spec = defaultSessionMigrationSpec(object.spec as never);
        kinds.add(
          spec.dryRun
            ? 'dry-run'
            : spec.type === 'Evacuate'
              ? spec.evacuate?.nodeName
                ? 'evacuate-node'
                : 'evacuate-pods'
              : spec.type.toLowerCase(),
        );
      }
    }
    expect([...kinds].sort()).to.deep.equal([
      'dry-run',
      'evacuate-node',
      'evacuate-pods',
      'migrate',
      'pool',
      'pool-autoscaled',
      'pool-legacy',
      'rebalance',
    ]);
  });
});
