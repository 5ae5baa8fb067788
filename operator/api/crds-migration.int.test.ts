// The SessionMigration CRD against the real apiserver: each kind is accepted with the defaults
// the TypeScript defaulting also gives, the spec is immutable while the status stays writable,
// and every invalid case is refused with a message that says what is wrong.
import { expect } from 'chai';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, VERSION } from './meta.ts';
import { SESSION_MIGRATION_PLURAL, type SessionMigration, type SessionMigrationSpec } from './session-migration.ts';
import { defaultSessionMigrationSpec, type DeepPartial } from './defaults.ts';
import { SESSION_A, SESSION_B, crdsOnApiserver } from './crds-test-support.ts';

describe('api: SessionMigration CRD on the real apiserver', function () {
  this.timeout(60_000);
  const api = crdsOnApiserver('api-crds-mig');
  const { namespace, createMigration, mergePatch, expectRefused } = api;

  it('accepts a migration of each kind with defaults matching defaultSessionMigrationSpec()', async function () {
    const specs: Record<string, DeepPartial<SessionMigrationSpec>> = {
      'evacuate-node': { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { nodeName: 'node-1', evictPods: true } },
      'evacuate-pods': { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { pods: ['minimal-a', 'minimal-b'] } },
      migrate: {
        poolRef: { name: 'minimal' },
        type: 'Migrate',
        migrate: { sessionIds: [SESSION_A, SESSION_B], targetWorker: 'minimal-a' },
      },
      rebalance: { poolRef: { name: 'minimal' }, type: 'Rebalance', rebalance: { weights: { 'minimal-a': 2 } }, dryRun: true },
    };
    for (const [name, spec] of Object.entries(specs)) {
      const created = await createMigration(name, spec);
      expect(created.spec, name).to.deep.equal(defaultSessionMigrationSpec(spec));
    }
    const rebalance = (await api.objects.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SESSION_MIGRATION_PLURAL,
      name: 'rebalance',
    })) as SessionMigration;
    expect(rebalance.spec).to.include({ batchSize: 500, deadlineSeconds: 300, onFailure: 'Rollback', dryRun: true });
    expect(rebalance.spec.rebalance).to.deep.equal({ weights: { 'minimal-a': 2 }, maxMovesPerRound: 1000, tolerancePercent: 10 });
  });

  it('refuses a change of a migration spec after creation', async function () {
    await createMigration('immutable', { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { nodeName: 'node-1' } });
    await expectRefused(mergePatch(SESSION_MIGRATION_PLURAL, 'immutable', { spec: { batchSize: 10 } }), 'spec is immutable');
    // Status stays writable through the status subresource.
    const updated = (await api.objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: SESSION_MIGRATION_PLURAL,
        name: 'immutable',
        body: {
          status: {
            phase: 'Running',
            plan: { totalSessions: 3, moves: [{ from: 'a', to: 'b', sessions: 3 }] },
            progress: { moved: 1, remaining: 2, failed: 0 },
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as SessionMigration;
    expect(updated.status?.progress).to.deep.equal({ moved: 1, remaining: 2, failed: 0 });
  });

  it('refuses an Evacuate without pods or nodeName, or with both', async function () {
    await expectRefused(
      createMigration('evac-empty', { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: {} }),
      'evacuate needs exactly one of pods (worker pod names) or nodeName',
    );
    await expectRefused(
      createMigration('evac-both', { poolRef: { name: 'minimal' }, type: 'Evacuate', evacuate: { pods: ['a'], nodeName: 'n' } }),
      'evacuate needs exactly one of pods',
    );
    await expectRefused(
      createMigration('evac-missing', { poolRef: { name: 'minimal' }, type: 'Evacuate' }),
      'spec.evacuate must be set when spec.type is Evacuate',
    );
  });

  it('refuses a sub-object that does not match the type, and a bad type', async function () {
    await expectRefused(
      createMigration('mismatch', { poolRef: { name: 'minimal' }, type: 'Migrate', rebalance: {} }),
      'spec.migrate must be set when spec.type is Migrate',
      'spec.rebalance must be set when spec.type is Rebalance, and only then',
    );
    await expectRefused(
      createMigration('bad-type', { poolRef: { name: 'minimal' }, type: 'Teleport' as never }),
      'spec.type',
      'Unsupported value: "Teleport"',
    );
    await expectRefused(
      createMigration('bad-failure', { poolRef: { name: 'minimal' }, type: 'Rebalance', rebalance: {}, onFailure: 'Ignore' as never }),
      'spec.onFailure',
      '"Rollback", "Stop"',
    );
  });

  it('refuses a Migrate naming a malformed session id', async function () {
    const migrate = (sessionIds: string[]) => ({
      poolRef: { name: 'minimal' },
      type: 'Migrate' as const,
      migrate: { sessionIds, targetWorker: 'minimal-a' },
    });
    await expectRefused(createMigration('id-short', migrate([SESSION_A, 's1'])), 'spec.migrate.sessionIds[1]');
    await expectRefused(createMigration('id-chars', migrate(['../../../../etc/passwd/aaaaaaaaaaaa'])), 'spec.migrate.sessionIds[0]');
    await expectRefused(createMigration('id-long', migrate(['a'.repeat(65)])), 'spec.migrate.sessionIds[0]');
    const accepted = await createMigration('id-ok', migrate([SESSION_A, 'A'.repeat(22), `${'-_'.repeat(32)}`]));
    expect(accepted.spec.migrate?.sessionIds).to.have.length(3);
  });

  it('refuses rebalance weights that are all zero; accepts one above zero, and none', async function () {
    const rebalance = (weights: Record<string, number>) => ({
      poolRef: { name: 'minimal' },
      type: 'Rebalance' as const,
      rebalance: { weights },
    });
    await expectRefused(
      createMigration('weights-zero', rebalance({ 'minimal-a': 0, 'minimal-b': 0 })),
      'spec.rebalance.weights',
      'rebalance.weights must give at least one worker a weight above 0',
    );
    expect((await createMigration('weights-some', rebalance({ 'minimal-a': 0, 'minimal-b': 1 }))).spec.rebalance?.weights).to.deep.equal({
      'minimal-a': 0,
      'minimal-b': 1,
    });
    expect((await createMigration('weights-empty', rebalance({}))).spec.rebalance?.weights).to.deep.equal({});
  });
});
