import { expect } from 'chai';
import { aclKeyPatternsForPool, aclRulesForPool, POOL_ACL_COMMANDS } from './acl.ts';
import { keyLayout } from './keys.ts';
import { requestRecordKeyOf } from './request-records.ts';

/** Redis' glob, enough for the patterns made here: `*`, and `\` escapes. */
function globMatch(pattern: string, key: string): boolean {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') source += (pattern[++i] ?? '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '*') source += '.*';
    else source += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`).test(key);
}

describe('store/acl', () => {
  const patterns = aclKeyPatternsForPool('shop', 'ns/web');
  const matches = (key: string) => patterns.some((p) => globMatch(p, key));

  it('covers every key the layout builds for the pool: its sessions, indexes, registry and migrations', () => {
    const keys = keyLayout('shop');
    for (const key of [
      keys.session('ns/web', 'AAAAAAAAAAAAAAAAAAAAAA'),
      keys.quarantine('ns/web', 'AAAAAAAAAAAAAAAAAAAAAA'),
      requestRecordKeyOf(keys.session('ns/web', 'AAAAAAAAAAAAAAAAAAAAAA')),
      keys.poolIndex('ns/web', 0),
      keys.leaseIndex('ns/web', 15),
      keys.owners('ns/web', 7),
      keys.workers('ns/web'),
      keys.ownerIndex('ns/web', 'web-7d9f-abcde', 3),
      keys.legacy.poolIndex('ns/web'),
      keys.legacy.ownerIndex('ns/web', 'web-7d9f-abcde'),
    ])
      expect(matches(key), key).to.equal(true);
    expect(patterns).to.include('{shop:migs:ns/web}:active');
    expect(patterns.some((p) => p.startsWith('{shop:mig:ns/web:'))).to.equal(true);
  });

  it('matches no key of another pool nor another prefix, sessions included', () => {
    const mine = keyLayout('shop');
    const other = keyLayout('shop2');
    const id = 'AAAAAAAAAAAAAAAAAAAAAA';
    expect(patterns).to.include('shop:s:{ns/web|*}');
    for (const key of [
      // Sessions and quarantine copies of pools whose identity extends, shortens or differs from ns/web's.
      mine.session('ns/web2', id),
      mine.session('ns/we', id),
      mine.session('ns-x/web', id),
      mine.session('ns/web.x', id),
      mine.quarantine('ns/web2', id),
      mine.quarantine('other/web', id),
      requestRecordKeyOf(mine.session('ns/web2', id)),
      `shop:s:{${id}}`, // the layout before schema 5
      mine.poolIndex('ns/web2', 1),
      mine.poolIndex('ns/we', 1),
      mine.workers('ns/webx'),
      mine.ownerIndex('ns/web2', 'w', 1),
      mine.legacy.ownerIndex('ns/web2', 'w'),
      other.session('ns/web', id),
      other.poolIndex('ns/web', 1),
      'shop:other',
      '{shop2:migs:ns/web}:active',
      '{shop:migs:ns/web2}:active',
      '{shop:mig:other/web:u1}:h',
    ])
      expect(matches(key), key).to.equal(false);
  });

  it('starts from reset, grants no channel and only the listed commands', () => {
    const rules = aclRulesForPool({ keyPrefix: 'shop', pool: 'ns/web', password: 's3cret' });
    expect(rules.slice(0, 4)).to.deep.equal(['reset', 'on', '>s3cret', 'resetchannels']);
    expect(rules).to.include('-@all');
    expect(rules.filter((r) => r.startsWith('+'))).to.deep.equal(POOL_ACL_COMMANDS.map((c) => `+${c}`));
    expect(rules.filter((r) => r.startsWith('~'))).to.deep.equal(patterns.map((p) => `~${p}`));
    expect(rules.some((r) => r === '~*' || r === 'allkeys' || r === '+@all')).to.equal(false);
  });
});
