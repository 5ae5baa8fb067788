// The patterns the CRDs refuse input with: one rule for each idea, the same as the code that
// later reads the value (the worker's and the store's session id check).
import { expect } from 'chai';
import { SESSION_ID_PATTERN as WORKER_SESSION_ID } from '../worker/backends.ts';
import { PORT_SUFFIX_PATTERN, SECRET_KEY_PATTERN, SESSION_ID_PATTERN } from './meta.ts';

describe('api: refusal patterns', function () {
  it('a Migrate session id follows the worker rule (base64url, 22 to 64 characters)', function () {
    expect(new RegExp(SESSION_ID_PATTERN).source).to.equal(WORKER_SESSION_ID.source);
  });

  it("a Secret key has no '/' and no '..'", function () {
    const key = new RegExp(SECRET_KEY_PATTERN);
    for (const ok of ['password', 'ca.crt', '.hidden', 'tls.key.', 'user-name_1', 'a.b.c']) expect(key.test(ok), ok).to.equal(true);
    for (const bad of ['', '.', '..', 'a..b', '../x', 'dir/key', '/etc/passwd', 'a b', 'x\n'])
      expect(key.test(bad), JSON.stringify(bad)).to.equal(false);
  });

  it('an endpoint port is 1 to 65535, without leading zeros', function () {
    const port = new RegExp(PORT_SUFFIX_PATTERN);
    for (const ok of ['h:1', 'h:80', 'h:6379', 'h:9999', 'h:10000', 'h:59999', 'h:64999', 'h:65499', 'h:65529', 'h:65535', '[::1]:6379'])
      expect(port.test(ok), ok).to.equal(true);
    for (const bad of ['h:0', 'h:00', 'h:06379', 'h:65536', 'h:65540', 'h:65600', 'h:66000', 'h:70000', 'h:99999', 'h:123456', 'h:'])
      expect(port.test(bad), bad).to.equal(false);
  });
});
