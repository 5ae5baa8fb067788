import { expect } from 'chai';
import { aclKeyPatternsForPool, aclRulesForPool, POOL_ACL_COMMANDS } from './acl.ts';
import { keyLayout } from './keys.ts';

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
  const patterns = aclKeyPatternsForPool('shop', 'web');
  const matches = (key: string) => patterns.some((p) => globMatch(p, key));

  it("covers every key the layout builds for the pool, and the prefix's sessions and migrations", () => {
    const keys = keyLayout('shop');
    for (const key of [
      keys.session('AAAAAAAAAAAAAAAAAAAAAA'),
      keys.quarantine('AAAAAAAAAAAAAAAAAAAAAA'),
      keys.poolIndex('web'),
      keys.leaseIndex('web'),
      keys.owners('web'),
      keys.workers('web'),
      keys.ownerIndex('web', 'web-7d9f-abcde'),
    ])
      expect(matches(key), key).to.equal(true);
    expect(patterns).to.include('{shop:migs}:active');
    expect(patterns.some((p) => p.startsWith('{shop:mig:'))).to.equal(true);
  });

  it('matches no key of another pool nor another prefix', () => {
    const mine = keyLayout('shop');
    const other = keyLayout('shop2');
    for (const key of [
      mine.poolIndex('web2'),
      mine.workers('webx'),
      mine.ownerIndex('web2', 'w'),
      other.session('AAAAAAAAAAAAAAAAAAAAAA'),
      other.poolIndex('web'),
      'shop:other',
      '{shop2:migs}:active',
    ])
      expect(matches(key), key).to.equal(false);
  });

  it('starts from reset, grants no channel and only the listed commands', () => {
    const rules = aclRulesForPool({ keyPrefix: 'shop', pool: 'web', password: 's3cret' });
    expect(rules.slice(0, 4)).to.deep.equal(['reset', 'on', '>s3cret', 'resetchannels']);
    expect(rules).to.include('-@all');
    expect(rules.filter((r) => r.startsWith('+'))).to.deep.equal(POOL_ACL_COMMANDS.map((c) => `+${c}`));
    expect(rules.filter((r) => r.startsWith('~'))).to.deep.equal(patterns.map((p) => `~${p}`));
    expect(rules.some((r) => r === '~*' || r === 'allkeys' || r === '+@all')).to.equal(false);
  });
});
